import { assertUnreachable } from '../common/errors.js';
import { SURFACES, type Surface } from '../rollouts/rollout.plan.js';
import type { Observation } from './observation.js';
import type {
  Attribution,
  DriftBasis,
  DriftKind,
  DriftResolution,
  SnapshotEvent,
} from './snapshot.events.js';

/** The version of a product that the ledger says a completed rollout verified. */
export interface VerifiedVersion {
  version: string;
  /** Ledger position of the RolloutCompleted that established it. */
  position: number;
  rolloutId: string;
}

/** A drift detected and not yet resolved. */
export interface OpenDrift {
  driftId: string;
  key: string;
  kind: DriftKind;
  product: string | null;
  surface: Surface | null;
  basis: DriftBasis;
  expected: string | null;
  observed: string | null;
  tickAt: string;
}

export type DriftChange =
  | {
      type: 'detected';
      key: string;
      kind: DriftKind;
      product: string | null;
      surface: Surface | null;
      basis: DriftBasis;
      expected: string | null;
      observed: string | null;
      ledgerPosition: number | null;
      /** The open drift of this key that this one replaces. */
      supersedes: string | null;
    }
  | { type: 'resolved'; driftId: string; key: string; resolution: DriftResolution; observed: string | null };

export interface DriftInput {
  current: Observation;
  /** The target's snapshot before this one (undefined for its first). */
  previous: Observation | undefined;
  /** Product → verified version in the target's environment. */
  truth: ReadonlyMap<string, VerifiedVersion>;
  open: readonly OpenDrift[];
}

const READY = 'ready';
const NOT_READY = 'not-ready';
export const versionKey = (product: string) => `version:${product}`;
export const readinessKey = (surface: Surface) => `readiness:${surface}`;

/**
 * What changed in a target's drift with this snapshot. Pure: the same snapshot, history and
 * ledger truth always give the same changes, in key order.
 *
 * - `version:<product>` compares the observed version with the one the ledger verified for the
 *   target's environment, or, for a product no completed rollout verified, with the previous
 *   snapshot (the baseline then stays what it was when the drift opened).
 * - `readiness:<surface>` opens when a surface that was ready is no longer, and resolves when it
 *   is ready again.
 * - An open drift whose expected or observed value moves on is resolved as `superseded` and a new
 *   one opens, so every drift record describes one situation.
 * - A surface that could not be read changes nothing: unknown is not drift.
 *
 * @example
 * detectDrift({ current: { versions: { gateway: '1.6.0' }, … }, previous,
 *   truth: new Map([['gateway', { version: '1.5.0', position: 12, rolloutId }]]), open: [] })
 * // → [{ type: 'detected', key: 'version:gateway', basis: 'ledger', expected: '1.5.0', observed: '1.6.0', … }]
 */
export function detectDrift(input: DriftInput): DriftChange[] {
  return [...versionChanges(input), ...readinessChanges(input)].sort((a, b) =>
    a.key < b.key ? -1 : a.key > b.key ? 1 : a.type === 'resolved' ? -1 : 1,
  );
}

function versionChanges({ current, previous, truth, open }: DriftInput): DriftChange[] {
  const versions = current.versions;
  if (versions === null) return [];
  const openByKey = new Map(open.filter((d) => d.kind === 'version').map((d) => [d.key, d]));
  const products = new Set([
    ...truth.keys(),
    ...Object.keys(versions),
    ...[...openByKey.values()].flatMap((d) => (d.product ? [d.product] : [])),
  ]);
  const changes: DriftChange[] = [];
  for (const product of [...products].sort()) {
    const key = versionKey(product);
    const openDrift = openByKey.get(key);
    const verified = truth.get(product);
    const observed = versions[product] ?? null;
    let basis: DriftBasis;
    let expected: string | null;
    if (verified) {
      basis = 'ledger';
      expected = verified.version;
    } else if (openDrift?.basis === 'previous-snapshot') {
      basis = 'previous-snapshot';
      expected = openDrift.expected;
    } else if (previous?.versions) {
      basis = 'previous-snapshot';
      expected = previous.versions[product] ?? null;
    } else {
      continue; // nothing to compare with yet
    }
    const detected = {
      type: 'detected' as const,
      key,
      kind: 'version' as const,
      product,
      surface: null,
      basis,
      expected,
      observed,
      ledgerPosition: verified?.position ?? null,
      supersedes: null,
    };
    if (!openDrift) {
      if (expected !== observed) changes.push(detected);
      continue;
    }
    if (expected === observed) {
      const resolution = basis === 'ledger' ? 'matches-ledger' : 'reverted';
      changes.push({ type: 'resolved', driftId: openDrift.driftId, key, resolution, observed });
    } else if (openDrift.expected !== expected || openDrift.observed !== observed) {
      changes.push(
        { type: 'resolved', driftId: openDrift.driftId, key, resolution: 'superseded', observed },
        { ...detected, supersedes: openDrift.driftId },
      );
    }
  }
  return changes;
}

