import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrateToLatest, migrationsApplied } from '../../src/database/migrator.js';
import { PGliteDialect } from '../../src/database/pglite-driver.js';
import type { Database } from '../../src/database/schema.js';

// Always PGlite: this file tests the migrator's answer when nothing, something or too much is
// applied (the short way for "exactly what is on disk", Kysely's migrator for the rest).

/** A migration file that creates table `t<n>`, with no imports so it loads from anywhere. */
const migrationFile = (n: number) =>
  `export async function up(db) { await db.schema.createTable('t${n}').addColumn('id', 'integer').execute(); }\n`;

describe('migrator', () => {
  let folder: string;
  let db: Kysely<Database>;

  beforeEach(async () => {
    folder = await mkdtemp(path.join(tmpdir(), 'ul-migrations-'));
    db = new Kysely<Database>({ dialect: new PGliteDialect(new PGlite('memory://')) });
  });
  afterEach(async () => {
    await db.destroy();
    await rm(folder, { recursive: true, force: true });
  });

  const add = (n: number) => writeFile(path.join(folder, `2026010100000${n}_t${n}.js`), migrationFile(n));

  it('reports pending migrations on a database never migrated, then applies them in order', async () => {
    await add(1);
    await add(2);
    expect(await migrationsApplied(db, folder)).toBe(false);
    expect(await migrateToLatest(db, folder)).toEqual(['20260101000001_t1', '20260101000002_t2']);
    expect(await migrationsApplied(db, folder)).toBe(true);
    expect(await migrateToLatest(db, folder)).toEqual([]);
  });

  it('sees a migration added since, and applies only it', async () => {
    await add(1);
    await migrateToLatest(db, folder);
    await add(2);
    expect(await migrationsApplied(db, folder)).toBe(false);
    expect(await migrateToLatest(db, folder)).toEqual(['20260101000002_t2']);
    expect(await migrationsApplied(db, folder)).toBe(true);
  });

  it('still refuses a database with a migration that is no longer on disk', async () => {
    await add(1);
    await add(2);
    await migrateToLatest(db, folder);
    await rm(path.join(folder, '20260101000002_t2.js'));
    // Readiness looks at what this version needs; starting refuses, as Kysely's migrator does.
    expect(await migrationsApplied(db, folder)).toBe(true);
    await expect(migrateToLatest(db, folder)).rejects.toThrow(/20260101000002_t2/);
  });
});
