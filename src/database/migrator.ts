import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  type Kysely,
  type Migration,
  type MigrationProvider,
  type MigrationResultSet,
  Migrator,
  sql,
} from 'kysely';
import { importModule } from '../common/module-import.js';
import type { Database } from './schema.js';

/** `migrations/` beside `src/`, whether running from sources (tests) or from `dist/`. */
export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../migrations');

/** The migration files `<timestamp>_<what>.ts|.js` in `folder`, sorted. */
async function migrationFiles(folder: string): Promise<string[]> {
  return (await readdir(folder))
    .filter((f) => /^\d+_[\w-]+\.(ts|js)$/.test(f) && !f.endsWith('.d.ts'))
    .sort();
}

/** A migration's name: its file's, without the extension, so sources and builds agree. */
const migrationName = (file: string) => file.replace(/\.(ts|js)$/, '');

/** Loads `<timestamp>_<what>.ts|.js`, named without the extension so sources and builds agree. */
class FolderMigrationProvider implements MigrationProvider {
  constructor(private readonly folder: string) {}

  async getMigrations(): Promise<Record<string, Migration>> {
    const migrations: Record<string, Migration> = {};
    for (const file of await migrationFiles(this.folder)) {
      migrations[migrationName(file)] = (await importModule(
        pathToFileURL(path.join(this.folder, file)).href,
      )) as Migration;
    }
    return migrations;
  }
}

/**
 * What the database and the folder say, read cheaply: the names on disk, and those Kysely's
 * migrator has recorded as applied (none when its table does not exist yet). Two statements and a
 * directory listing, where Kysely's own `getMigrations` imports every migration file and
 * introspects the catalog several times (a quarter of a second on a reopened PGlite).
 */
async function migrationState(
  db: Kysely<Database>,
  folder: string,
): Promise<{ onDisk: string[]; applied: Set<string> }> {
  const [files, table] = await Promise.all([
    migrationFiles(folder),
    // Unqualified, like the migrator's own table: the first schema of the search path.
    sql<{ present: boolean }>`select to_regclass('kysely_migration') is not null as present`.execute(db),
  ]);
  const onDisk = files.map(migrationName);
  if (!table.rows[0]?.present) return { onDisk, applied: new Set() };
  const { rows } = await sql<{ name: string }>`select name from kysely_migration`.execute(db);
  return { onDisk, applied: new Set(rows.map((r) => r.name)) };
}

export function createMigrator(db: Kysely<Database>, folder = MIGRATIONS_DIR): Migrator {
  return new Migrator({ db, provider: new FolderMigrationProvider(folder) });
}

export class MigrationError extends Error {
  constructor(
    message: string,
    readonly results: MigrationResultSet['results'],
  ) {
    super(message);
    this.name = 'MigrationError';
  }
}

/** Runs every pending migration; throws with the failing migration's name. Returns the names applied. */
export async function migrateToLatest(db: Kysely<Database>, folder = MIGRATIONS_DIR): Promise<string[]> {
  // The common case, a service reopening its database: exactly the migrations on disk are
  // applied, nothing to do. Anything else (pending, or recorded but missing from disk, which
  // Kysely refuses) goes to the migrator, which takes its lock and decides.
  const { onDisk, applied } = await migrationState(db, folder);
  if (onDisk.length === applied.size && onDisk.every((name) => applied.has(name))) return [];
  const { error, results } = await createMigrator(db, folder).migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new MigrationError(
      `migration ${failed} failed: ${error instanceof Error ? error.message : String(error)}`,
      results,
    );
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** True when every migration on disk has been applied. */
export async function migrationsApplied(db: Kysely<Database>, folder = MIGRATIONS_DIR): Promise<boolean> {
  const { onDisk, applied } = await migrationState(db, folder);
  return onDisk.every((name) => applied.has(name));
}
