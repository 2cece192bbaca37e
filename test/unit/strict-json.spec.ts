import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeUtf8,
  findJsonAmbiguity,
  isBlank,
  MAX_JSON_DEPTH,
  MAX_VALUE_DEPTH,
  StrictJsonError,
  scanJsonText,
  strictParse,
} from '../../src/common/strict-json.js';

/** The error strictParse throws for `text`, or undefined when it parses. */
function refusal(text: string, maxDepth?: number): StrictJsonError | undefined {
  try {
    strictParse(text, maxDepth);
    return undefined;
  } catch (err) {
    if (err instanceof StrictJsonError) return err;
    throw err;
  }
}

const nestedArray = (levels: number) => `${'['.repeat(levels)}1${']'.repeat(levels)}`;
const nestedObject = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;

describe('strictParse', () => {
  it('reads any JSON value exactly as JSON.parse does (fast-check)', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.boolean(), (value, pretty) => {
        const text = JSON.stringify(value, null, pretty ? 2 : undefined);
        expect(strictParse(text)).toStrictEqual(JSON.parse(text));
      }),
      { numRuns: 500 },
    );
  });

  it('refuses any JSON object with one of its keys written twice, naming that key by its path (fast-check)', () => {
    // A random object somewhere inside a random document; one of its keys is sent again.
    const key = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 });
    fc.assert(
      fc.property(
        fc.dictionary(key, fc.jsonValue({ maxDepth: 2 }), { minKeys: 1, maxKeys: 6 }),
        fc.array(fc.oneof(fc.integer({ min: 0, max: 3 }), key), { maxLength: 4 }),
        fc.nat(),
        fc.jsonValue({ maxDepth: 1 }),
        (object, path, pick, again) => {
          const keys = Object.keys(object);
          const dup = keys[pick % keys.length] as string;
          const inner = `${JSON.stringify(object).slice(0, -1)},${JSON.stringify(dup)}:${JSON.stringify(again)}}`;
          // Wrap it: a number is an array index (padded with nulls before it), a string a key.
          let text = inner;
          for (const seg of [...path].reverse()) {
            text =
              typeof seg === 'number'
                ? `[${'null,'.repeat(seg)}${text}]`
                : `{"before":0,${JSON.stringify(seg)}:${text}}`;
          }
          // Still valid JSON, which JSON.parse reads by taking the last value.
          expect(() => JSON.parse(text)).not.toThrow();
          const err = refusal(text);
          expect(err, text).toBeInstanceOf(StrictJsonError);
          // A wrapping key equal to "before" is itself a duplicate, found first: that is right too.
          const firstDupWrapper = path.indexOf('before');
          const expected =
            firstDupWrapper >= 0 ? [...path.slice(0, firstDupWrapper), 'before'] : [...path, dup];
          expect(err?.ambiguity.field).toBe(expected.map(String).join('.'));
          expect(err?.statusCode).toBe(400);
        },
      ),
      { numRuns: 300 },
    );
  });

  it.each([
    ['top level', '{"a": 1, "a": 1}', 'a'],
    ['same value or not', '{"title": "x", "scope": "y", "title": "z"}', 'title'],
    ['nested object', '{"plan": {"title": "a", "title": "b"}}', 'plan.title'],
    ['in an array element', '{"sequence": [{"id": "s1"}, {"id": "s2", "id": "s3"}]}', 'sequence.1.id'],
    ['in a top-level array', '[{}, {"a": 1, "a": 2}]', '1.a'],
    ['written with escapes', '{"a": 1, "\\u0061": 2}', 'a'],
    ['an escaped quote in the key', '{"a\\"b": 1, "a\\u0022b": 2}', 'a"b'],
    ['the empty key', '{"": 1, "": 2}', ''],
    ['__proto__ twice', '{"__proto__x": 1, "__proto__x": 2}', '__proto__x'],
    ['after nested values', '{"a": {"a": 1}, "b": [1, {"a": 2}], "a": 3}', 'a'],
  ])('a duplicate key (%s) is refused, naming it', (_, text, field) => {
    expect(refusal(text)?.ambiguity.field).toBe(field);
    expect(refusal(text)?.message).toContain('more than once');
  });

  it.each([
    ['one key in two objects', '{"a": {"x": 1}, "b": {"x": 2}}'],
    ['keys that only differ in normalisation', '{"\u00e9": 1, "e\u0301": 2}'],
    ['keys that only differ in case', '{"Title": 1, "title": 2}'],
    ['a key repeated as a value', '{"a": "a", "b": ["a", "a"]}'],
    ['braces, commas and quotes inside strings', '{"a": "{\\"a\\": 1, \\"a\\": 2}", "b": "[,],}{"}'],
    ['escaped backslash before a quote', '{"a\\\\": 1, "a": 2}'],
    ['a lone surrogate key and its pair', '{"\\ud83d": 1, "\\ud83d\\ude80": 2}'],
    ['sibling arrays of objects', '[{"a": 1}, {"a": 2}]'],
  ])('no duplicate (%s): parsed as JSON.parse does', (_, text) => {
    expect(strictParse(text)).toStrictEqual(JSON.parse(text));
  });

  it('accepts nesting up to the cap, refuses one level more, naming the top-level field', () => {
    expect(() => strictParse(nestedArray(MAX_JSON_DEPTH))).not.toThrow();
    expect(() => strictParse(nestedObject(MAX_JSON_DEPTH))).not.toThrow();
    expect(refusal(nestedArray(MAX_JSON_DEPTH + 1))?.ambiguity).toEqual({
      field: '(body)',
      message: `must not nest deeper than ${MAX_JSON_DEPTH} levels`,
    });
    expect(refusal(`{"ok": 1, "name": ${nestedArray(MAX_JSON_DEPTH)}}`)?.ambiguity.field).toBe('name');
    expect(refusal('[[["x"]]]', 2)?.ambiguity.field).toBe('(body)');
    expect(strictParse('[["x"]]', 2)).toEqual([['x']]);
  });

  it('scans half a million levels and 100,000 keys without recursion (no stack overflow)', () => {
    expect(refusal(nestedArray(500_000))?.ambiguity.field).toBe('(body)');
    expect(refusal(nestedObject(500_000))?.ambiguity.field).toBe('a');
    const wide = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, i]));
    expect(strictParse(JSON.stringify(wide))).toEqual(wide);
    const text = `${JSON.stringify(wide).slice(0, -1)},"k99999":0}`;
    expect(refusal(text)?.ambiguity.field).toBe('k99999');
  });

  it('leaves invalid JSON to JSON.parse: its own SyntaxError, not a StrictJsonError', () => {
    for (const text of ['{', '{"a": 1,}', "{'a': 1}", '', 'nul', '{"a": 1} {"a": 2}']) {
      expect(() => strictParse(text), text).toThrow(SyntaxError);
      expect(refusal.bind(null, text), text).toThrow();
    }
  });

  it('findJsonAmbiguity is undefined for what strictParse accepts', () => {
    expect(findJsonAmbiguity('{"a": [1, 2, {"b": null}], "c": "d"}')).toBeUndefined();
    expect(findJsonAmbiguity('"just a string"')).toBeUndefined();
    expect(findJsonAmbiguity('42')).toBeUndefined();
  });
});

