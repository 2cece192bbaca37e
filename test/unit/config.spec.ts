import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config.js';

/** The ConfigError thrown for `env`; fails the test when the environment is accepted. */
function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`expected ${JSON.stringify(env)} to be refused`);
}

describe('loadConfig', () => {
  it('has working defaults: port 3000 on 127.0.0.1, embedded database in ./data', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 3000,
      host: '127.0.0.1',
      database: { kind: 'pglite', dataDir: './data' },
      dataDir: './data',
      adminToken: undefined,
      signingKeyFile: undefined,
      logLevel: 'info',
      sequencer: { enabled: true },
    });
  });

  it('reads typed values from the environment', () => {
    const config = loadConfig({
      PORT: '8080',
      HOST: '0.0.0.0',
      DATABASE_URL: 'postgresql://app@db:5432/ledger',
      DB_POOL_MAX: '7',
      ADMIN_TOKEN: 'x'.repeat(16),
      SEQUENCER_ENABLED: 'false',
      CHECKPOINT_EVERY: '50',
    });
    expect(config).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      database: { kind: 'postgres', url: 'postgresql://app@db:5432/ledger', poolMax: 7 },
      adminToken: 'x'.repeat(16),
      sequencer: { enabled: false, checkpointEvery: 50 },
    });
  });

  it('ignores variables it does not know', () => {
    expect(loadConfig({ PATH: '/bin', npm_config_x: 'y' }).port).toBe(3000);
  });

  it.each([
    ['PORT', ''],
    ['HOST', ''],
    ['DATABASE_URL', ''],
    ['ADMIN_TOKEN', ''],
    ['DATA_DIR', ''],
    ['SEQUENCER_ENABLED', ''],
  ])('treats an empty %s as unset', (name, value) => {
    expect(loadConfig({ [name]: value })).toEqual(loadConfig({}));
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '-1'],
    ['PORT', '80.5'],
    ['DATABASE_URL', 'mysql://root@db/ledger'],
    ['DATABASE_URL', 'localhost:5432'],
    ['ADMIN_TOKEN', 'short'],
    ['ADMIN_TOKEN', 'x'.repeat(15)],
    ['DB_POOL_MAX', '0'],
    ['SEQUENCER_ENABLED', 'yes'],
    ['LOG_LEVEL', 'verbose'],
  ])('refuses %s=%s with a message naming the variable', (name, value) => {
    const err = configError({ [name]: value });
    expect(err.message).toContain(name);
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]?.startsWith(`${name}: `)).toBe(true);
  });

  it('accepts an admin token of exactly 16 characters', () => {
    expect(loadConfig({ ADMIN_TOKEN: 'x'.repeat(16) }).adminToken).toBe('x'.repeat(16));
  });

  it('names every bad variable at once', () => {
    const err = configError({ PORT: 'http', DATABASE_URL: 'mongodb://x', ADMIN_TOKEN: 'abc' });
    expect(err.problems.map((p) => p.split(':')[0]).sort()).toEqual(['ADMIN_TOKEN', 'DATABASE_URL', 'PORT']);
    for (const name of ['PORT', 'DATABASE_URL', 'ADMIN_TOKEN']) expect(err.message).toContain(name);
  });

  it('never echoes a rejected admin token', () => {
    const err = configError({ ADMIN_TOKEN: 'sekrit-value' });
    expect(err.message).not.toContain('sekrit-value');
  });
});

describe('numbers in the environment', () => {
  it.each([' ', '0x10', '1e3', '-1', '3000.5', '+80'])('refuses PORT=%j, naming PORT', (value) => {
    expect(() => loadConfig({ PORT: value })).toThrow(/PORT/);
  });
});

describe('advisory lock keys', () => {
  it('are all different, so no two locks of the service can block each other', async () => {
    const { ADVISORY_LOCKS } = await import('../../src/common/advisory-locks.js');
    const keys = Object.values(ADVISORY_LOCKS);
    expect(new Set(keys).size).toBe(keys.length);
  });
});
