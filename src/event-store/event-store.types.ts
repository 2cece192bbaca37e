import type { ExpectedVersion } from '../common/errors.js';
import type { Json } from '../database/schema.js';

export type { ExpectedVersion };

export interface NewEvent {
  /** Client-chosen UUID for idempotency; generated when absent. */
  eventId?: string;
  type: string;
  schemaVersion?: number;
  data: Json;
  metadata?: { [key: string]: Json };
}

export interface AppendOptions {
  expectedVersion?: ExpectedVersion;
  /** Defaults to the stream id's prefix before the first `-`. */
  streamType?: string;
}

export interface AppendResult {
  /** The stream's version after the append (its last event's version). */
  streamVersion: number;
  eventIds: string[];
  /** True when this call was a retry that recorded nothing new. */
  duplicate: boolean;
}

export interface StoredEvent {
  eventId: string;
  streamId: string;
  streamVersion: number;
  type: string;
  schemaVersion: number;
  data: Json;
  metadata: { [key: string]: Json };
  recordedAt: string;
  prevHash: string;
  hash: string;
}

export interface ReadStreamOptions {
  fromVersion?: number;
  toVersion?: number;
}

/**
 * What folding a stream needs of one event, as `EventStore.readStreamFrom` reads it: no metadata,
 * no event id, `recordedAt` as ISO text.
 */
export interface FoldEvent {
  streamVersion: number;
  type: string;
  /** Null for the event the read started at (it is only checked, by its hash). */
  data: Json | null;
  /** The size of `data` as stored JSON text, in bytes (0 when `data` is null). */
  dataBytes: number;
  recordedAt: string;
  hash: string;
  /** Its ledger position, null until sequenced. */
  position: number | null;
}