/** What the validation pipe's walk refuses in a parsed value, found by walking it (the slow way). */
function walkFacts(value: unknown): { depth: number; badText: boolean; reservedKey: boolean } {
  const bad = (t: string) => t.includes('\u0000') || !t.isWellFormed();
  const facts = { depth: 0, badText: false, reservedKey: false };
  const visit = (v: unknown, depth: number) => {
    facts.depth = Math.max(facts.depth, depth);
    if (typeof v === 'string') facts.badText ||= bad(v);
    else if (typeof v === 'object' && v !== null)
      for (const [k, child] of Object.entries(v)) {
        facts.badText ||= bad(k);
        facts.reservedKey ||= ['__proto__', 'constructor', 'prototype'].includes(k);
        visit(child, depth + 1);
      }
  };
  visit(value, 0);
  return facts;
}

describe('scanJsonText: what a parsed body can hold, from its text', () => {
  /** Any JSON value: full-Unicode strings (NUL and lone surrogates among them) and reserved keys. */
  const key = fc.oneof(
    fc.string({ unit: 'binary' }),
    fc.constantFrom('constructor', 'prototype', '__proto__', 'a\u0000', '\ud800'),
  );
  const value = fc.letrec((tie) => ({
    json: fc.oneof(
      { depthSize: 'small' },
      fc.string({ unit: 'binary' }),
      fc.constantFrom(null, true, 0, -1.5, '\u0000', '\udc00x'),
      fc.array(tie('json'), { maxLength: 4 }),
      fc.dictionary(key, tie('json'), { maxKeys: 4 }),
    ),
  })).json;

  it('finds a body plain only when walking it finds nothing to refuse (fast-check)', () => {
    fc.assert(
      fc.property(value, fc.boolean(), (v, pretty) => {
        const text = JSON.stringify(v, null, pretty ? 1 : undefined);
        const scan = scanJsonText(text);
        if (scan.ambiguity) return;
        const facts = walkFacts(JSON.parse(text));
        // Sound: what the scan calls plain, the walk would have passed.
        if (!scan.escapes && !scan.reservedKey && scan.depth <= MAX_VALUE_DEPTH) {
          expect(facts.badText).toBe(false);
          expect(facts.reservedKey).toBe(false);
        }
        // And exact where it matters: a reserved key is always seen (unless escaped), bad text
        // always shows as an escape, and the depth bounds every value's.
        if (facts.reservedKey) expect(scan.reservedKey || scan.escapes).toBe(true);
        if (facts.badText) expect(scan.escapes).toBe(true);
        expect(facts.depth).toBeLessThanOrEqual(scan.depth);
      }),
      { numRuns: 2000 },
    );
  });

  it('counts containers open at once, and sees escaped and reserved keys', () => {
    expect(scanJsonText('{"a": [1, {"b": []}]}')).toMatchObject({
      depth: 4,
      escapes: false,
      reservedKey: false,
    });
    expect(scanJsonText('"x"')).toMatchObject({ depth: 0, escapes: false });
    expect(scanJsonText('{"a": "\\n"}').escapes).toBe(true);
    expect(scanJsonText('{"a": {"constructor": 1}}').reservedKey).toBe(true);
    expect(scanJsonText('{"a": "constructor"}').reservedKey).toBe(false);
    expect(scanJsonText('{"\\u0063onstructor": 1}')).toMatchObject({ escapes: true });
    expect(scanJsonText(nestedObject(MAX_VALUE_DEPTH)).depth).toBe(MAX_VALUE_DEPTH);
  });
});

