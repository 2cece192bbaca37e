import { describe, expect, it } from 'vitest';
import { uuidText, uuidv7 } from '../../src/common/ids.js';
import { rolloutIdParam } from '../../src/rollouts/rollouts.dto.js';
import { derivedUuid } from '../../src/rollouts/rollouts.service.js';
import { UUID_V7, uuidv7Ms } from '../support/ids.js';

describe('uuidv7', () => {
  it('is a version 7, variant 10 UUID holding the millisecond it was made in', () => {
    const before = Date.now();
    const id = uuidv7();
    const after = Date.now();
    expect(id).toMatch(UUID_V7);
    expect(uuidv7Ms(id)).toBeGreaterThanOrEqual(before);
    expect(uuidv7Ms(id)).toBeLessThanOrEqual(after);
    expect(uuidv7Ms(uuidv7(1_764_330_000_123))).toBe(1_764_330_000_123);
  });

  it('sorts an id of a later millisecond after every id of an earlier one (as text: so does uuid)', () => {
    const earlier = Array.from({ length: 500 }, () => uuidv7(1_764_330_000_000));
    const later = Array.from({ length: 500 }, () => uuidv7(1_764_330_000_001));
    const maxEarlier = [...earlier].sort().at(-1) as string;
    const minLater = [...later].sort()[0] as string;
    expect(minLater > maxEarlier).toBe(true);
  });

  it('never repeats within one millisecond, across many refills of its random pool', () => {
    const ids = Array.from({ length: 100_000 }, () => uuidv7(1_764_330_000_000));
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids.slice(0, 1000)) expect(id).toMatch(UUID_V7);
    // The random bits are spread: every hex digit of the last group's first place occurs.
    expect(new Set(ids.map((id) => id.at(-12))).size).toBe(16);
  });

  it('is accepted wherever the API takes an id', () => {
    expect(rolloutIdParam.safeParse(uuidv7()).success).toBe(true);
  });
});

describe('derivedUuid', () => {
  it('names the same thing as before ids were formatted by uuidText (stored ids must not move)', () => {
    // Computed apart from this code: SHA-256 of the parts joined by NUL, version 8, variant 10.
    expect(derivedUuid('rollout', 'key-1', 'retry-7')).toBe('60cb9979-1a95-8b2b-9657-3810d108b820');
  });

  it('uuidText writes the 8-4-4-4-12 groups of the first 16 bytes, of a view at any offset', () => {
    const bytes = Uint8Array.from({ length: 20 }, (_, i) => i * 13);
    expect(uuidText(bytes)).toBe('000d1a27-3441-4e5b-6875-828f9ca9b6c3');
    expect(uuidText(bytes.subarray(2))).toBe('1a273441-4e5b-6875-828f-9ca9b6c3d0dd');
    expect(() => uuidText(bytes.subarray(5))).toThrow(/16 bytes, not 15/);
  });
});
