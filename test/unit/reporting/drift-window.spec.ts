import { describe, expect, it } from 'vitest';
import { driftInWindow, type LedgerDriftEvent } from '../../../src/reporting/drift-window.js';
import type { DriftDetectedData } from '../../../src/snapshots/snapshot.events.js';

const detected = (
  id: string,
  tickAt: string,
  position: number,
  over: Partial<DriftDetectedData> = {},
): LedgerDriftEvent => ({
  type: 'DriftDetected',
  position,
  data: {
    driftId: id,
    target: 'prod',
    environment: 'production',
    key: 'version:gateway',
    kind: 'version',
    product: 'gateway',
    surface: null,
    basis: 'ledger',
    expected: '1.5.0',
    observed: '1.6.0',
    ledgerPosition: 10,
    snapshotId: `s-${id}`,
    previousSnapshotId: null,
    tickAt,
    window: { from: null, to: tickAt },
    attribution: { kind: 'out-of-band' },
    supersedes: null,
    ...over,
  },
});
const resolved = (id: string, tickAt: string, position: number): LedgerDriftEvent => ({
  type: 'DriftResolved',
  position,
  data: {
    driftId: id,
    target: 'prod',
    key: 'version:gateway',
    resolution: 'matches-ledger',
    observed: '1.5.0',
    snapshotId: `r-${id}`,
    tickAt,
    window: { from: null, to: tickAt },
    attribution: { kind: 'out-of-band' },
  },
});

const window = { environment: 'production', from: '2026-11-10T10:00:00Z', to: '2026-11-10T12:00:00Z' };

describe('driftInWindow: the drift a rollout report shows', () => {
  it('keeps drift open at any moment of the window, and drops what closed before or opened after', () => {
    const events = [
      detected('before-closed', '2026-11-10T08:00:00Z', 1),
      resolved('before-closed', '2026-11-10T09:00:00Z', 2),
      detected('spans-start', '2026-11-10T09:30:00Z', 3),
      detected('inside', '2026-11-10T11:00:00Z', 4, {
        attribution: { kind: 'rollout', rolloutId: 'r1', stepId: 's2', title: null },
      }),
      resolved('spans-start', '2026-11-10T10:30:00Z', 5),
      detected('after', '2026-11-10T13:00:00Z', 6),
      detected('elsewhere', '2026-11-10T11:00:00Z', 7, { environment: 'staging' }),
    ];
    const drift = driftInWindow(events, window);
    expect(drift.map((d) => d.driftId)).toEqual(['spans-start', 'inside']);
    expect(drift[0]).toMatchObject({
      resolvedPosition: 5,
      resolution: 'matches-ledger',
      attributedTo: 'out-of-band',
    });
    expect(drift[1]).toMatchObject({
      resolvedAt: null,
      detectedPosition: 4,
      attributedTo: 'rollout r1 step s2',
    });
  });

  it('runs a window that has not closed to the last event it knows of', () => {
    const drift = driftInWindow([detected('later', '2027-01-01T00:00:00Z', 9)], { ...window, to: null });
    expect(drift.map((d) => d.driftId)).toEqual(['later']);
  });

  it('has nothing for a rollout that never started or names no environment', () => {
    const events = [detected('x', '2026-11-10T11:00:00Z', 1)];
    expect(driftInWindow(events, { ...window, from: null })).toEqual([]);
    expect(driftInWindow(events, { ...window, environment: null })).toEqual([]);
  });
});
