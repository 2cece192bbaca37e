import { BadRequestException } from '@nestjs/common';

/**
 * How deep a request body may nest. Deeper than any schema reads (the validation pipe and the
 * event store stop at 64 levels, naming the field), so those keep their own messages; this cap
 * only bounds the work of the scan and refuses the absurd early.
 */
export const MAX_JSON_DEPTH = 128;

/** What makes valid JSON text unacceptable to an audit log: where, and why. */
export interface JsonAmbiguity {
  /** The field, as the validation pipe names fields: `products.0.product`, or `(body)`. */
  field: string;
  message: string;
}

/** Valid JSON that is refused all the same: a duplicate key, or nesting past the cap. */
export class StrictJsonError extends SyntaxError {
  readonly statusCode = 400;
  constructor(readonly ambiguity: JsonAmbiguity) {
    super(`${ambiguity.field}: ${ambiguity.message}`);
    this.name = 'StrictJsonError';
  }
}

interface ObjectFrame {
  kind: 'object';
  keys: Set<string>;
  /** The key whose value is being read (undefined before the first). */
  key: string | undefined;
  /** The next string at this level is a key (after `{` or `,`), not a value. */
  expectKey: boolean;
}

interface ArrayFrame {
  kind: 'array';
  index: number;
}

type Frame = ObjectFrame | ArrayFrame;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

const segmentOf = (frame: Frame): string =>
  frame.kind === 'array' ? String(frame.index) : String(frame.key);

/** What one pass over JSON text found: see scanJsonText. */
export interface JsonTextScan {
  /** The first duplicate key or nesting past the cap, if any: the text is refused. */
  ambiguity: JsonAmbiguity | undefined;
  /** The most containers open at once (`{"a": [1]}` → 2). */
  depth: number;
  /** Some string (key or value) holds a backslash escape: only an escape can spell NUL or a lone surrogate. */
  escapes: boolean;
  /** Some key is `__proto__`, `constructor` or `prototype`, as written. */
  reservedKey: boolean;
}

/**
 * Keys no input may carry anywhere: `__proto__`, `constructor` and `prototype`, as JavaScript
 * reads them when it copies or merges objects. The validation pipe and the event store refuse them.
 */
export const isReservedKey = (key: string): boolean =>
  key === '__proto__' || key === 'constructor' || key === 'prototype';

/**
 * One pass over JSON text that JSON.parse has already accepted: the first duplicate key (at any
 * depth) or the first nesting past `maxDepth`, and what the parsed value can hold without
 * walking it. RFC 8259 leaves duplicate names to the reader (JSON.parse keeps the last): an
 * audit log must not record one reading of a request when its sender may have meant another.
 *
 * With an explicit stack, never recursion, so it is linear in the length and safe at any depth.
 * Keys are compared decoded (`"a"` and `"\u0061"` are one key), and never normalised (`"é"` and
 * `"e\u0301"` are two).
 */
export function scanJsonText(text: string, maxDepth = MAX_JSON_DEPTH): JsonTextScan {
  const frames: Frame[] = [];
  const n = text.length;
  let depth = 0;
  let escapes = false;
  let reservedKey = false;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // Skip the string whole: braces and commas inside it are text.
      let j = i + 1;
      let escaped = false;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === BACKSLASH) {
          escaped = true;
          j += 2;
        } else if (d === QUOTE) {
          break;
        } else {
          j++;
        }
      }
      if (escaped) escapes = true;
      const top = frames.at(-1);
      if (top?.kind === 'object' && top.expectKey) {
        const key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        if (top.keys.has(key)) {
          const field = [...frames.slice(0, -1).map(segmentOf), key].join('.');
          const message = `the key ${JSON.stringify(key)} appears more than once in this object; send it once`;
          return { ambiguity: { field, message }, depth, escapes, reservedKey };
        }
        if (isReservedKey(key)) reservedKey = true;
        top.keys.add(key);
        top.key = key;
        top.expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (frames.length >= maxDepth) {
        // Named after the top-level field it is in, as the validation pipe names deep values.
        const first = frames[0];
        const field = first?.kind === 'object' && first.key !== undefined ? first.key : '(body)';
        const message = `must not nest deeper than ${maxDepth} levels`;
        return { ambiguity: { field, message }, depth: frames.length + 1, escapes, reservedKey };
      }
      frames.push(
        c === OPEN_OBJECT
          ? { kind: 'object', keys: new Set(), key: undefined, expectKey: true }
          : { kind: 'array', index: 0 },
      );
      if (frames.length > depth) depth = frames.length;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      frames.pop();
    } else if (c === COMMA) {
      const top = frames.at(-1);
      if (top?.kind === 'array') top.index++;
      else if (top) top.expectKey = true;
    }
    i++;
  }
  return { ambiguity: undefined, depth, escapes, reservedKey };
}

