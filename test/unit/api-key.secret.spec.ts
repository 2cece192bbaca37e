import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  API_KEY_FORMAT,
  generateApiKey,
  hashApiKey,
  hashesEqual,
  secretsEqual,
} from '../../src/auth/api-key.secret.js';
import { bearerToken } from '../../src/auth/auth.guard.js';
import { ConfigError, loadConfig } from '../../src/config/config.js';

describe('API key secrets', () => {
  it('generates distinct ul_ keys of 32 random bytes, with their SHA-256 and a short prefix', () => {
    const keys = Array.from({ length: 200 }, generateApiKey);
    expect(new Set(keys.map((k) => k.key)).size).toBe(200);
    for (const { key, hash, prefix } of keys) {
      expect(key).toMatch(API_KEY_FORMAT);
      expect(Buffer.from(key.slice(3), 'base64url')).toHaveLength(32);
      expect(hash).toBe(createHash('sha256').update(key).digest('hex'));
      expect(hashApiKey(key)).toBe(hash);
      expect(prefix).toBe(key.slice(0, 11));
    }
  });

  it('compares secrets and hashes exactly', () => {
    const { key, hash } = generateApiKey();
    expect(secretsEqual(key, key)).toBe(true);
    expect(secretsEqual(key, `${key}x`)).toBe(false);
    expect(secretsEqual(key, '')).toBe(false);
    expect(hashesEqual(hash, hash)).toBe(true);
    expect(hashesEqual(hash, hashApiKey(`${key}x`))).toBe(false);
    expect(hashesEqual(hash, 'zz')).toBe(false);
  });

  it('reads only a well-formed Bearer header', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('bearer abc')).toBe('abc');
    expect(bearerToken('Basic abc')).toBeUndefined();
    expect(bearerToken('Bearer ')).toBeUndefined();
    expect(bearerToken('Bearer a b')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
});

describe('HTTP security configuration', () => {
  it('defaults to 6000 requests a minute and no CORS', () => {
    const config = loadConfig({});
    expect(config.rateLimit).toEqual({ max: 6000, windowMs: 60_000 });
    expect(config.corsOrigins).toBeUndefined();
    expect(loadConfig({ CORS_ORIGINS: '' }).corsOrigins).toBeUndefined();
  });

  it('reads the rate limit and the CORS origins', () => {
    const config = loadConfig({
      RATE_LIMIT_MAX: '10',
      RATE_LIMIT_WINDOW_MS: '1000',
      CORS_ORIGINS: 'https://ops.example.com, http://localhost:5173',
    });
    expect(config.rateLimit).toEqual({ max: 10, windowMs: 1000 });
    expect(config.corsOrigins).toEqual(['https://ops.example.com', 'http://localhost:5173']);
  });

  it.each([
    [{ RATE_LIMIT_MAX: '0' }, 'RATE_LIMIT_MAX'],
    [{ RATE_LIMIT_WINDOW_MS: 'soon' }, 'RATE_LIMIT_WINDOW_MS'],
    [{ CORS_ORIGINS: '*' }, 'CORS_ORIGINS'],
    [{ CORS_ORIGINS: 'https://ops.example.com/app' }, 'CORS_ORIGINS'],
    [{ CORS_ORIGINS: 'ops.example.com' }, 'CORS_ORIGINS'],
    [{ CORS_ORIGINS: ' , ' }, 'CORS_ORIGINS'],
  ])('refuses %o, naming %s', (env, variable) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(variable);
  });
});
