import { createHash } from 'node:crypto';
import type { Json } from '../database/schema.js';
import type { Surface } from '../rollouts/rollout.plan.js';

/** The four surfaces of a platform, and where each answers under its base URL. */
export const SURFACE_PATHS: Readonly<Record<Surface, string>> = {
  'version-truth': '/api/v1/platform/version-truth',
  'contracts-drift': '/api/v1/contracts/drift',
  'observability-readiness': '/api/v1/observability/readiness',
  'recovery-readiness': '/api/v1/recovery/readiness',
};

/** Why a surface could not be read. Each code has one plain-words reason beside it. */
export type FetchErrorCode =
  | 'timeout'
  | 'connection-refused'
  | 'network'
  | 'redirect'
  | 'http-status'
  | 'too-large'
  | 'not-json'
  | 'invalid-body'
  | 'invalid-shape'
  | 'cancelled'
  /** The replica that claimed the tick stopped before recording it (recorded by another one). */
  | 'abandoned';

/** One surface as read by one snapshot. */
export type SurfaceReading =
  | {
      status: 'ok';
      url: string;
      httpStatus: number;
      latencyMs: number;
      attempts: number;
      bytes: number;
      /** `sha256:<hex>` of the body's bytes as received. */
      digest: string;
      ready: boolean;
      reasons: string[];
      /** The body itself (it is at most SNAPSHOT_MAX_BYTES). */
      body: Json;
    }
  | {
      status: 'failed';
      url: string;
      httpStatus: number | null;
      latencyMs: number;
      attempts: number;
      bytes: number;
      digest: string | null;
      error: { code: FetchErrorCode; message: string };
    };

/** What a snapshot holds, taken or failed. */
export interface SnapshotData {
  snapshotId: string;
  target: string;
  baseUrl: string;
  environment: string;
  /** The tick this snapshot belongs to: the cron slot, or the moment of a manual request. */
  tickAt: string;
  trigger: 'schedule' | 'manual';
  /** The replica that claimed the tick. */
  takenBy: string;
  startedAt: string;
  finishedAt: string;
  surfaces: Record<Surface, SurfaceReading>;
  /** Product → version from version-truth; null when version-truth could not be read. */
  versions: Record<string, string> | null;
}

/** Where a drift came from: the rollout (and step) whose window it fell in, or none. */
export type Attribution =
  | { kind: 'rollout'; rolloutId: string; stepId: string | null; title: string | null }
  | { kind: 'out-of-band' };

export type DriftKind = 'version' | 'readiness';
/** What the observation was compared with. */
export type DriftBasis = 'ledger' | 'previous-snapshot';

export interface DriftDetectedData {
  driftId: string;
  target: string;
  environment: string;
  /** `version:<product>` or `readiness:<surface>`: at most one drift of a key is open at a time. */
  key: string;
  kind: DriftKind;
  product: string | null;
  surface: Surface | null;
  basis: DriftBasis;
  /** The version (or `ready`) the basis says; null for "absent". */
  expected: string | null;
  /** What the snapshot showed; null for "absent". */
  observed: string | null;
  /** The ledger position of the event that established `expected`, when the basis is the ledger. */
  ledgerPosition: number | null;
  snapshotId: string;
  previousSnapshotId: string | null;
  tickAt: string;
  /** The change happened after `from` (the previous snapshot) and at or before `to` (this one). */
  window: { from: string | null; to: string };
  attribution: Attribution;
  /** The open drift of the same key this one replaces (the observation moved on again). */
  supersedes: string | null;
}

export type DriftResolution = 'matches-ledger' | 'reverted' | 'ready-again' | 'superseded';

export interface DriftResolvedData {
  driftId: string;
  target: string;
  key: string;
  resolution: DriftResolution;
  observed: string | null;
  snapshotId: string;
  tickAt: string;
  window: { from: string | null; to: string };
  attribution: Attribution;
}

/** The events of `snapshots-<target>` and `drift-<target>`. */
export type SnapshotEvent =
  | { type: 'SnapshotTaken'; data: SnapshotData }
  | { type: 'SnapshotFailed'; data: SnapshotData & { reason: string } }
  | { type: 'DriftDetected'; data: DriftDetectedData }
  | { type: 'DriftResolved'; data: DriftResolvedData };

export const snapshotStreamId = (target: string) => `snapshots-${target}`;
export const driftStreamId = (target: string) => `drift-${target}`;
export const SNAPSHOT_STREAM_PREFIX = 'snapshots-';
export const DRIFT_STREAM_PREFIX = 'drift-';

/**
 * A UUID (v8 layout) derived from its parts: the same tick of the same target always names the
 * same event, so a retried or duplicated append can never record it twice.
 *
 * @example
 * derivedId('snapshot', 'prod', '2026-11-26T07:15:00.000Z') // always the same UUID
 */
export function derivedId(...parts: string[]): string {
  const h = createHash('sha256').update(parts.join('\u0000')).digest();
  h[6] = ((h[6] as number) & 0x0f) | 0x80;
  h[8] = ((h[8] as number) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

/** The id of a tick's one snapshot event (taken or failed). */
export const snapshotIdFor = (target: string, tickAt: string) => derivedId('snapshot', target, tickAt);
