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
      groupCommitInFlight: 4,
      sequencer: { enabled: true, minCycleMs: 20 },
      projections: { minCycleMs: 100 },
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
      PROJECTIONS_MIN_CYCLE_MS: '0',
      GROUP_COMMIT_IN_FLIGHT: '2',
    });
    expect(config).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      database: { kind: 'postgres', url: 'postgresql://app@db:5432/ledger', poolMax: 7 },
      adminToken: 'x'.repeat(16),
      groupCommitInFlight: 2,
      sequencer: { enabled: false, checkpointEvery: 50 },
      projections: { minCycleMs: 0 },
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
    ['GROUP_COMMIT_IN_FLIGHT', '0'],
    ['GROUP_COMMIT_IN_FLIGHT', '65'],
    ['PROJECTIONS_MIN_CYCLE_MS', '-1'],
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

describe('snapshot configuration', () => {
  it('has no targets and a 15-minute schedule by default, with bounded fetches', () => {
    expect(loadConfig({}).snapshots).toEqual({
      targets: [],
      cron: '*/15 * * * *',
      timeoutMs: 5000,
      retries: 2,
      retryBackoffMs: 250,
      maxBytes: 262_144,
    });
  });

  it('reads name=baseUrl pairs; the environment defaults to the name', () => {
    const { snapshots } = loadConfig({
      SNAPSHOT_TARGETS: 'production=https://platform.example.com/, staging=http://10.0.0.5:8080/base',
      SNAPSHOT_CRON: '*/10 * * * * *',
      SNAPSHOT_TIMEOUT_MS: '1500',
      SNAPSHOT_RETRIES: '0',
      SNAPSHOT_MAX_BYTES: '4096',
    });
    expect(snapshots).toMatchObject({
      targets: [
        { name: 'production', baseUrl: 'https://platform.example.com', environment: 'production' },
        { name: 'staging', baseUrl: 'http://10.0.0.5:8080/base', environment: 'staging' },
      ],
      cron: '*/10 * * * * *',
      timeoutMs: 1500,
      retries: 0,
      maxBytes: 4096,
    });
  });

  it('reads a targets file, as a list (with environments) or as an object', async () => {
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const dir = await mkdtemp(path.join(tmpdir(), 'targets-'));
    try {
      const list = path.join(dir, 'list.json');
      await writeFile(
        list,
        JSON.stringify([{ name: 'eu', baseUrl: 'https://eu.example.com', environment: 'production' }]),
      );
      expect(loadConfig({ SNAPSHOT_TARGETS_FILE: list }).snapshots.targets).toEqual([
        { name: 'eu', baseUrl: 'https://eu.example.com', environment: 'production' },
      ]);
      const object = path.join(dir, 'object.json');
      await writeFile(object, JSON.stringify({ qa: 'http://qa:9000' }));
      expect(loadConfig({ SNAPSHOT_TARGETS_FILE: object }).snapshots.targets).toEqual([
        { name: 'qa', baseUrl: 'http://qa:9000', environment: 'qa' },
      ]);
      const broken = path.join(dir, 'broken.json');
      await writeFile(broken, '{ not json');
      expect(configError({ SNAPSHOT_TARGETS_FILE: broken }).problems[0]).toMatch(
        /^SNAPSHOT_TARGETS_FILE: .* is not JSON$/,
      );
      expect(configError({ SNAPSHOT_TARGETS_FILE: path.join(dir, 'missing.json') }).problems[0]).toMatch(
        /^SNAPSHOT_TARGETS_FILE: cannot read /,
      );
      expect(
        configError({ SNAPSHOT_TARGETS: 'a=http://a', SNAPSHOT_TARGETS_FILE: list }).problems[0],
      ).toMatch(/^SNAPSHOT_TARGETS_FILE: set either/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.each([
    ['SNAPSHOT_TARGETS', 'production'],
    ['SNAPSHOT_TARGETS', 'production=ftp://x'],
    ['SNAPSHOT_TARGETS', 'production=https://user:pw@x'],
    ['SNAPSHOT_TARGETS', 'production=https://x/?q=1'],
    ['SNAPSHOT_TARGETS', '../etc=https://x'],
    ['SNAPSHOT_TARGETS', 'a=http://x,a=http://y'],
    ['SNAPSHOT_CRON', 'every 15 minutes'],
    ['SNAPSHOT_CRON', '61 * * * *'],
    ['SNAPSHOT_CRON', '* * * * * * *'],
    ['SNAPSHOT_CRON', '* * *'],
    ['SNAPSHOT_TIMEOUT_MS', '10'],
    ['SNAPSHOT_RETRIES', '11'],
    ['SNAPSHOT_MAX_BYTES', '1e6'],
  ])('refuses %s=%s with a message naming the variable', (name, value) => {
    const err = configError({ [name]: value });
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]?.startsWith(`${name}`)).toBe(true);
  });

  it('accepts cron expressions of five or six fields, and presets', () => {
    for (const cron of ['*/15 * * * *', '0 */5 * * * *', '@hourly', '0 0 3 * * 1-5']) {
      expect(loadConfig({ SNAPSHOT_CRON: cron }).snapshots.cron).toBe(cron);
    }
  });
});
