import { randomBytes } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { type DatabaseHandle, openDatabase, wrapPGlite } from '../../src/database/database.js';
import { migrateToLatest } from '../../src/database/migrator.js';
import { adminUrl, templateDb, testDbPrefix } from './postgres.js';

export const onPostgres = Boolean(process.env.DATABASE_URL);
export const backend = onPostgres ? 'postgres' : 'pglite';

export interface TestDatabase {
  handle: DatabaseHandle;
  /** The connection string of this test database (Postgres only). */
  url: string | undefined;
  /** Opens another handle on the same database: a second replica, say (Postgres only). */
  reopen(poolMax?: number): Promise<DatabaseHandle>;
  /** Closes every handle and drops the database. */
  drop(): Promise<void>;
}

/**
 * A fresh, migrated database of this test file's own: a copy of the migrated template on
 * Postgres, or a new in-memory PGlite.
 *
 * @example
 * const db = await createTestDatabase();
 * afterAll(() => db.drop());
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const base = process.env.DATABASE_URL;
  if (!base) {
    const handle = await wrapPGlite(await PGlite.create('memory://'));
    await migrateToLatest(handle.db);
    return {
      handle,
      url: undefined,
      reopen: () => Promise.reject(new Error('PGlite is one session: a second handle is not possible')),
      drop: () => handle.close(),
    };
  }
  const name = `${testDbPrefix()}${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl(base) });
  await admin.connect();
  try {
    await admin.query(
      `create database ${pg.escapeIdentifier(name)} template ${pg.escapeIdentifier(templateDb())}`,
    );
  } finally {
    await admin.end();
  }
  const u = new URL(base);
  u.pathname = `/${name}`;
  const url = u.toString();
  const handles: DatabaseHandle[] = [];
  const reopen = async (poolMax = 20) => {
    const h = await openDatabase({ database: { kind: 'postgres', url, poolMax } });
    handles.push(h);
    return h;
  };
  const handle = await reopen();
  return {
    handle,
    url,
    reopen,
    async drop() {
      for (const h of handles) await h.close().catch(() => {});
      const a = new pg.Client({ connectionString: adminUrl(base) });
      await a.connect();
      try {
        await a.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
      } finally {
        await a.end();
      }
    },
  };
}
