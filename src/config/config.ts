import { readFileSync } from 'node:fs';
import { validateCronExpression } from 'cron';
import { z } from 'zod';

/** Group-commit calls in flight per process at most, by default (event-store/group-commit.ts). */
export const DEFAULT_CALLS_IN_FLIGHT = 4;

/** A whole number written in plain decimal digits: no blanks, hex, exponents or signs. */
const intFromEnv = (def: number, min: number, max: number) =>
  z
    .string()
    .regex(/^\d{1,12}$/, 'must be a whole number written in digits')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))
    .optional()
    .transform((v) => v ?? def);

/** A browser origin exactly as browsers send it: http(s), host, optional port, nothing after. */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === value;
  } catch {
    return false;
  }
}

/** A snapshot target: a platform whose four shared-truth surfaces the scheduler reads. */
export interface SnapshotTarget {
  /** Names the target in streams (`snapshots-<name>`), URLs and reports. */
  name: string;
  /** Where the platform answers; the surfaces' paths are appended to it. */
  baseUrl: string;
  /** The rollout environment whose verified versions this platform should show (default: the name). */
  environment: string;
}

const TARGET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const TARGET_NAME_MESSAGE =
  'a target name is 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit';

/** An http(s) base URL without credentials, query or fragment; the trailing slash is dropped. */
function targetUrl(value: string): string | undefined {
  try {
    const url = new URL(value);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
    if (url.username || url.password || url.search || url.hash) return undefined;
    return url.toString().replace(/\/+$/, '');
  } catch {
    return undefined;
  }
}

const targetSchema = z
  .strictObject({
    name: z.string().regex(TARGET_NAME, TARGET_NAME_MESSAGE),
    baseUrl: z.string().transform((v, ctx) => {
      const url = targetUrl(v);
      if (url === undefined) {
        ctx.addIssue({
          code: 'custom',
          message: 'must be an http(s) URL without credentials, query or fragment',
        });
        return z.NEVER;
      }
      return url;
    }),
    environment: z.string().regex(TARGET_NAME, TARGET_NAME_MESSAGE).optional(),
  })
  .transform((t): SnapshotTarget => ({ ...t, environment: t.environment ?? t.name }));

/** Refuses two targets of one name: each owns its streams. */
const distinctTargets = z.array(targetSchema).superRefine((targets, ctx) => {
  const seen = new Set<string>();
  for (const t of targets) {
    if (seen.has(t.name)) ctx.addIssue({ code: 'custom', message: `target "${t.name}" is named twice` });
    seen.add(t.name);
  }
});

/**
 * `name=baseUrl` pairs, comma-separated.
 *
 * @example
 * parseTargetList('prod=https://platform.example.com, staging=http://10.0.0.5:8080')
 * // → [{ name: 'prod', baseUrl: 'https://platform.example.com' }, { name: 'staging', … }]
 */
export function parseTargetList(value: string): { name: string; baseUrl: string }[] | string {
  const pairs = value
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  const targets: { name: string; baseUrl: string }[] = [];
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) return `"${pair}" is not a name=baseUrl pair`;
    targets.push({ name: pair.slice(0, eq).trim(), baseUrl: pair.slice(eq + 1).trim() });
  }
  return targets;
}

/**
 * The JSON file of SNAPSHOT_TARGETS_FILE: an array of `{ name, baseUrl, environment? }`, or an
 * object `{ "<name>": "<baseUrl>" }`.
 */
function readTargetsFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${file} is not JSON`);
  }
  if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
    return Object.entries(parsed).map(([name, baseUrl]) => ({ name, baseUrl }));
  }
  return parsed;
}

/** A cron expression of five fields, or six with seconds first, as `cron` reads it. */
const cronExpression = z
  .string()
  .trim()
  .refine(
    (v) => (v.startsWith('@') || [5, 6].includes(v.split(/\s+/).length)) && validateCronExpression(v).valid,
    {
      message:
        'must be a cron expression of 5 fields (minute hour day month weekday) or 6 (seconds first), e.g. "*/15 * * * *"',
    },
  );

/**
 * The whole configuration of the service: one schema over the environment, parsed once at start.
 * A bad value stops the process with a message naming the variable.
 *
 * @example
 * const config = loadConfig({ PORT: '8080' });
 * config.port; // 8080
 */
export const configSchema = z.object({
  PORT: intFromEnv(3000, 0, 65_535),
  HOST: z.string().min(1).default('127.0.0.1'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  DATA_DIR: z.string().min(1).default('./data'),
  DB_POOL_MAX: intFromEnv(20, 1, 1000),
  GROUP_COMMIT_IN_FLIGHT: intFromEnv(DEFAULT_CALLS_IN_FLIGHT, 1, 64),
  ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  SIGNING_KEY_FILE: z.string().min(1).optional(),
  CHECKPOINT_EVERY: intFromEnv(1000, 1, 10_000_000),
  CHECKPOINT_INTERVAL_MS: intFromEnv(10_000, 100, 86_400_000),
  SEQUENCER_POLL_MS: intFromEnv(500, 10, 60_000),
  SEQUENCER_BATCH: intFromEnv(5000, 1, 100_000),
  SEQUENCER_MIN_CYCLE_MS: intFromEnv(20, 0, 10_000),
  PROJECTIONS_MIN_CYCLE_MS: intFromEnv(100, 0, 10_000),
  SEQUENCER_ENABLED: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  SHUTDOWN_TIMEOUT_MS: intFromEnv(10_000, 0, 600_000),
  BODY_LIMIT_BYTES: intFromEnv(1_048_576, 1024, 64 * 1_048_576),
  /**
   * Time allowed to receive a whole request, headers and body: a client that sends slower
   * (slowloris) gets a 408 and its connection closed, instead of holding it open for ever.
   */
  REQUEST_TIMEOUT_MS: intFromEnv(30_000, 100, 3_600_000),
  /** Requests per key (or per client IP without a valid key) in each window. */
  RATE_LIMIT_MAX: intFromEnv(6000, 1, 10_000_000),
  RATE_LIMIT_WINDOW_MS: intFromEnv(60_000, 1000, 86_400_000),
  /** Browser origins allowed by CORS, comma-separated. Unset: CORS is off. */
  CORS_ORIGINS: z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((o) => o.trim())
        .filter(Boolean),
    )
    .pipe(
      z
        .array(z.string().refine(isOrigin, 'must be an origin like https://ops.example.com (no path, no *)'))
        .min(1, 'must list at least one origin'),
    )
    .optional(),
  /** Snapshot targets as `name=baseUrl` pairs, comma-separated. */
  SNAPSHOT_TARGETS: z
    .string()
    .transform((v, ctx) => {
      const list = parseTargetList(v);
      if (typeof list === 'string') {
        ctx.addIssue({ code: 'custom', message: `${list}; write name=baseUrl pairs, comma-separated` });
        return z.NEVER;
      }
      return list;
    })
    .pipe(distinctTargets)
    .optional(),
  /** A JSON file of snapshot targets (instead of SNAPSHOT_TARGETS). */
  SNAPSHOT_TARGETS_FILE: z
    .string()
    .transform((file, ctx) => {
      try {
        return readTargetsFile(file);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err) });
        return z.NEVER;
      }
    })
    .pipe(distinctTargets)
    .optional(),
  SNAPSHOT_CRON: cronExpression.default('*/15 * * * *'),
  /** Time allowed for one GET of one surface, connection to last byte. */
  SNAPSHOT_TIMEOUT_MS: intFromEnv(5_000, 100, 120_000),
  /** Retries after a failed GET (timeouts, connection errors, 5xx and 429 only). */
  SNAPSHOT_RETRIES: intFromEnv(2, 0, 10),
  /** First pause before a retry; it doubles each time. */
  SNAPSHOT_RETRY_BACKOFF_MS: intFromEnv(250, 0, 60_000),
  /** Largest response body read from a surface; a larger one fails that surface. */
  SNAPSHOT_MAX_BYTES: intFromEnv(262_144, 1024, 16 * 1_048_576),
});

export type Env = z.input<typeof configSchema>;

export interface AppConfig {
  port: number;
  host: string;
  database: { kind: 'postgres'; url: string; poolMax: number } | { kind: 'pglite'; dataDir: string };
  dataDir: string;
  adminToken: string | undefined;
  signingKeyFile: string | undefined;
  /** Group-commit calls to `append_events` one process keeps in flight at once. */
  groupCommitInFlight: number;
  sequencer: {
    enabled: boolean;
    pollMs: number;
    batchSize: number;
    /**
     * Least time between the starts of two batches of the sequencer: under load it then gathers
     * more entries per transaction, instead of one short transaction per append. Adds at most
     * this much to the lag.
     */
    minCycleMs: number;
    checkpointEvery: number;
    checkpointIntervalMs: number;
  };
  projections: {
    /**
     * The same for the projection runner. Longer than the sequencer's: a read model a tenth of
     * a second later costs no one, and fewer, larger batches under load leave more of the
     * machine to appends (docs/benchmarks.md, session 6).
     */
    minCycleMs: number;
  };
  logLevel: z.infer<typeof configSchema>['LOG_LEVEL'];
  shutdownTimeoutMs: number;
  bodyLimitBytes: number;
  /** Time allowed to receive a whole request (Node's `server.requestTimeout`). */
  requestTimeoutMs: number;
  rateLimit: { max: number; windowMs: number };
  /** Origins CORS allows; undefined means CORS is off. */
  corsOrigins: string[] | undefined;
  snapshots: {
    targets: SnapshotTarget[];
    cron: string;
    timeoutMs: number;
    retries: number;
    retryBackoffMs: number;
    maxBytes: number;
  };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Parses the environment into the typed configuration, or throws a ConfigError naming each bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): AppConfig {
  // Empty strings mean "unset": a `FOO=` line in a shell or a compose file should not be a value.
  const cleaned = Object.fromEntries(
    Object.keys(configSchema.shape).map((key) => [key, env[key] === '' ? undefined : env[key]]),
  );
  const parsed = configSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => `${issue.path.join('.') || '(environment)'}: ${issue.message}`),
    );
  }
  const c = parsed.data;
  if (c.SNAPSHOT_TARGETS && c.SNAPSHOT_TARGETS_FILE) {
    throw new ConfigError([
      'SNAPSHOT_TARGETS_FILE: set either SNAPSHOT_TARGETS or SNAPSHOT_TARGETS_FILE, not both',
    ]);
  }
  return {
    port: c.PORT,
    host: c.HOST,
    database: c.DATABASE_URL
      ? { kind: 'postgres', url: c.DATABASE_URL, poolMax: c.DB_POOL_MAX }
      : { kind: 'pglite', dataDir: c.DATA_DIR },
    dataDir: c.DATA_DIR,
    adminToken: c.ADMIN_TOKEN,
    signingKeyFile: c.SIGNING_KEY_FILE,
    groupCommitInFlight: c.GROUP_COMMIT_IN_FLIGHT,
    sequencer: {
      enabled: c.SEQUENCER_ENABLED,
      pollMs: c.SEQUENCER_POLL_MS,
      batchSize: c.SEQUENCER_BATCH,
      minCycleMs: c.SEQUENCER_MIN_CYCLE_MS,
      checkpointEvery: c.CHECKPOINT_EVERY,
      checkpointIntervalMs: c.CHECKPOINT_INTERVAL_MS,
    },
    projections: { minCycleMs: c.PROJECTIONS_MIN_CYCLE_MS },
    logLevel: c.LOG_LEVEL,
    shutdownTimeoutMs: c.SHUTDOWN_TIMEOUT_MS,
    bodyLimitBytes: c.BODY_LIMIT_BYTES,
    requestTimeoutMs: c.REQUEST_TIMEOUT_MS,
    rateLimit: { max: c.RATE_LIMIT_MAX, windowMs: c.RATE_LIMIT_WINDOW_MS },
    corsOrigins: c.CORS_ORIGINS,
    snapshots: {
      targets: c.SNAPSHOT_TARGETS ?? c.SNAPSHOT_TARGETS_FILE ?? [],
      cron: c.SNAPSHOT_CRON,
      timeoutMs: c.SNAPSHOT_TIMEOUT_MS,
      retries: c.SNAPSHOT_RETRIES,
      retryBackoffMs: c.SNAPSHOT_RETRY_BACKOFF_MS,
      maxBytes: c.SNAPSHOT_MAX_BYTES,
    },
  };
}

export const APP_CONFIG = Symbol('APP_CONFIG');
