import type { ColumnType, Insertable, Selectable } from 'kysely';
import type { Role } from '../auth/principal.js';

/** A column written once and never again: Kysely refuses an UPDATE of it at compile time. */
type Immutable<S, I = S> = ColumnType<S, I, never>;
/** Like Immutable, with a database default. */
type ImmutableDefault<S> = ColumnType<S, S | undefined, never>;

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

export interface StreamTable {
  stream_id: Immutable<string>;
  stream_type: Immutable<string>;
  version: number;
  head_hash: string;
  created_at: ColumnType<Date, Date | undefined, never>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface EventTable {
  id: ColumnType<number, never, never>;
  event_id: Immutable<string>;
  stream_id: Immutable<string>;
  stream_version: Immutable<number>;
  type: Immutable<string>;
  schema_version: Immutable<number>;
  data: Immutable<Json, string>;
  metadata: Immutable<Json, string>;
  recorded_at: Immutable<Date, Date | string>;
  /** `xid8` of the appending transaction, as text. Orders the sequencer's read; not hashed. */
  tx_id: ImmutableDefault<string>;
  prev_hash: Immutable<string>;
  hash: Immutable<string>;
  /**
   * RFC 8785 text of `data`/`metadata` as hashed at append (migration 000700); null for events
   * appended before it. Never part of the hash itself: a faster way to the same bytes.
   */
  data_jcs: ColumnType<string | null, string | null | undefined, never>;
  metadata_jcs: ColumnType<string | null, string | null | undefined, never>;
}

export interface LedgerTable {
  position: Immutable<number>;
  event_row_id: Immutable<number>;
  prev_hash: Immutable<string>;
  hash: Immutable<string>;
  sequenced_at: ImmutableDefault<Date>;
}

export interface SequencerStateTable {
  id: Immutable<number>;
  position: number;
  head_hash: string;
  tx_id: string;
  event_row_id: number;
}

export interface CheckpointTable {
  position: Immutable<number>;
  head_hash: Immutable<string>;
  created_at: Immutable<Date, Date | string>;
  key_id: Immutable<string>;
  signature: Immutable<string>;
}

export interface SigningKeyTable {
  key_id: Immutable<string>;
  algorithm: Immutable<string>;
  public_key_pem: Immutable<string>;
  created_at: ImmutableDefault<Date>;
}

export interface ProjectionCheckpointTable {
  name: Immutable<string>;
  version: Immutable<number>;
  position: number;
  active: ColumnType<boolean, boolean | undefined, boolean>;
  created_at: ColumnType<Date, Date | undefined, never>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

/** `rollout_summary_v<N>`: the rollout list read model; N is the projection version. */
export interface RolloutSummaryTable {
  rollout_id: Immutable<string>;
  title: string | null;
  scope: string | null;
  environment: string | null;
  products: ColumnType<string[], string[] | undefined, string[]>;
  status: string;
  plan_revision: ColumnType<number, number | undefined, number>;
  steps_planned: ColumnType<number, number | undefined, number>;
  steps_completed: ColumnType<number, number | undefined, number>;
  rollbacks: ColumnType<number, number | undefined, number>;
  created_by: string | null;
  created_at: ColumnType<Date, Date | string, never>;
  started_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  completed_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  aborted_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  updated_at: ColumnType<Date, Date | string, Date | string>;
  version: number;
  last_position: number;
}

export interface ApiKeyTable {
  id: ColumnType<string, string | undefined, never>;
  name: Immutable<string>;
  role: Immutable<Role>;
  /** SHA-256 of the whole key, hex. The key itself is never stored. */
  key_hash: Immutable<string>;
  /** The key's first characters, for humans to recognise it in a listing. */
  key_prefix: Immutable<string>;
  created_at: ImmutableDefault<Date>;
  /** The principal id that created it (`env:ADMIN_TOKEN`, `key:<uuid>`, or `bootstrap`). */
  created_by: Immutable<string>;
  expires_at: ColumnType<Date | null, Date | null | undefined, never>;
  /** Set once, by a revocation; never inserted. */
  revoked_at: ColumnType<Date | null, never, Date>;
  last_used_at: ColumnType<Date | null, never, Date>;
}

/** A claim on one snapshot tick of one target: the primary key lets one replica win it. */
export interface SnapshotTickTable {
  target: Immutable<string>;
  tick_at: Immutable<Date, Date | string>;
  trigger: Immutable<string>;
  claimed_by: Immutable<string>;
  claimed_at: ImmutableDefault<Date>;
  completed_at: ColumnType<Date | null, never, Date>;
  outcome: ColumnType<string | null, never, string>;
}

/** `snapshot_v<N>`: every snapshot, taken or failed, without the bodies. */
export interface SnapshotReadTable {
  snapshot_id: string;
  target: string;
  environment: string;
  tick_at: ColumnType<Date, Date | string, Date | string>;
  trigger: string;
  status: string;
  reason: string | null;
  surfaces: ColumnType<Json, string, string>;
  versions: ColumnType<Json | null, string | null, string | null>;
  recorded_at: ColumnType<Date, Date | string, Date | string>;
  position: number;
}

/** `drift_v<N>`: every drift, open until resolved. */
export interface DriftReadTable {
  drift_id: string;
  target: string;
  environment: string;
  key: string;
  kind: string;
  product: string | null;
  surface: string | null;
  basis: string;
  expected: string | null;
  observed: string | null;
  ledger_position: number | null;
  snapshot_id: string;
  tick_at: ColumnType<Date, Date | string, Date | string>;
  attribution: ColumnType<Json, string, string>;
  detected_at: ColumnType<Date, Date | string, Date | string>;
  detected_position: number;
  resolved_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  resolved_position: ColumnType<number | null, number | null | undefined, number | null>;
  resolution: ColumnType<string | null, string | null | undefined, string | null>;
  resolved_snapshot_id: ColumnType<string | null, string | null | undefined, string | null>;
}

/** `version_truth_v<N>`: per environment and product, the version a completed rollout verified. */
export interface VersionTruthTable {
  environment: string;
  product: string;
  version: string;
  rollout_id: string;
  verified_at: ColumnType<Date, Date | string, Date | string>;
  position: number;
}

export interface Database {
  stream: StreamTable;
  event: EventTable;
  ledger: LedgerTable;
  sequencer_state: SequencerStateTable;
  projection_checkpoint: ProjectionCheckpointTable;
  rollout_summary_v1: RolloutSummaryTable;
  checkpoint: CheckpointTable;
  signing_key: SigningKeyTable;
  api_key: ApiKeyTable;
  snapshot_tick: SnapshotTickTable;
  snapshot_v1: SnapshotReadTable;
  drift_v1: DriftReadTable;
  version_truth_v1: VersionTruthTable;
}

export type EventRow = Selectable<EventTable>;
export type NewEventRow = Insertable<EventTable>;
export type LedgerRow = Selectable<LedgerTable>;
export type CheckpointRow = Selectable<CheckpointTable>;
export type SigningKeyRow = Selectable<SigningKeyTable>;
export type ApiKeyRow = Selectable<ApiKeyTable>;
