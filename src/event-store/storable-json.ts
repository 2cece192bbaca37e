import { InvalidInput } from '../common/errors.js';
import { isReservedKey, MAX_VALUE_DEPTH, unstorableText } from '../common/strict-json.js';

function checkString(s: string, path: string): void {
  const problem = unstorableText(s);
  if (problem) throw new InvalidInput(path, problem);
}

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
  if (depth > MAX_VALUE_DEPTH) throw new InvalidInput(path, `nesting deeper than ${MAX_VALUE_DEPTH} levels`);
  if (value === null || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new InvalidInput(path, 'must be a finite number');
    return;
  }
  if (typeof value === 'string') {
    checkString(value, path);
    return;
  }
  if (Array.isArray(value)) {
    // By index, not forEach: forEach skips the holes of a sparse array, which JSON.stringify
    // stores as null but canonical JSON hashes as nothing, so the stored event would not verify.
    for (let i = 0; i < value.length; i++) assertStorableJson(value[i], `${path}[${i}]`, depth + 1);
    return;
  }
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null)
      throw new InvalidInput(path, 'must be a plain JSON object');
    for (const key of Object.keys(value)) {
      const keyPath = `${path}.${key}`;
      if (isReservedKey(key)) {
        throw new InvalidInput(keyPath, 'reserved key is not allowed');
      }
      checkString(key, keyPath);
      assertStorableJson((value as Record<string, unknown>)[key], keyPath, depth + 1);
    }
    return;
  }
  throw new InvalidInput(path, `a ${typeof value} is not JSON`);
}
