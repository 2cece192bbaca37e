import type { ColumnType, Insertable, Selectable } from 'kysely';

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

export interface Database {
  stream: StreamTable;
  event: EventTable;
  ledger: LedgerTable;
  sequencer_state: SequencerStateTable;
  checkpoint: CheckpointTable;
  signing_key: SigningKeyTable;
}

export type EventRow = Selectable<EventTable>;
export type NewEventRow = Insertable<EventTable>;
export type LedgerRow = Selectable<LedgerTable>;
export type CheckpointRow = Selectable<CheckpointTable>;
export type SigningKeyRow = Selectable<SigningKeyTable>;