function readinessChanges({ current, previous, open }: DriftInput): DriftChange[] {
  const changes: DriftChange[] = [];
  for (const surface of SURFACES) {
    const ready = current.ready[surface];
    if (ready === undefined) continue;
    const key = readinessKey(surface);
    const openDrift = open.find((d) => d.key === key);
    if (openDrift) {
      if (ready) {
        changes.push({
          type: 'resolved',
          driftId: openDrift.driftId,
          key,
          resolution: 'ready-again',
          observed: READY,
        });
      }
    } else if (!ready && previous?.ready[surface] === true) {
      changes.push({
        type: 'detected',
        key,
        kind: 'readiness',
        product: null,
        surface,
        basis: 'previous-snapshot',
        expected: READY,
        observed: NOT_READY,
        ledgerPosition: null,
        supersedes: null,
      });
    }
  }
  return changes;
}

/** A target's drift stream folded: the drifts still open, and the latest tick it reflects. */
export interface DriftState {
  open: OpenDrift[];
  lastTickAt: string | null;
}

/**
 * Folds `drift-<target>`. Pure.
 *
 * @example
 * const state = foldDrift(events); state.open.map((d) => d.key) // ['version:gateway']
 */
export function foldDrift(events: readonly SnapshotEvent[]): DriftState {
  const open = new Map<string, OpenDrift>();
  let lastTickAt: string | null = null;
  for (const event of events) {
    switch (event.type) {
      case 'DriftDetected': {
        const d = event.data;
        open.set(d.driftId, {
          driftId: d.driftId,
          key: d.key,
          kind: d.kind,
          product: d.product,
          surface: d.surface,
          basis: d.basis,
          expected: d.expected,
          observed: d.observed,
          tickAt: d.tickAt,
        });
        lastTickAt = later(lastTickAt, d.tickAt);
        break;
      }
      case 'DriftResolved':
        open.delete(event.data.driftId);
        lastTickAt = later(lastTickAt, event.data.tickAt);
        break;
      case 'SnapshotTaken':
      case 'SnapshotFailed':
        break;
      default:
        assertUnreachable(event);
    }
  }
  return { open: [...open.values()], lastTickAt };
}

const later = (a: string | null, b: string) => (a === null || Date.parse(b) > Date.parse(a) ? b : a);

/** A rollout's window, and its steps', as attribution needs them. */
export interface RolloutWindow {
  rolloutId: string;
  title: string | null;
  products: readonly string[];
  startedAt: string;
  /** Completed or aborted; null while in flight. */
  endedAt: string | null;
  steps: readonly { stepId: string; product: string | null; startedAt: string; endedAt: string | null }[];
}

const overlaps = (start: number, end: number | null, from: number, to: number) =>
  start <= to && (end === null || end > from);

/**
 * The rollout and step a drift is attributed to: a rollout of the target's environment whose
 * window overlaps the interval in which the change happened (after the previous snapshot, at or
 * before this one) and which moves the drifted product (any product, for readiness drift). The
 * latest started wins; within it, the latest started step whose window overlaps, preferring a
 * step of that product. Nothing overlapping: `out-of-band`. Pure.
 *
 * @example
 * attribute('gateway', { from: '…07:00Z', to: '…07:15Z' }, []) // { kind: 'out-of-band' }
 */
export function attribute(
  product: string | null,
  window: { from: string | null; to: string },
  rollouts: readonly RolloutWindow[],
): Attribution {
  const from = window.from === null ? Number.NEGATIVE_INFINITY : Date.parse(window.from);
  const to = Date.parse(window.to);
  const ms = (t: string | null) => (t === null ? null : Date.parse(t));
  const candidates = rollouts
    .filter((r) => overlaps(Date.parse(r.startedAt), ms(r.endedAt), from, to))
    .filter(
      (r) => product === null || r.products.includes(product) || r.steps.some((s) => s.product === product),
    )
    .sort((a, b) => Date.parse(b.startedAt) - Date.parse(a.startedAt));
  const rollout = candidates[0];
  if (!rollout) return { kind: 'out-of-band' };
  const steps = rollout.steps
    .filter((s) => overlaps(Date.parse(s.startedAt), ms(s.endedAt), from, to))
    .sort(
      (a, b) =>
        Number(b.product === product) - Number(a.product === product) ||
        Date.parse(b.startedAt) - Date.parse(a.startedAt),
    );
  return {
    kind: 'rollout',
    rolloutId: rollout.rolloutId,
    stepId: steps[0]?.stepId ?? null,
    title: rollout.title,
  };
}
