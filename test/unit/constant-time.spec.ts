import * as crypto from 'node:crypto';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { generateApiKey, hashApiKey, hashesEqual, secretsEqual } from '../../src/auth/api-key.secret.js';
import type { ApiKeysRepository } from '../../src/auth/api-keys.repository.js';
import { ADMIN_TOKEN_PRINCIPAL, ApiKeysService } from '../../src/auth/api-keys.service.js';
import { loadConfig } from '../../src/config/config.js';
import type { ApiKeyRow } from '../../src/database/schema.js';

// Keys are compared in constant time: the ADMIN_TOKEN by the SHA-256 of both sides (so even the
// length leaks nothing), a stored key by looking its hash up and comparing that hash in constant
// time. What a user would notice is a key that is almost right being accepted, or a comparison
// that bails out at the first differing byte; the first is asserted directly, the second by
// checking that every decision goes through crypto.timingSafeEqual with equal-length digests.
// No timings are measured: they would be flaky, and prove little on a shared machine.

vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  return { ...real, timingSafeEqual: vi.fn(real.timingSafeEqual) };
});
const timingSafeEqual = vi.mocked(crypto.timingSafeEqual);

const ADMIN_TOKEN = 'test-admin-token-0123456789';

/**
 * The same length as `secret`, one character changed at `at` (0 = first, -1 = last) to another
 * lowercase hex digit, so that it stays a valid key character and a valid hex digit.
 */
function oneOff(secret: string, at: number): string {
  const i = at < 0 ? secret.length + at : at;
  const c = secret[i] === '0' ? '1' : '0';
  return `${secret.slice(0, i)}${c}${secret.slice(i + 1)}`;
}

/** The (Buffer, Buffer) pairs timingSafeEqual was given since the last reset. */
const comparisons = () =>
  timingSafeEqual.mock.calls.map(([a, b]): [Buffer, Buffer] => [
    Buffer.from(a as Uint8Array),
    Buffer.from(b as Uint8Array),
  ]);

describe('secretsEqual and hashesEqual', () => {
  beforeEach(() => {
    timingSafeEqual.mockClear();
  });

  it('refuse a secret of the same length that differs in its first byte or in its last, through timingSafeEqual', () => {
    const { key } = generateApiKey();
    for (const wrong of [oneOff(key, 0), oneOff(key, -1), oneOff(key, key.length >> 1)]) {
      expect(wrong).toHaveLength(key.length);
      expect(secretsEqual(wrong, key)).toBe(false);
    }
    expect(secretsEqual(key, key)).toBe(true);
    // Each comparison was one call with two 32-byte digests, never the secrets themselves.
    expect(timingSafeEqual).toHaveBeenCalledTimes(4);
    for (const [a, b] of comparisons()) {
      expect(a).toHaveLength(32);
      expect(b).toHaveLength(32);
      expect(a.toString('utf8')).not.toContain(key);
    }
  });

  it('compare secrets of different lengths without throwing (timingSafeEqual would) and without a shortcut', () => {
    expect(secretsEqual('short', ADMIN_TOKEN)).toBe(false);
    expect(secretsEqual('', ADMIN_TOKEN)).toBe(false);
    expect(secretsEqual(`${ADMIN_TOKEN}x`, ADMIN_TOKEN)).toBe(false);
    expect(timingSafeEqual).toHaveBeenCalledTimes(3);
  });

  it('refuse hashes differing in the first or the last byte, and malformed ones, through timingSafeEqual', () => {
    const hash = hashApiKey(generateApiKey().key);
    expect(hashesEqual(hash, hash)).toBe(true);
    expect(hashesEqual(oneOff(hash, 0), hash)).toBe(false);
    expect(hashesEqual(oneOff(hash, -1), hash)).toBe(false);
    expect(timingSafeEqual).toHaveBeenCalledTimes(3);
    // Not a 32-byte digest: refused before any comparison, and never a throw.
    for (const bad of ['', 'zz', hash.slice(2), `${hash}00`]) expect(hashesEqual(bad, hash)).toBe(false);
  });
});

describe('ApiKeysService.authenticate', () => {
  const stored = generateApiKey();
  const row: ApiKeyRow = {
    id: '00000000-0000-4000-8000-000000000001',
    name: 'ci',
    role: 'engineer',
    key_hash: stored.hash,
    key_prefix: stored.prefix,
    created_at: new Date(),
    created_by: 'test',
    expires_at: null,
    revoked_at: null,
    last_used_at: new Date(),
  };
  /**
   * A lookup that answers the stored row for any hash, as a sloppy index or collation might:
   * the service must not trust it, but compare the hash itself.
   */
  const lookups: string[] = [];
  const repository = {
    findByHash: async (hash: string) => {
      lookups.push(hash);
      return row;
    },
    touch: async () => {},
    onRevocation: async () => async () => {},
  } as unknown as ApiKeysRepository;
  const service = () => new ApiKeysService(loadConfig({ ADMIN_TOKEN }), repository);

  beforeEach(() => {
    timingSafeEqual.mockClear();
    lookups.length = 0;
  });

  it('takes the ADMIN_TOKEN only exactly, by a constant-time comparison', async () => {
    const s = service();
    expect(await s.authenticate(ADMIN_TOKEN)).toEqual(ADMIN_TOKEN_PRINCIPAL);
    for (const wrong of [oneOff(ADMIN_TOKEN, 0), oneOff(ADMIN_TOKEN, -1)]) {
      timingSafeEqual.mockClear();
      expect(await s.authenticate(wrong)).toBeUndefined();
      expect(timingSafeEqual).toHaveBeenCalled();
      expect(comparisons()[0]?.[0]).toHaveLength(32);
    }
  });

  it('refuses a stored key changed in its first or its last character, even when the lookup returns a row', async () => {
    const s = service();
    for (const wrong of [oneOff(stored.key, 3), oneOff(stored.key, -1)]) {
      timingSafeEqual.mockClear();
      expect(await s.authenticate(wrong)).toBeUndefined();
      // Looked up by the hash of what was sent, then refused by comparing hashes in constant time.
      expect(lookups.at(-1)).toBe(hashApiKey(wrong));
      expect(timingSafeEqual).toHaveBeenCalledTimes(2); // the ADMIN_TOKEN check, then the hash
      const [a, b] = comparisons()[1] ?? [];
      expect(a?.equals(Buffer.from(stored.hash, 'hex'))).toBe(true);
      expect(b?.equals(Buffer.from(hashApiKey(wrong), 'hex'))).toBe(true);
    }
    expect(await s.authenticate(stored.key)).toEqual({ id: `key:${row.id}`, name: 'ci', role: 'engineer' });
  });
});
