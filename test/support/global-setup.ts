import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { migrateToLatest } from '../../src/database/migrator.js';
import type { Database } from '../../src/database/schema.js';
import { adminUrl, TEMPLATE_DB, testDbPrefix } from './postgres.js';

/**
 * On Postgres (DATABASE_URL set): build one migrated template database; each test file then
 * copies it (`CREATE DATABASE … TEMPLATE`), so files run in parallel and never see each
 * other's rows. On PGlite nothing is shared: each file opens its own in-memory database.
 */
export async function setup(): Promise<void> {
  const url = process.env.DATABASE_URL;
  if (!url) return;
  const admin = new pg.Client({ connectionString: adminUrl(url) });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ datname: string }>(
      `select datname from pg_database where datname like $1 or datname = $2`,
      [`${testDbPrefix}%`, TEMPLATE_DB],
    );
    for (const { datname } of rows) {
      await admin.query(`alter database ${pg.escapeIdentifier(datname)} is_template false`).catch(() => {});
      await admin.query(`drop database if exists ${pg.escapeIdentifier(datname)} with (force)`);
    }
    await admin.query(`create database ${pg.escapeIdentifier(TEMPLATE_DB)}`);
  } finally {
    await admin.end();
  }
  const templateUrl = new URL(url);
  templateUrl.pathname = `/${TEMPLATE_DB}`;
  const pool = new pg.Pool({ connectionString: templateUrl.toString(), max: 1 });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  await migrateToLatest(db);
  await db.destroy();
}
