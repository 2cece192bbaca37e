import type { Json } from '../database/schema.js';

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
