import { hash } from 'node:crypto';
import canonicalize from 'canonicalize';

/** The hash before the first entry of any chain. */
export const GENESIS_HASH = '0'.repeat(64);

/** Returned by `sortedForJson` for a value the fast path does not take. */
const SLOW = Symbol('slow');
/** Keys that JavaScript enumerates before all others (array indices), whatever their order. */
const INDEX_LIKE = /^[0-9]+$/;

/**
 * The value, or a copy with every object's keys inserted in sorted order, such that
 * `JSON.stringify` of it is its RFC 8785 form: or SLOW when that cannot be promised (a key that
 * JavaScript would enumerate first, a non-finite number, a lone surrogate, anything that is not a
 * plain JSON value). Objects already in order are returned as they are, so a value parsed from
 * canonical text costs a walk and no copy.
 */
function sortedForJson(value: unknown, depth: number): unknown {
  switch (typeof value) {
    case 'string':
      return value.isWellFormed() ? value : SLOW;
    case 'number':
      return Number.isFinite(value) ? value : SLOW;
    case 'boolean':
      return value;
    case 'undefined':
      // Left out of objects and null in arrays, by both serialisers (parsed DTOs have these).
      return undefined;
    case 'object':
      break;
    default:
      return SLOW;
  }
  if (value === null) return null;
  if (depth > 256) return SLOW;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) return SLOW;
      const v = value[i];
      const s = sortedForJson(v, depth + 1);
      if (s === SLOW) return SLOW;
      if (s !== v) {
        copy ??= value.slice();
        copy[i] = s;
      }
    }
    return copy ?? value;
  }
  if (!isPlainPrototype(Object.getPrototypeOf(value))) return SLOW;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  let inOrder = true;
  // The members' sorted forms, kept only once one differs from its member or a key is out of
  // order: an object already canonical (all of a parsed plan) costs its walk and no copy.
  let values: unknown[] | undefined;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    // "__proto__" would set the copy's prototype instead of adding a key.
    if (INDEX_LIKE.test(k) || k === '__proto__' || !k.isWellFormed()) return SLOW;
    const v = obj[k];
    const s = sortedForJson(v, depth + 1);
    if (s === SLOW) return SLOW;
    if (i > 0 && (keys[i - 1] as string) > k) inOrder = false;
    if (values === undefined && (s !== v || !inOrder)) values = membersBefore(obj, keys, i);
    if (values !== undefined) values[i] = s;
  }
  if (values === undefined) return value;
  const order = inOrder ? undefined : sortedIndices(keys);
  const copy: Record<string, unknown> = {};
  for (let n = 0; n < keys.length; n++) {
    const i = order === undefined ? n : (order[n] as number);
    copy[keys[i] as string] = values[i];
  }
  return copy;
}

/** The values of `obj`'s first `count` keys (each its own sorted form), in a list as long as `keys`. */
function membersBefore(obj: Record<string, unknown>, keys: string[], count: number): unknown[] {
  const values = new Array<unknown>(keys.length);
  for (let i = 0; i < count; i++) values[i] = obj[keys[i] as string];
  return values;
}

/** Objects with at most this many keys are sorted by insertion; wider ones by `Array#sort`. */
const INSERTION_SORT_MAX = 16;

/**
 * The indices of `keys` in the keys' order (UTF-16 code units, as RFC 8785 sorts). A small
 * object (all of a plan's) is sorted by insertion, which allocates nothing more: `Array#sort`'s
 * scratch was most of what the walk allocated. A wide one (free-form JSON can hold 100,000 keys)
 * goes to `Array#sort`, whose time does not grow with the square of the keys.
 */
function sortedIndices(keys: string[]): number[] {
  const order = new Array<number>(keys.length);
  if (keys.length > INSERTION_SORT_MAX) {
    for (let i = 0; i < keys.length; i++) order[i] = i;
    return order.sort((a, b) => ((keys[a] as string) < (keys[b] as string) ? -1 : 1));
  }
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    let j = i;
    while (j > 0 && (keys[order[j - 1] as number] as string) > key) {
      order[j] = order[j - 1] as number;
      j--;
    }
    order[j] = i;
  }
  return order;
}

/**
 * An object's prototype that adds nothing to its JSON: Object.prototype, none, or an empty object
 * without a prototype (the "null object" of routers such as find-my-way, which makes Fastify's
 * request params).
 */
function isPlainPrototype(proto: unknown): boolean {
  if (proto === Object.prototype || proto === null) return true;
  return (
    typeof proto === 'object' && Object.getPrototypeOf(proto) === null && Reflect.ownKeys(proto).length === 0
  );
}

/**
 * RFC 8785 (JCS) canonical JSON: sorted keys, no insignificant white space, ECMAScript number
 * form. The same value always gives the same bytes, whatever key order it arrived in.
 *
 * Plain JSON values (all the service ever hashes) are sorted in place of a copy and serialised by
 * the engine's own `JSON.stringify`, whose string and number forms are the ones RFC 8785 defines;
 * anything else goes through the `canonicalize` package, with its errors. The unit tests hold the
 * two to the same output on generated values.
 *
 * @example
 * canonicalJson({ b: 1, a: [true, null] }); // '{"a":[true,null],"b":1}'
 */
