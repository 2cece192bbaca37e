import { hash, randomBytes, timingSafeEqual } from 'node:crypto';

/** `ul_` + 32 random bytes as base64url (43 characters). */
export const API_KEY_FORMAT = /^ul_[A-Za-z0-9_-]{43}$/;

/** How much of a key is kept in clear, so a human can tell keys apart: `ul_` + 8 characters. */
const PREFIX_LENGTH = 11;

export interface GeneratedApiKey {
  /** The secret: shown to its owner once, never stored. */
  key: string;
  hash: string;
  prefix: string;
}

/**
 * A new random API key with its stored forms.
 *
 * @example
 * const { key, hash, prefix } = generateApiKey();
 * key;    // 'ul_3q2-7wEv…' (46 characters)
 * prefix; // 'ul_3q2-7wEv'
 * hash === hashApiKey(key); // true
 */
export function generateApiKey(): GeneratedApiKey {
  const key = `ul_${randomBytes(32).toString('base64url')}`;
  return { key, hash: hashApiKey(key), prefix: key.slice(0, PREFIX_LENGTH) };
}

/**
 * The stored form of a key: SHA-256, hex. A fast hash is right here: a key is 256 random bits,
 * so there is no dictionary to try and brute force is hopeless whatever the hash's speed. Slow
 * KDFs (scrypt, argon2) exist for low-entropy passwords, and would only add latency to every
 * request and a CPU-exhaustion lever for anyone sending bad keys.
 */
export function hashApiKey(key: string): string {
  return hash('sha256', key, 'hex');
}

const digest = (s: string) => hash('sha256', s, 'buffer');

/** Compares two secrets in constant time (over their digests, so lengths leak nothing either). */
export function secretsEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/** Compares two hex SHA-256 digests in constant time. */
export function hashesEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === 32 && y.length === 32 && timingSafeEqual(x, y);
}
