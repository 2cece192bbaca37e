import { InvalidInput } from '../common/errors.js';
import { isReservedKey, MAX_VALUE_DEPTH, unstorableText } from '../common/strict-json.js';

/**
 * Checks that a value survives a round trip through Postgres `jsonb` unchanged, so its hash
 * still verifies when read back: plain JSON values only, no NUL, no lone surrogates, bounded
 * depth, and no `__proto__`/`constructor`/`prototype` keys.
 *
 * @example
 * assertStorableJson({ ok: 'yes' }, 'data'); // passes
 * assertStorableJson({ bad: 'a\u0000b' }, 'data'); // throws InvalidInput at data.bad
 */
export function assertStorableJson(value: unknown, path: string, depth = 0): void {
  // The keys and indices from `path` down to the value being checked: the field's name is
  // written only for an error, not for every member of every value that passes.
  const trail: (string | number)[] = [];
  const fail = (problem: string, key?: string): never => {
    const parts = key === undefined ? trail : [...trail, key];
    throw new InvalidInput(
      parts.reduce<string>((p, k) => (typeof k === 'number' ? `${p}[${k}]` : `${p}.${k}`), path),
      problem,
    );
  };
  const check = (v: unknown, depth: number): void => {
    if (depth > MAX_VALUE_DEPTH) fail(`nesting deeper than ${MAX_VALUE_DEPTH} levels`);
    if (v === null || typeof v === 'boolean') return;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) fail('must be a finite number');
      return;
    }
    if (typeof v === 'string') {
      const problem = unstorableText(v);
      if (problem) fail(problem);
      return;
    }
    if (Array.isArray(v)) {
      // By index, not forEach: forEach skips the holes of a sparse array, which JSON.stringify
      // stores as null but canonical JSON hashes as nothing, so the stored event would not verify.
      for (let i = 0; i < v.length; i++) {
        trail.push(i);
        check(v[i], depth + 1);
        trail.pop();
      }
      return;
    }
    if (typeof v === 'object') {
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) fail('must be a plain JSON object');
      for (const key of Object.keys(v)) {
        if (isReservedKey(key)) fail('reserved key is not allowed', key);
        const problem = unstorableText(key);
        if (problem) fail(problem, key);
        trail.push(key);
        check((v as Record<string, unknown>)[key], depth + 1);
        trail.pop();
      }
      return;
    }
    fail(`a ${typeof v} is not JSON`);
  };
  check(value, depth);
}
