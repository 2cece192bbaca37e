import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';

/** The hash before the first entry of any chain. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * RFC 8785 (JCS) canonical JSON: sorted keys, no insignificant white space, ECMAScript number
 * form. The same value always gives the same bytes, whatever key order it arrived in.
 *
 * @example
 * canonicalJson({ b: 1, a: [true, null] }); // '{"a":[true,null],"b":1}'
 */
export function canonicalJson(value: unknown): string {
  const out = canonicalize(value);
  if (out === undefined) throw new TypeError('value has no JSON form');
  return out;
}

export function sha256Hex(input: string): string {
  return createHash('sha256').update(input, 'utf8').digest('hex');
}

/** `sha256(prevHash ‖ canonical(body))`, hex. The one link rule of both chains. */
export function chainHash(prevHash: string, body: unknown): string {
  return sha256Hex(prevHash + canonicalJson(body));
}

/** What an event is, for hashing: every stored field that an auditor relies on. */
export interface HashedEvent {
  eventId: string;
  streamId: string;
  streamVersion: number;
  type: string;
  schemaVersion: number;
  data: unknown;
  metadata: unknown;
  /** ISO-8601 with milliseconds, UTC (`Date#toISOString`). */
  recordedAt: string;
}

/** The per-stream link: hash of an event given the previous event's hash in its stream. */
export function eventHash(prevHash: string, e: HashedEvent): string {
  return chainHash(prevHash, {
    eventId: e.eventId,
    streamId: e.streamId,
    streamVersion: e.streamVersion,
    type: e.type,
    schemaVersion: e.schemaVersion,
    data: e.data,
    metadata: e.metadata,
    recordedAt: e.recordedAt,
  });
}

/**
 * The global link: hash of the ledger entry at `position`. It covers the position (so entries
 * cannot be reordered), the whole event, and the event's own per-stream hash.
 */
export function ledgerHash(prevHash: string, position: number, e: HashedEvent & { hash: string }): string {
  return chainHash(prevHash, {
    position,
    eventHash: e.hash,
    eventId: e.eventId,
    streamId: e.streamId,
    streamVersion: e.streamVersion,
    type: e.type,
    schemaVersion: e.schemaVersion,
    data: e.data,
    metadata: e.metadata,
    recordedAt: e.recordedAt,
  });
}

/** The bytes a checkpoint signature covers. */
export function checkpointPayload(c: {
  position: number;
  headHash: string;
  createdAt: string;
  keyId: string;
}): string {
  return canonicalJson({
    type: 'upgrade-ledger/checkpoint/v1',
    position: c.position,
    headHash: c.headHash,
    createdAt: c.createdAt,
    keyId: c.keyId,
  });
}
