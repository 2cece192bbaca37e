import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidInput } from '../../src/common/errors.js';
import type { Json } from '../../src/database/schema.js';
import { assertStorableJson } from '../../src/event-store/storable-json.js';
import { canonicalJson } from '../../src/ledger/hashing.js';

/** The InvalidInput thrown for `value` at `data`, or undefined when it is accepted. */
function rejection(value: unknown): InvalidInput | undefined {
  try {
    assertStorableJson(value, 'data');
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidInput);
    return err as InvalidInput;
  }
}

/** `depth` levels of `{a: [{a: [ … 'leaf' … ]}]}`, outermost an object. */
function nested(depth: number): Json {
  let value: Json = 'leaf';
  for (let level = depth - 1; level >= 0; level--) value = level % 2 ? [value] : { a: value };
  return value;
}

const storableString = fc.string({ unit: 'grapheme', maxLength: 16 }).map((s) => s.replaceAll('\u0000', ''));
const storableKey = storableString.filter((k) => !['__proto__', 'constructor', 'prototype'].includes(k));
const storableJson: fc.Arbitrary<Json> = fc.letrec<{ value: Json }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    storableString,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(storableKey, tie('value'), { maxKeys: 4 }),
  ),
})).value;

describe('assertStorableJson', () => {
  it('accepts any plain JSON value without NUL, lone surrogates or reserved keys', () => {
    fc.assert(
      fc.property(storableJson, (value) => {
        expect(rejection(value)).toBeUndefined();
        // What it accepts has one JSON form, so it hashes the same after a database round trip.
        expect(canonicalJson(JSON.parse(JSON.stringify(value)))).toBe(canonicalJson(value));
      }),
    );
  });

  it('accepts well-formed astral characters, RTL marks, SQL text and objects without a prototype', () => {
    const bare = Object.assign(Object.create(null) as Record<string, Json>, { a: 1 });
    for (const value of [
      '👩🏽‍💻 \ud83d\ude00',
      '\u200f\u202eevil\u202c',
      "'); drop table event; --",
      '\\u0000 is only text here',
      { '': '', 'a.b': '[0]', '\ud83d\ude00': '\uffff' },
      bare,
      nested(64),
    ]) {
      expect(rejection(value)).toBeUndefined();
    }
  });

  it.each<[string, unknown, string]>([
    ['NUL in a string', { note: 'a\u0000b' }, 'data.note'],
    ['NUL at the top level', '\u0000', 'data'],
    ['NUL in a key', { 'ke\u0000y': 1 }, 'data.ke\u0000y'],
    ['a lone high surrogate', { s: 'x\ud800' }, 'data.s'],
    ['a lone low surrogate', { s: '\udc00x' }, 'data.s'],
    ['a reversed surrogate pair', { s: '\ude00\ud83d' }, 'data.s'],
    ['a lone surrogate in a key', { '\udfff': 1 }, 'data.\udfff'],
    ['a lone surrogate in an array', { list: ['ok', 'ok', '\ud83d'] }, 'data.list[2]'],
    ['NaN', { n: Number.NaN }, 'data.n'],
    ['Infinity', [Number.POSITIVE_INFINITY], 'data[0]'],
    ['undefined in an object', { u: undefined }, 'data.u'],
    ['undefined in an array', [1, undefined], 'data[1]'],
    ['a function', { f: () => 1 }, 'data.f'],
    ['a bigint', { b: 1n }, 'data.b'],
    ['a symbol', { s: Symbol('s') }, 'data.s'],
    ['a Date', { at: new Date(0) }, 'data.at'],
    ['a Map', new Map([['a', 1]]), 'data'],
    ['a class instance', { x: new (class Thing {})() }, 'data.x'],
  ])('rejects %s, naming the field', (_what, value, field) => {
    expect(rejection(value)?.field).toBe(field);
  });

  it.each(['__proto__', 'constructor', 'prototype'])('rejects an own %s key, top level or nested', (key) => {
    // JSON.parse makes `__proto__` an own key, as a request body would.
    expect(rejection(JSON.parse(`{"${key}": {"isAdmin": true}}`))?.field).toBe(`data.${key}`);
    expect(rejection(JSON.parse(`{"a": [{"${key}": 1}]}`))?.field).toBe(`data.a[0].${key}`);
  });

  it('rejects nesting deeper than 64 levels and accepts 64', () => {
    expect(rejection(nested(64))).toBeUndefined();
    const tooDeep = rejection(nested(65));
    expect(tooDeep?.field.startsWith('data.a[0].a[0]')).toBe(true);
    expect(tooDeep?.message).toMatch(/nesting/);
    // A hostile depth is refused, not a stack overflow.
    expect(rejection(nested(100_000))?.field.startsWith('data.a[0]')).toBe(true);
  });

  it('rejects holes in arrays, which JSON.stringify stores as null but canonical JSON hashes differently', () => {
    // biome-ignore lint/suspicious/noSparseArray: the hole is the point
    const sparse = [1, , 3];
    expect(rejection({ list: sparse })?.field).toBe('data.list[1]');
    expect(rejection(new Array(2))?.field).toBe('data[0]');
  });
});
