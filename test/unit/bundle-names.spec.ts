import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import {
  asciiComments,
  NAME_HELPER,
  NAME_HELPER_CHECKED,
  rewriteNameHelper,
} from '../../src/build/bundle.js';

type NameHelper = <T>(target: T, value: string) => T;

/** A helper's source evaluated as the bundle's runtime code does, `__defProp` beside it. */
const helperOf = (source: string): NameHelper =>
  new Function('__defProp', `${source}\nreturn __name;`)(Object.defineProperty) as NameHelper;

/** Functions as a bundle holds them: named as in their module, renamed by esbuild, unnamed. */
function samples() {
  function next() {}
  function next2() {}
  class Reply {}
  class Reply2 {}
  class WithStaticName {
    static name = 'custom';
  }
  const key = 'name';
  class WithGetter {
    static get [key]() {
      return 'WithGetter';
    }
  }
  return [
    [next, 'next'],
    [next2, 'next'],
    [Reply, 'Reply'],
    [Reply2, 'Reply'],
    [() => {}, 'handleResolve'],
    [WithStaticName, 'WithStaticName'],
    [WithGetter, 'WithGetter'],
  ] as const;
}

describe("esbuild's __name helper, rewritten to set a name only when it differs", () => {
  it('leaves every function with the same name property as the original helper does', () => {
    const original = helperOf(NAME_HELPER);
    const checked = helperOf(NAME_HELPER_CHECKED);
    const a = samples();
    const b = samples();
    for (const [i, [fn, name]] of a.entries()) {
      const [other] = b[i] as (typeof b)[number];
      expect(original(fn, name)).toBe(fn);
      expect(checked(other, name)).toBe(other);
      expect(Object.getOwnPropertyDescriptor(other, 'name')).toEqual(
        Object.getOwnPropertyDescriptor(fn, 'name'),
      );
      expect(other.name).toBe(name);
    }
  });

  it('defines the property only for a function whose name is not the one to keep', () => {
    const defined: string[] = [];
    const counting = new Function('__defProp', `${NAME_HELPER_CHECKED}\nreturn __name;`)(
      (target: { name: string }, key: string, desc: PropertyDescriptor) => {
        defined.push(`${target.name}→${desc.value}`);
        return Object.defineProperty(target, key, desc);
      },
    ) as NameHelper;
    for (const [fn, name] of samples()) counting(fn, name);
    expect(defined).toEqual([
      'next2→next',
      'Reply2→Reply',
      '→handleResolve',
      'custom→WithStaticName',
      // A getter's value is not the function's own: replaced by the name, as the original does.
      'WithGetter→WithGetter',
    ]);
  });

  it('is the helper the installed esbuild writes with keepNames', async () => {
    const out = await build({
      stdin: {
        contents:
          'export function run() { function next() {} const handler = () => {}; return [next, handler]; }',
      },
      bundle: true,
      write: false,
      format: 'esm',
      keepNames: true,
      logLevel: 'silent',
    });
    const text = out.outputFiles[0]?.text ?? '';
    expect(text).toContain(NAME_HELPER);
    const rewritten = rewriteNameHelper(text);
    expect(rewritten).toContain(NAME_HELPER_CHECKED);
    expect(rewritten).not.toContain(NAME_HELPER);
    const bundled = (await import(`data:text/javascript,${encodeURIComponent(rewritten)}`)) as {
      run: () => (() => void)[];
    };
    // The declaration keeps its own name; the arrow, unnamed where it is passed, is given its name.
    expect(bundled.run().map((f) => f.name)).toEqual(['next', 'handler']);
  });

  it('refuses a bundle where the helper is missing or there twice, naming the file to update', () => {
    expect(() => rewriteNameHelper('var __name = (t, v) => t;')).toThrow(/not found.*src\/build\/bundle\.ts/);
    expect(() => rewriteNameHelper(`${NAME_HELPER}\n${NAME_HELPER}`)).toThrow(/found 2 times/);
  });
});

describe('asciiComments', () => {
  it('makes comments ASCII, unit for unit, and leaves the code alone', async () => {
    const text = [
      '/** Label\u2013value pairs \u2026 */',
      'const s = "caf\\u00e9"; // Jimmy W\u00e4rting \ud83d\ude00',
      '/*! (c) J\u00f6rg */',
      '// two lines\u2028x = 1;',
    ].join('\n');
    const ascii = await asciiComments(text);
    expect(ascii).toBe(
      [
        '/** Label?value pairs ? */',
        'const s = "caf\\u00e9"; // Jimmy Warting ??',
        '/*! (c) Jorg */',
        '// two lines\nx = 1;',
      ].join('\n'),
    );
    // Every line keeps its length in UTF-16 units, and U+2028 (a line end to JavaScript and to
    // source maps) stays a line end, so the source map's lines and columns still hold.
    const lines = (t: string) => t.split(/\n|\u2028|\u2029/).map((l) => l.length);
    expect(lines(ascii)).toEqual(lines(text));
    const plain = 'const a = 1; // plain';
    expect(await asciiComments(plain)).toBe(plain);
  });

  it('refuses text outside ASCII that is code, as a tagged template keeps it', async () => {
    await expect(asciiComments('const x = html`a \u00b7 b`;')).rejects.toThrow(
      /not in a comment.*tagged template/s,
    );
    // A property name, which minifying keeps: esbuild prints it escaped, the replacement as "cafe".
    await expect(asciiComments('globalThis.caf\u00e9 = 1;')).rejects.toThrow(
      /not in a comment.*once minified/s,
    );
    // A replacement that leaves no program at all: esbuild's own error is shown.
    await expect(asciiComments('const \u03c0 = 3;')).rejects.toThrow(/not in a comment.*does not parse/s);
  });
});
