import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { migrateToLatest } from '../../src/database/migrator.js';
import type { Database } from '../../src/database/schema.js';
import { adminUrl, DB_PREFIX, ownerPid, RUN_TAG, templateDb } from './postgres.js';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function dropDatabases(admin: pg.Client, which: (datname: string) => boolean): Promise<void> {
  const { rows } = await admin.query<{ datname: string }>(
    'select datname from pg_database where datname like $1',
    [`${DB_PREFIX}%`],
  );
  for (const { datname } of rows.filter((r) => which(r.datname))) {
    await admin.query(`alter database ${pg.escapeIdentifier(datname)} is_template false`).catch(() => {});
    await admin.query(`drop database if exists ${pg.escapeIdentifier(datname)} with (force)`);
  }
}

/**
 * On Postgres (DATABASE_URL set): build this run's migrated template; each test file copies it
 * (`CREATE DATABASE … TEMPLATE`), so files run in parallel and never see each other's rows.
 * Databases left by runs that died are dropped; live runs' are left alone. Workers learn the
 * run's tag from UPGRADE_LEDGER_TEST_RUN. On PGlite nothing is shared.
 */
export async function setup(): Promise<() => Promise<void>> {
  process.env.UPGRADE_LEDGER_TEST_RUN = RUN_TAG.slice(1);
  const url = process.env.DATABASE_URL;
  if (!url) return async () => {};
  const admin = new pg.Client({ connectionString: adminUrl(url) });
  await admin.connect();
  try {
    await dropDatabases(admin, (name) => {
      const pid = ownerPid(name);
      return pid === undefined || pid === process.pid || !alive(pid);
    });
    await admin.query(`create database ${pg.escapeIdentifier(templateDb())}`);
  } finally {
    await admin.end();
  }
  const templateUrl = new URL(url);
  templateUrl.pathname = `/${templateDb()}`;
  const pool = new pg.Pool({ connectionString: templateUrl.toString(), max: 1 });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  await migrateToLatest(db);
  await db.destroy();

  return async () => {
    const a = new pg.Client({ connectionString: adminUrl(url) });
    await a.connect();
    try {
      await dropDatabases(a, (name) => ownerPid(name) === process.pid);
    } finally {
      await a.end();
    }
  };
}