describe('decodeUtf8 and isBlank', () => {
  it('decodes any well-formed text exactly as Buffer does (fast-check, full Unicode range)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), (text) => {
        const bytes = Buffer.from(text, 'utf8');
        expect(decodeUtf8(bytes)).toBe(bytes.toString('utf8'));
      }),
      { numRuns: 300 },
    );
    // A BOM is kept, as Buffer keeps it: nothing is dropped on the way.
    expect(decodeUtf8(Buffer.from('\ufeff{}', 'utf8'))).toBe('\ufeff{}');
  });

  it.each([
    ['a stray continuation byte', [0x80]],
    ['a byte UTF-8 never uses', [0xff]],
    ['an overlong "/"', [0xc0, 0xaf]],
    ['a surrogate encoded (CESU-8)', [0xed, 0xa0, 0x80]],
    ['a truncated sequence', [0xe2, 0x82]],
    ['past U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
  ])('refuses %s, which lenient decoding would turn into U+FFFD', (_, bytes) => {
    const body = Buffer.concat([Buffer.from('{"a": "x'), Buffer.from(bytes), Buffer.from('y"}')]);
    expect(body.toString('utf8')).toContain('\ufffd');
    expect(decodeUtf8(body)).toBeUndefined();
  });

  it('takes JSON whitespace, and only that, as no body', () => {
    for (const blank of ['', ' ', '\r\n\t ']) {
      expect(isBlank(blank)).toBe(true);
      expect(isBlank(Buffer.from(blank))).toBe(true);
    }
    for (const some of ['{}', ' 0 ', 'null', '\u00a0x']) expect(isBlank(Buffer.from(some))).toBe(false);
  });
});
