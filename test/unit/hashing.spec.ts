import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { entryLine } from '../../src/ledger/export-format.js';
import {
  canonicalJson,
  canonicalJsonChunks,
  chainHash,
  checkpointPayload,
  eventHash,
  eventHashFromText,
  GENESIS_HASH,
  type HashedEvent,
  ledgerHash,
  ledgerHashFromText,
  sha256Hex,
} from '../../src/ledger/hashing.js';

/**
 * An independent RFC 8785 serialiser for the property tests: keys sorted by UTF-16 code units
 * (the default `Array#sort`), strings and numbers in their ECMAScript JSON form. Built as a string
 * so JavaScript's own integer-keys-first property order cannot hide a sorting mistake.
 */
function referenceCanonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(referenceCanonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${referenceCanonical((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}

/** A deep copy whose objects list their keys in a shuffled order (a seeded Fisher-Yates). */
function reorderKeys(value: unknown, seed: number): unknown {
  let state = seed >>> 0 || 1;
  const next = () => {
    state = (state * 1_103_515_245 + 12_345) >>> 0;
    return state;
  };
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') {
      const keys = Object.keys(v);
      for (let i = keys.length - 1; i > 0; i--) {
        const j = next() % (i + 1);
        [keys[i], keys[j]] = [keys[j] as string, keys[i] as string];
      }
      const out: Record<string, unknown> = {};
      for (const k of keys) {
        // defineProperty keeps a `__proto__` key an own property, as JSON.parse makes it.
        Object.defineProperty(out, k, {
          value: walk((v as Record<string, unknown>)[k]),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return out;
    }
    return v;
  };
  return walk(value);
}

/** Any JSON value, including full-Unicode strings and dangerous keys like `__proto__`. */
const anyJson = fc.jsonValue({ stringUnit: 'grapheme', maxDepth: 4 });

const doubleFromHex = (hex: string) => Buffer.from(hex, 'hex').readDoubleBE(0);

describe('canonicalJson (RFC 8785)', () => {
  it('serialises the RFC 8785 §3.2.2 example exactly', () => {
    const input = JSON.parse(String.raw`{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }`);
    expect(canonicalJson(input)).toBe(
      String.raw`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
    );
  });

  it('sorts keys by UTF-16 code units, not code points (RFC 8785 §3.2.3)', () => {
    const input = JSON.parse(String.raw`{
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis"
    }`);
    // U+1F600 is a surrogate pair starting 0xD83D, so it sorts before U+FB33.
    expect(canonicalJson(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",' +
        '"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it('sorts integer-like keys as strings, not numerically', () => {
    expect(canonicalJson({ 9: 'a', 10: 'b', 1: 'c', a: 'd', A: 'e' })).toBe(
      '{"1":"c","10":"b","9":"a","A":"e","a":"d"}',
    );
  });

  it.each([
    [1e21, '1e+21'],
    [-0, '0'],
    [0.000001, '0.000001'],
    [1e-7, '1e-7'],
    [4.5, '4.5'],
    [-1.5e-10, '-1.5e-10'],
  ])('writes the number %s as %s', (value, expected) => {
    expect(canonicalJson(value)).toBe(expected);
    expect(canonicalJson({ n: value })).toBe(`{"n":${expected}}`);
  });

  // RFC 8785 Appendix B: IEEE 754 bit patterns and their canonical text.
  it.each([
    ['0000000000000000', '0'],
    ['8000000000000000', '0'],
    ['0000000000000001', '5e-324'],
    ['8000000000000001', '-5e-324'],
    ['7fefffffffffffff', '1.7976931348623157e+308'],
    ['ffefffffffffffff', '-1.7976931348623157e+308'],
    ['4340000000000000', '9007199254740992'],
    ['c340000000000000', '-9007199254740992'],
    ['4430000000000000', '295147905179352830000'],
    ['44b52d02c7e14af5', '9.999999999999997e+22'],
    ['44b52d02c7e14af6', '1e+23'],
    ['44b52d02c7e14af7', '1.0000000000000001e+23'],
    ['444b1ae4d6e2ef4e', '999999999999999700000'],
    ['444b1ae4d6e2ef4f', '999999999999999900000'],
    ['444b1ae4d6e2ef50', '1e+21'],
    ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
    ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555553', '333333333.3333332'],
    ['41b3de4355555554', '333333333.33333325'],
    ['41b3de4355555555', '333333333.3333333'],
    ['41b3de4355555556', '333333333.3333334'],
    ['41b3de4355555557', '333333333.33333343'],
    ['becbf647612f3696', '-0.0000033333333333333333'],
    ['43143ff3c1cb0959', '1424953923781206.2'],
  ])('Appendix B: %s → %s', (hex, expected) => {
    expect(canonicalJson(doubleFromHex(hex))).toBe(expected);
  });

  it('refuses values RFC 8785 has no form for', () => {
    expect(() => canonicalJson(Number.NaN)).toThrow();
    expect(() => canonicalJson(Number.POSITIVE_INFINITY)).toThrow();
    expect(() => canonicalJson({ s: '\ud800' })).toThrow();
    expect(() => canonicalJson(undefined)).toThrow(TypeError);
  });

  it('is the same text whatever order the keys arrived in', () => {
    fc.assert(
      fc.property(anyJson, fc.integer(), (value, seed) => {
        expect(canonicalJson(reorderKeys(value, seed))).toBe(canonicalJson(value));
      }),
    );
  });

  it('agrees with an independent RFC 8785 serialiser', () => {
    fc.assert(
      fc.property(anyJson, (value) => {
        expect(canonicalJson(value)).toBe(referenceCanonical(value));
      }),
    );
  });

  it('in chunks, joins to the same text, for any value and any chunk size', () => {
    fc.assert(
      fc.property(
        anyJson,
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 0, max: 5 }),
        (value, size, depth) => {
          const pieces = [...canonicalJsonChunks(value, size, depth)];
          expect(pieces.join('')).toBe(canonicalJson(value));
          // Every piece but the last is as long as asked, and none is empty.
          expect(pieces.slice(0, -1).every((p) => p.length >= size)).toBe(true);
          expect(pieces.every((p) => p.length > 0)).toBe(true);
        },
      ),
    );
  });

  it('in chunks, writes what has no JSON form, toJSON, holes and keys JavaScript enumerates first, as canonicalJson does', () => {
    const value = {
      b: [undefined, 1, Symbol('s'), { z: undefined, y: 2, s: Symbol('t') }],
      '10': { '9': 1, '10': 2, a: 3 },
      '9': 'nine',
      a: undefined,
      __proto__: null,
      own: JSON.parse('{"__proto__": 1, "a": 2}'),
      d: new Date(0),
      rows: Array.from({ length: 50 }, (_, i) => ({ i, s: 'x'.repeat(i) })),
      custom: { a: 1, toJSON: () => ({ z: [2, 1], y: 'custom' }) },
      list: Object.assign([3, 2], { toJSON: () => 'list' }),
      // biome-ignore lint/suspicious/noSparseArray: the hole is the point
      holes: [1, , 3],
    };
    for (const size of [1, 100, 1 << 20]) {
      expect([...canonicalJsonChunks(value, size)].join('')).toBe(canonicalJson(value));
    }
    expect([...canonicalJsonChunks(value, 100)].length).toBeGreaterThan(5);
  });

  it('sorts keys that JavaScript enumerates first (array indices) as text, and keeps "__proto__"', () => {
    const value = { b: 1, '10': 2, '9': 3, a: { '1': 1, '01': 2 } };
    expect(canonicalJson(value)).toBe('{"10":2,"9":3,"a":{"01":2,"1":1},"b":1}');
    const parsed = JSON.parse('{"b":2,"__proto__":{"x":1},"a":1}');
    expect(canonicalJson(parsed)).toBe('{"__proto__":{"x":1},"a":1,"b":2}');
    expect(canonicalJson({ b: undefined, a: [undefined, 1] })).toBe('{"a":[null,1]}');
    // Fastify's request params: an object whose prototype is an empty object with no prototype.
    function NullObject() {}
    NullObject.prototype = Object.create(null);
    const params = new (NullObject as unknown as new () => Record<string, string>)();
    params.b = '2';
    params.a = '1';
    expect(canonicalJson({ params })).toBe('{"params":{"a":"1","b":"2"}}');
    // Boxed primitives and objects with toJSON are left to the canonicalize package.
    expect(canonicalJson({ d: new Date(0) })).toBe('{"d":"1970-01-01T00:00:00.000Z"}');
    // The input is left as it was.
    expect(Object.keys(value)).toEqual(['9', '10', 'b', 'a']);
  });

  it('sorts wide objects, sent in reverse order, as narrow ones', () => {
    // Past 16 keys the sort is Array#sort's; below, an insertion sort: both must agree with the
    // reference, on keys of mixed lengths (the order jsonb gives them back in).
    for (const width of [2, 16, 17, 2000]) {
      const keys = Array.from({ length: width }, (_, i) => `k${i}`).reverse();
      const value = Object.fromEntries(keys.map((k, i) => [k, { [`z${i}`]: i, a: [k] }]));
      expect(canonicalJson(value)).toBe(referenceCanonical(value));
    }
  });

  it('agrees with the reference on objects with numeric and mixed keys', () => {
    const key = fc.oneof(fc.nat().map(String), fc.string(), fc.constantFrom('0', '01', '-1', '4294967295'));
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small' },
        fc.jsonValue({ maxDepth: 1 }),
        fc.array(tie('node'), { maxLength: 4 }),
        fc.dictionary(key, tie('node'), { maxKeys: 6 }),
      ),
    })).node;
    fc.assert(
      fc.property(value, (v) => {
        expect(canonicalJson(v)).toBe(referenceCanonical(v));
      }),
      { numRuns: 500 },
    );
  });

  it('is a fixed point of a JSON.parse round trip, and parses back to the same value', () => {
    fc.assert(
      fc.property(anyJson, (value) => {
        const text = canonicalJson(value);
        expect(canonicalJson(JSON.parse(text))).toBe(text);
        expect(canonicalJson(JSON.parse(JSON.stringify(value)))).toBe(text);
        expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(value)));
      }),
    );
  });
});

describe('chainHash', () => {
  it('is sha256(prevHash ‖ canonical(body)) in lower-case hex (a fixed vector)', () => {
    // printf '%s' "$(printf '0%.0s' {1..64}){\"a\":1}" | sha256sum
    expect(chainHash(GENESIS_HASH, { a: 1 })).toBe(
      'fc6cee09194dd2578bd7664604fcb72a539066fd34544cea0009c43eb6cdc289',
    );
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(GENESIS_HASH).toBe('0'.repeat(64));
  });

  it('changes when any character of the previous hash changes', () => {
    const hex = fc.stringMatching(/^[0-9a-f]{64}$/);
    fc.assert(
      fc.property(hex, anyJson, fc.nat(63), fc.integer({ min: 1, max: 15 }), (prev, body, at, delta) => {
        const digit = (Number.parseInt(prev[at] as string, 16) + delta) % 16;
        const changed = `${prev.slice(0, at)}${digit.toString(16)}${prev.slice(at + 1)}`;
        expect(chainHash(changed, body)).not.toBe(chainHash(prev, body));
      }),
    );
  });

  it('changes when any character of the body changes', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', minLength: 1 }),
        fc.nat(),
        fc.integer({ min: 0, max: 0xd7ff }),
        (text, pick, codePoint) => {
          const chars = [...text];
          const at = pick % chars.length;
          const replacement = String.fromCodePoint(codePoint);
          fc.pre(replacement !== chars[at]);
          chars[at] = replacement;
          expect(chainHash(GENESIS_HASH, { text: chars.join('') })).not.toBe(
            chainHash(GENESIS_HASH, { text }),
          );
        },
      ),
    );
  });

  it('changes when a number, a key or the nesting changes', () => {
    const base = chainHash(GENESIS_HASH, { a: [1, 2], b: 'x' });
    expect(chainHash(GENESIS_HASH, { a: [1, 3], b: 'x' })).not.toBe(base);
    expect(chainHash(GENESIS_HASH, { a: [2, 1], b: 'x' })).not.toBe(base);
    expect(chainHash(GENESIS_HASH, { A: [1, 2], b: 'x' })).not.toBe(base);
    expect(chainHash(GENESIS_HASH, { a: [[1, 2]], b: 'x' })).not.toBe(base);
    expect(chainHash(GENESIS_HASH, { a: [1, 2], b: 'x', c: null })).not.toBe(base);
    expect(chainHash(GENESIS_HASH, { b: 'x', a: [1, 2] })).toBe(base);
  });
});

const sampleEvent: HashedEvent = {
  eventId: '00000000-0000-4000-8000-000000000001',
  streamId: 'rollout-1',
  streamVersion: 1,
  type: 'RolloutPlanned',
  schemaVersion: 1,
  data: { b: 2, a: 1 },
  metadata: {},
  recordedAt: '2026-01-01T00:00:00.000Z',
};

describe('eventHash and ledgerHash', () => {
  it('hash an event in the documented form (a fixed vector an offline verifier can reproduce)', () => {
    // sha256 of GENESIS_HASH followed by:
    // {"data":{"a":1,"b":2},"eventId":"00000000-0000-4000-8000-000000000001","metadata":{},
    //  "recordedAt":"2026-01-01T00:00:00.000Z","schemaVersion":1,"streamId":"rollout-1",
    //  "streamVersion":1,"type":"RolloutPlanned"}
    expect(eventHash(GENESIS_HASH, sampleEvent)).toBe(
      'c1ac072c005e0880fe8695f054b3745c9f5390f5af96a651b3d40300a00ada4a',
    );
  });

  it.each<[string, Partial<HashedEvent>]>([
    ['eventId', { eventId: '00000000-0000-4000-8000-000000000002' }],
    ['streamId', { streamId: 'rollout-2' }],
    ['streamVersion', { streamVersion: 2 }],
    ['type', { type: 'RolloutStarted' }],
    ['schemaVersion', { schemaVersion: 2 }],
    ['data', { data: { a: 1, b: 3 } }],
    ['metadata', { metadata: { actor: 'mallory' } }],
    ['recordedAt', { recordedAt: '2026-01-01T00:00:00.001Z' }],
  ])('eventHash covers %s', (_field, change) => {
    expect(eventHash(GENESIS_HASH, { ...sampleEvent, ...change })).not.toBe(
      eventHash(GENESIS_HASH, sampleEvent),
    );
  });

  it('eventHash ignores fields it does not cover and the key order of data', () => {
    const extra = { ...sampleEvent, data: { a: 1, b: 2 }, hash: 'ignored', tx_id: '42' };
    expect(eventHash(GENESIS_HASH, extra)).toBe(eventHash(GENESIS_HASH, sampleEvent));
  });

  it('ledgerHash covers the position, the event hash and the event', () => {
    const e = { ...sampleEvent, hash: eventHash(GENESIS_HASH, sampleEvent) };
    const base = ledgerHash(GENESIS_HASH, 1, e);
    expect(ledgerHash(GENESIS_HASH, 2, e)).not.toBe(base);
    expect(ledgerHash(GENESIS_HASH, 1, { ...e, hash: 'f'.repeat(64) })).not.toBe(base);
    expect(ledgerHash(GENESIS_HASH, 1, { ...e, data: { a: 2, b: 2 } })).not.toBe(base);
    expect(ledgerHash('1'.repeat(64), 1, e)).not.toBe(base);
    expect(ledgerHash(GENESIS_HASH, 1, { ...e })).toBe(base);
  });

  it('the text forms give the same hashes as the value forms, for any event', () => {
    // The append and the sequencer hash from stored canonical text; the verifiers from the values.
    // Any difference would make every new ledger fail verification.
    const text = fc.string({ unit: 'grapheme' });
    const anEvent = fc.record({
      eventId: fc.uuid(),
      streamId: text,
      streamVersion: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      type: text,
      schemaVersion: fc.integer({ min: 1, max: 1000 }),
      data: anyJson,
      metadata: fc.dictionary(text, anyJson, { maxKeys: 4 }),
      recordedAt: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
    });
    const hex = fc.stringMatching(/^[0-9a-f]{64}$/);
    fc.assert(
      fc.property(
        hex,
        hex,
        fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        anEvent,
        (prev, own, at, e) => {
          const payload = { dataJcs: canonicalJson(e.data), metadataJcs: canonicalJson(e.metadata) };
          expect(eventHashFromText(prev, e, payload)).toBe(eventHash(prev, e));
          const withHash = { ...e, hash: own };
          expect(ledgerHashFromText(prev, at, withHash, payload)).toBe(ledgerHash(prev, at, withHash));
        },
      ),
      { numRuns: 500 },
    );
  });

  it("an export's entry line, joined from the stored text, is the entry's canonical JSON", () => {
    // The export writes entryLine; the offline verifier parses it and hashes the values again.
    const text = fc.string({ unit: 'grapheme' });
    const hex = fc.stringMatching(/^[0-9a-f]{64}$/);
    const anEntry = fc.record({
      position: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      hash: hex,
      prevHash: hex,
      streamId: text,
      streamVersion: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      eventId: fc.uuid(),
      type: text,
      schemaVersion: fc.integer({ min: 1, max: 1000 }),
      data: anyJson,
      metadata: fc.dictionary(text, anyJson, { maxKeys: 4 }),
      recordedAt: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      eventHash: hex,
      eventPrevHash: hex,
    });
    fc.assert(
      fc.property(anEntry, (e) => {
        const { data, metadata, ...rest } = e;
        const line = entryLine({
          ...rest,
          dataJcs: canonicalJson(data),
          metadataJcs: canonicalJson(metadata),
        });
        expect(line).toBe(referenceCanonical({ kind: 'entry', ...e }));
        expect(line).toBe(canonicalJson({ kind: 'entry', ...e }));
      }),
      { numRuns: 500 },
    );
  });

  it('checkpointPayload is canonical JSON with a type tag', () => {
    expect(
      checkpointPayload({
        position: 7,
        headHash: 'ab'.repeat(32),
        createdAt: '2026-01-01T00:00:00.000Z',
        keyId: 'k1',
      }),
    ).toBe(
      `{"createdAt":"2026-01-01T00:00:00.000Z","headHash":"${'ab'.repeat(32)}","keyId":"k1","position":7,"type":"upgrade-ledger/checkpoint/v1"}`,
    );
  });
});
