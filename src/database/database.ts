import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect } from 'kysely';
import type pg from 'pg';
import type { AppConfig } from '../config/config.js';
import { PGliteDialect } from './pglite-driver.js';
import { pgliteDir, takePreopened } from './preopen.js';
import type { Database } from './schema.js';

/**
 * A session of its own, outside the pool: for LISTEN and for session-level advisory locks, which
 * must live exactly as long as the session does (so a dead leader's lock dies with it).
 */
export interface DedicatedSession {
  tryAdvisoryLock(key: bigint): Promise<boolean>;
  advisoryUnlock(key: bigint): Promise<void>;
  /** Resolves when the session is lost (connection error or end). */
  readonly lost: Promise<Error>;
  close(): Promise<void>;
}

export interface DatabaseHandle {
  readonly kind: 'postgres' | 'pglite';
  readonly db: Kysely<Database>;
  /**
   * Subscribes to a NOTIFY channel: `onNotify` runs on each notification, and also when the
   * subscription is lost and when it is taken again (it is renewed until unsubscribed). Fails if
   * the first subscription cannot be taken. Returns the unsubscribe function.
   */
  listen(channel: string, onNotify: () => void): Promise<() => Promise<void>>;
  openSession(): Promise<DedicatedSession>;
  close(): Promise<void>;
}

const INT8_OID = 20;

/**
 * node-postgres, loaded only when Postgres is configured: embedded mode never uses it, and
 * loading it is time before the service is ready (cold start).
 */
async function loadPg(): Promise<typeof pg> {
  return (await import('pg')).default;
}

/** Postgres `bigint` as a JS number everywhere (PGlite already does this): positions stay below 2^53. */
const pgTypesOf = (driver: typeof pg) => ({
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID
      ? (value: string) => Number(value)
      : driver.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
});

export async function createPgPool(url: string, max: number): Promise<pg.Pool> {
  const driver = await loadPg();
  const pool = new driver.Pool({
    connectionString: url,
    max,
    types: pgTypesOf(driver),
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    application_name: 'upgrade-ledger',
  });
  // A checked-out client (a transaction between two statements) whose server goes away emits
  // 'error' on itself, and pg-pool only listens while the client is idle: unheard, that event
  // kills the process. The next statement on it fails with a connection error instead (a 503),
  // and the pool discards the client when it is released.
  pool.on('connect', (client) => {
    client.on('error', () => {});
  });
  return pool;
}

async function openPostgres(url: string, poolMax: number): Promise<DatabaseHandle> {
  const driver = await loadPg();
  const pool = await createPgPool(url, poolMax);
  // An idle client that loses its connection emits 'error' on the pool; without a listener
  // that would crash the process during a database restart. The next checkout reconnects.
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });

  const connectClient = async () => {
    const client = new driver.Client({
      connectionString: url,
      types: pgTypesOf(driver),
      application_name: 'upgrade-ledger',
    });
    const lost = new Promise<Error>((resolve) => {
      client.on('error', (err) => resolve(err));
      client.on('end', () => resolve(new Error('session ended')));
    });
    await client.connect();
    return { client, lost };
  };

  return {
    kind: 'postgres',
    db,
    async listen(channel, onNotify) {
      let closed = false;
      let current: pg.Client | undefined;
      let cancelWait: (() => void) | undefined;
      const subscribe = async () => {
        const { client, lost } = await connectClient();
        client.on('notification', (msg) => {
          if (msg.channel === channel) onNotify();
        });
        try {
          await client.query(`listen ${driver.escapeIdentifier(channel)}`);
        } catch (err) {
          await client.end().catch(() => {});
          throw err;
        }
        current = client;
        // Wrapped: an async function returning the promise itself would wait for the loss.
        return { lost };
      };
      const pause = (ms: number) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, ms);
          timer.unref();
          cancelWait = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      // A lost subscription (the server restarted) is taken again, with a backoff, until
      // unsubscribed. Each loss and each return is a wake-up: notifications sent while nobody
      // listened are gone, so the listener must look for itself.
      const keep = async (lost: Promise<Error>) => {
        for (let delay = 100; ; ) {
          await lost;
          current = undefined;
          if (closed) return;
          onNotify();
          for (;;) {
            await pause(delay);
            if (closed) return;
            try {
              ({ lost } = await subscribe());
              delay = 100;
              break;
            } catch {
              delay = Math.min(delay * 2, 5_000);
            }
          }
          if (closed) {
            await (current as pg.Client | undefined)?.end().catch(() => {});
            return;
          }
          onNotify();
        }
      };
      void keep((await subscribe()).lost);
      return async () => {
        closed = true;
        cancelWait?.();
        await current?.end().catch(() => {});
      };
    },
    async openSession() {
      const { client, lost } = await connectClient();
      return {
        lost,
        async tryAdvisoryLock(key) {
          const { rows } = await client.query<{ ok: boolean }>(
            'select pg_try_advisory_lock($1::bigint) as ok',
            [key.toString()],
          );
          return rows[0]?.ok === true;
        },
        async advisoryUnlock(key) {
          await client.query('select pg_advisory_unlock($1::bigint)', [key.toString()]);
        },
        async close() {
          await client.end().catch(() => {});
        },
      };
    },
    async close() {
      await db.destroy();
    },
  };
}

async function openPGlite(dataDir: string | undefined, instance?: PGlite): Promise<DatabaseHandle> {
  let pglite = instance;
  if (!pglite && dataDir) pglite = await takePreopened(dataDir);
  if (!pglite) {
    const dir = dataDir ? pgliteDir(dataDir) : undefined;
    if (dir) await mkdir(dir, { recursive: true });
    pglite = await PGlite.create(dir ?? 'memory://');
  }
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  const pgl = pglite;
  return {
    kind: 'pglite',
    db,
    async listen(channel, onNotify) {
      const unlisten = await pgl.listen(channel, () => onNotify());
      return async () => {
        if (!pgl.closed) await unlisten();
      };
    },
    async openSession() {
      // One process, one session: whoever asks is the only one, so the lock is always theirs.
      return {
        lost: new Promise<Error>(() => {}),
        tryAdvisoryLock: async () => true,
        advisoryUnlock: async () => {},
        close: async () => {},
      };
    },
    async close() {
      await db.destroy();
    },
  };
}

/** Opens the configured database: Postgres when DATABASE_URL is set, otherwise embedded PGlite. */
export function openDatabase(config: Pick<AppConfig, 'database'>): Promise<DatabaseHandle> {
  return config.database.kind === 'postgres'
    ? openPostgres(config.database.url, config.database.poolMax)
    : openPGlite(config.database.dataDir);
}

/** Wraps an existing PGlite instance (tests clone a migrated template into one per file). */
export function wrapPGlite(instance: PGlite): Promise<DatabaseHandle> {
  return openPGlite(undefined, instance);
}
