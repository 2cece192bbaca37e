import type { DriftDetectedData, DriftResolvedData } from '../snapshots/snapshot.events.js';

/** A drift event as the ledger holds it, with its position. */
export type LedgerDriftEvent =
  | { type: 'DriftDetected'; data: DriftDetectedData; position: number }
  | { type: 'DriftResolved'; data: DriftResolvedData; position: number };

/** One drift seen during a rollout, in a report. */
export interface ReportDrift {
  driftId: string;
  target: string;
  key: string;
  expected: string | null;
  observed: string | null;
  detectedAt: string;
  detectedPosition: number;
  resolvedAt: string | null;
  resolvedPosition: number | null;
  resolution: string | null;
  /** `rollout <id> step <step>` when the change fell in a rollout's window, else `out-of-band`. */
  attributedTo: string;
}

/**
 * The drift open at any moment of a rollout's window, from the drift events the ledger held at
 * the report's position (ledger order). A drift counts when it was detected before the window
 * closed and not resolved before it opened; a window still open runs to the report's position.
 * Pure: the same events and window always give the same list, oldest first.
 */
export function driftInWindow(
  events: readonly LedgerDriftEvent[],
  window: { environment: string | null; from: string | null; to: string | null },
): ReportDrift[] {
  if (!window.environment || !window.from) return [];
  const from = Date.parse(window.from);
  const to = window.to ? Date.parse(window.to) : Number.POSITIVE_INFINITY;
  const drifts = new Map<string, ReportDrift>();
  for (const e of events) {
    if (e.type === 'DriftDetected') {
      if (e.data.environment !== window.environment) continue;
      const a = e.data.attribution;
      drifts.set(e.data.driftId, {
        driftId: e.data.driftId,
        target: e.data.target,
        key: e.data.key,
        expected: e.data.expected,
        observed: e.data.observed,
        detectedAt: e.data.tickAt,
        detectedPosition: e.position,
        resolvedAt: null,
        resolvedPosition: null,
        resolution: null,
        attributedTo:
          a.kind === 'rollout'
            ? `rollout ${a.rolloutId}${a.stepId ? ` step ${a.stepId}` : ''}`
            : 'out-of-band',
      });
    } else {
      const d = drifts.get(e.data.driftId);
      if (!d) continue;
      d.resolvedAt = e.data.tickAt;
      d.resolvedPosition = e.position;
      d.resolution = e.data.resolution;
    }
  }
  return [...drifts.values()]
    .filter(
      (d) => Date.parse(d.detectedAt) <= to && (d.resolvedAt === null || Date.parse(d.resolvedAt) >= from),
    )
    .sort((a, b) => a.detectedPosition - b.detectedPosition);
}