/**
 * The first duplicate key (at any depth) or the first nesting past `maxDepth` in JSON text that
 * JSON.parse has already accepted; undefined when there is neither (see scanJsonText).
 *
 * @example
 * findJsonAmbiguity('{"a": {"b": 1, "b": 2}}');
 * // → { field: 'a.b', message: 'the key "b" appears more than once in this object; send it once' }
 * findJsonAmbiguity('{"a": 1}'); // → undefined
 */
export function findJsonAmbiguity(text: string, maxDepth = MAX_JSON_DEPTH): JsonAmbiguity | undefined {
  return scanJsonText(text, maxDepth).ambiguity;
}

/**
 * How deep a value may nest to be stored: the validation pipe's limit and the event store's. A
 * body the scan found no deeper is not walked again.
 */
export const MAX_VALUE_DEPTH = 64;

/**
 * Why a string (or key) cannot be stored, or undefined: Postgres text and `jsonb` hold neither
 * NUL nor a lone UTF-16 surrogate (valid in a JavaScript string, not encodable as UTF-8).
 */
export function unstorableText(s: string): string | undefined {
  if (s.includes('\u0000')) return 'must not contain the NUL character (U+0000)';
  if (!s.isWellFormed()) return 'must be well-formed Unicode (lone surrogate)';
  return undefined;
}

/**
 * Bodies parsed here from text with no escape, no reserved key and at most MAX_VALUE_DEPTH
 * levels: they hold no NUL, no lone surrogate (the text was decoded from UTF-8, and only an
 * escape could spell either), no key the validation pipe refuses, and nothing nested too deep,
 * so the pipe need not walk them again (see validation.pipe.ts). Weak: a body is forgotten with
 * its request.
 */
const plainBodies = new WeakSet<object>();

/** True when `value` is a body parsed from text that the scan found plain (see plainBodies). */
export function isPlainParsedBody(value: unknown): boolean {
  // WeakSet#has is false for anything that is not an object.
  return plainBodies.has(value as object);
}

/**
 * JSON.parse, except that a duplicate key anywhere, or nesting deeper than `maxDepth`, is a
 * StrictJsonError naming the field. Invalid JSON throws JSON.parse's own SyntaxError.
 *
 * @example
 * strictParse('{"title": "a"}'); // → { title: 'a' }
 * strictParse('{"title": "a", "title": "b"}'); // throws StrictJsonError, field 'title'
 */
export function strictParse(text: string, maxDepth = MAX_JSON_DEPTH): unknown {
  const value: unknown = JSON.parse(text);
  const ambiguity = findJsonAmbiguity(text, maxDepth);
  if (ambiguity) throw new StrictJsonError(ambiguity);
  return value;
}

type Done = (err: Error | null, body?: unknown) => void;

/** Refuses bytes that are not UTF-8, keeping a BOM as the text's first character (as Buffer does). */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The text of a body, or undefined when its bytes are not UTF-8 (RFC 8259 §8.1 requires it).
 * Decoding leniently would turn each bad sequence into U+FFFD and record that as what was sent.
 *
 * @example
 * decodeUtf8(Buffer.from('{"a": "é"}')); // → '{"a": "é"}'
 * decodeUtf8(Buffer.from([0x7b, 0xff, 0x7d])); // → undefined
 */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return UTF8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** True for a body of JSON whitespace only (or none): no body, rather than bad JSON. */
export function isBlank(body: string | Uint8Array): boolean {
  if (typeof body === 'string') return body.trim() === '';
  return body.every((b) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d);
}

/**
 * Runs Fastify's own JSON parser (syntax errors, prototype poisoning, as Fastify answers them),
 * then refuses what it would have let through ambiguously, each a 400 problem naming the field
 * as the validation pipe's do: bytes that are not UTF-8 (given the raw bytes), a duplicate key,
 * nesting past MAX_JSON_DEPTH. A body the same scan found plain is remembered as such
 * (isPlainParsedBody), so the validation pipe does not walk it a second time.
 *
 * @example
 * const parseJson = fastify.getDefaultJsonParser('error', 'error');
 * fastify.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) =>
 *   parseJsonStrictly(parseJson, request, body, done));
 */
export function parseJsonStrictly<R>(
  parse: (request: R, text: string, done: Done) => void,
  request: R,
  body: string | Uint8Array,
  done: Done,
): void {
  const text = typeof body === 'string' ? body : decodeUtf8(body);
  if (text === undefined) {
    done(new BadRequestException(['(body): must be UTF-8 (RFC 8259); it has bytes that are not']));
    return;
  }
  parse(request, text, (err, value) => {
    if (err) {
      done(err);
      return;
    }
    const scan = scanJsonText(text);
    if (scan.ambiguity) {
      done(new BadRequestException([`${scan.ambiguity.field}: ${scan.ambiguity.message}`]));
      return;
    }
    if (
      typeof value === 'object' &&
      value !== null &&
      !scan.escapes &&
      !scan.reservedKey &&
      scan.depth <= MAX_VALUE_DEPTH
    )
      plainBodies.add(value);
    done(null, value);
  });
}
