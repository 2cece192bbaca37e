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
}

export type EventRow = Selectable<EventTable>;
export type NewEventRow = Insertable<EventTable>;
export type LedgerRow = Selectable<LedgerTable>;
export type CheckpointRow = Selectable<CheckpointTable>;
export type SigningKeyRow = Selectable<SigningKeyTable>;
export type ApiKeyRow = Selectable<ApiKeyTable>;
