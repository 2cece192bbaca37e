import type { Json } from '../database/schema.js';
import type { CanonicalPayload } from './hashing.js';

export interface LedgerEntry {
  position: number;
  hash: string;
  prevHash: string;
  streamId: string;
  streamVersion: number;
  eventId: string;
  type: string;
  schemaVersion: number;
  data: Json;
  metadata: { [key: string]: Json };
  recordedAt: string;
  /** The event's own per-stream hash. */
  eventHash: string;
  eventPrevHash: string;
}

/**
 * A ledger entry with its payload as the RFC 8785 text the append hashed and stored, not as
 * values: what the export writes (`LedgerRepository.readText`).
 */
export type LedgerEntryText = Omit<LedgerEntry, 'data' | 'metadata'> & CanonicalPayload;

/**
 * What projectors read of a ledger entry: the event without its hashes, which only verification
 * needs (`LedgerRepository.readForProjection`).
 */
export type ProjectedEntry = Pick<
  LedgerEntry,
  'position' | 'streamId' | 'streamVersion' | 'eventId' | 'type' | 'data' | 'metadata' | 'recordedAt'
>;

export interface Checkpoint {
  position: number;
  headHash: string;
  createdAt: string;
  keyId: string;
  signature: string;
}

export interface PublicKeyInfo {
  keyId: string;
  algorithm: string;
  publicKeyPem: string;
  createdAt: string;
}

export type VerifyResult =
  | { ok: true; verifiedThrough: number; checkpointsVerified: number }
  | { ok: false; brokenAt: number; reason: string; verifiedThrough: number };