export function canonicalJson(value: unknown): string {
  const sorted = sortedForJson(value, 0);
  const out = sorted === SLOW ? canonicalize(value) : JSON.stringify(sorted);
  if (out === undefined) throw new TypeError('value has no JSON form');
  return out;
}

/**
 * `canonicalJson(value)` in pieces, for a value too large to hold twice (a period report over
 * 100,000 rollouts is about 100 MB of JSON): every piece but the last is at least `chunkChars`
 * long, and the joined pieces are the same text for any JSON value (and for Dates, `toJSON`,
 * `undefined` and symbols; a function inside an array or object is written as `JSON.stringify`
 * writes it, where `canonicalJson`'s fallback, the `canonicalize` package, writes text that is
 * not JSON). Plain objects and arrays down to `depth` levels are walked here, each of their
 * members written by `canonicalJson` on its own; so the whole text is never held, and neither is
 * a sorted copy of the whole value.
 *
 * @example
 * for (const piece of canonicalJsonChunks(report)) stream.write(piece);
 */
export function* canonicalJsonChunks(value: unknown, chunkChars = 64 * 1024, depth = 3): Generator<string> {
  let out = '';
  function* walk(v: unknown, level: number): Generator<string> {
    // What has a toJSON method is written as canonicalJson writes it (a Date, say).
    const walkable =
      level < depth &&
      v !== null &&
      typeof v === 'object' &&
      typeof (v as { toJSON?: unknown }).toJSON !== 'function';
    // An array with holes too: canonicalJson's slow path has its own way with them.
    if (walkable && Array.isArray(v) && isDense(v)) {
      out += '[';
      for (let i = 0; i < v.length; i++) {
        if (i > 0) out += ',';
        const item: unknown = v[i];
        // As JSON.stringify (and so canonicalJson) writes what has no JSON form inside an array.
        if (item === undefined || typeof item === 'function' || typeof item === 'symbol') out += 'null';
        else yield* walk(item, level + 1);
        if (out.length >= chunkChars) {
          yield out;
          out = '';
        }
      }
      out += ']';
      return;
    }
    if (walkable && isPlainPrototype(Object.getPrototypeOf(v))) {
      const obj = v as Record<string, unknown>;
      // Sorted as RFC 8785 sorts (UTF-16 code units), each key written here as text, so a key
      // that JavaScript enumerates first needs nothing special.
      const keys = Object.keys(obj).sort();
      out += '{';
      let first = true;
      for (const key of keys) {
        const member = obj[key];
        // As JSON.stringify leaves them out of an object.
        if (member === undefined || typeof member === 'function' || typeof member === 'symbol') continue;
        out += `${first ? '' : ','}${JSON.stringify(key)}:`;
        first = false;
        yield* walk(member, level + 1);
      }
      out += '}';
      return;
    }
    out += canonicalJson(v);
  }
  yield* walk(value, 0);
  if (out !== '') yield out;
}

/** Whether every index of the array holds an element (no holes). */
function isDense(array: readonly unknown[]): boolean {
  for (let i = 0; i < array.length; i++) if (!(i in array)) return false;
  return true;
}

/** SHA-256 of the UTF-8 bytes, hex. One-shot `crypto.hash`: no Hash object per call (a quarter faster). */
export function sha256Hex(input: string): string {
  return hash('sha256', input, 'hex');
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

/**
 * The RFC 8785 text of an event's data and metadata, as the append computed it (and stored it in
 * `event.data_jcs`/`metadata_jcs`). With it, both links below are built by joining strings: no
 * walk of the values, which is where the sequencer spent most of its CPU.
 */
export interface CanonicalPayload {
  dataJcs: string;
  metadataJcs: string;
}

/** The fields of an event besides its payload. */
export type EventEnvelope = Omit<HashedEvent, 'data' | 'metadata'>;

// JSON.stringify is exactly RFC 8785's form for strings and numbers (the standard defines it so).
const j = JSON.stringify;

/**
 * `eventHash` from the payload's canonical text: the same bytes, so the same hash (the unit
 * tests check this against `eventHash` on generated events).
 */
export function eventHashFromText(prevHash: string, e: EventEnvelope, p: CanonicalPayload): string {
  return sha256Hex(
    `${prevHash}{"data":${p.dataJcs},"eventId":${j(e.eventId)},"metadata":${p.metadataJcs},` +
      `"recordedAt":${j(e.recordedAt)},"schemaVersion":${j(e.schemaVersion)},"streamId":${j(e.streamId)},` +
      `"streamVersion":${j(e.streamVersion)},"type":${j(e.type)}}`,
  );
}

/** `ledgerHash` from the payload's canonical text: the same bytes, so the same hash. */
export function ledgerHashFromText(
  prevHash: string,
  position: number,
  e: EventEnvelope & { hash: string },
  p: CanonicalPayload,
): string {
  return sha256Hex(
    `${prevHash}{"data":${p.dataJcs},"eventHash":${j(e.hash)},"eventId":${j(e.eventId)},` +
      `"metadata":${p.metadataJcs},"position":${j(position)},"recordedAt":${j(e.recordedAt)},` +
      `"schemaVersion":${j(e.schemaVersion)},"streamId":${j(e.streamId)},` +
      `"streamVersion":${j(e.streamVersion)},"type":${j(e.type)}}`,
  );
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
