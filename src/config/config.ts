import { z } from 'zod';

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
  ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  SIGNING_KEY_FILE: z.string().min(1).optional(),
  CHECKPOINT_EVERY: intFromEnv(1000, 1, 10_000_000),
  CHECKPOINT_INTERVAL_MS: intFromEnv(10_000, 100, 86_400_000),
  SEQUENCER_POLL_MS: intFromEnv(500, 10, 60_000),
  SEQUENCER_BATCH: intFromEnv(5000, 1, 100_000),
  SEQUENCER_ENABLED: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  SHUTDOWN_TIMEOUT_MS: intFromEnv(10_000, 0, 600_000),
  BODY_LIMIT_BYTES: intFromEnv(1_048_576, 1024, 64 * 1_048_576),
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
});

export type Env = z.input<typeof configSchema>;

export interface AppConfig {
  port: number;
  host: string;
  database: { kind: 'postgres'; url: string; poolMax: number } | { kind: 'pglite'; dataDir: string };
  dataDir: string;
  adminToken: string | undefined;
  signingKeyFile: string | undefined;
  sequencer: {
    enabled: boolean;
    pollMs: number;
    batchSize: number;
    checkpointEvery: number;
    checkpointIntervalMs: number;
  };
  logLevel: z.infer<typeof configSchema>['LOG_LEVEL'];
  shutdownTimeoutMs: number;
  bodyLimitBytes: number;
  rateLimit: { max: number; windowMs: number };
  /** Origins CORS allows; undefined means CORS is off. */
  corsOrigins: string[] | undefined;
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
  return {
    port: c.PORT,
    host: c.HOST,
    database: c.DATABASE_URL
      ? { kind: 'postgres', url: c.DATABASE_URL, poolMax: c.DB_POOL_MAX }
      : { kind: 'pglite', dataDir: c.DATA_DIR },
    dataDir: c.DATA_DIR,
    adminToken: c.ADMIN_TOKEN,
    signingKeyFile: c.SIGNING_KEY_FILE,
    sequencer: {
      enabled: c.SEQUENCER_ENABLED,
      pollMs: c.SEQUENCER_POLL_MS,
      batchSize: c.SEQUENCER_BATCH,
      checkpointEvery: c.CHECKPOINT_EVERY,
      checkpointIntervalMs: c.CHECKPOINT_INTERVAL_MS,
    },
    logLevel: c.LOG_LEVEL,
    shutdownTimeoutMs: c.SHUTDOWN_TIMEOUT_MS,
    bodyLimitBytes: c.BODY_LIMIT_BYTES,
    rateLimit: { max: c.RATE_LIMIT_MAX, windowMs: c.RATE_LIMIT_WINDOW_MS },
    corsOrigins: c.CORS_ORIGINS,
  };
}

export const APP_CONFIG = Symbol('APP_CONFIG');
