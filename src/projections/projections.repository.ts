import { Inject, Injectable } from '@nestjs/common';
import { type Kysely, sql, type Transaction } from 'kysely';
import { InvalidInput } from '../common/errors.js';
import type { DatabaseHandle } from '../database/database.js';
import { DATABASE } from '../database/database.module.js';
import type { Database } from '../database/schema.js';

/** A projection version's checkpoint, as one string: `name/version`. */
export const checkpointKey = (k: { name: string; version: number }): string => `${k.name}/${k.version}`;

const TABLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Checkpoints and version tables of projections. */
@Injectable()
export class ProjectionsRepository {
  private readonly db: Kysely<Database>;

  constructor(@Inject(DATABASE) handle: DatabaseHandle) {
    this.db = handle.db;
  }

  transaction<T>(work: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    return this.db.transaction().execute(work);
  }

  /**
   * Locks several versions' checkpoint rows for this transaction (in key order, so two runners
   * never deadlock) and returns their positions by `name/version`.
   */
  async lockCheckpoints(
    trx: Transaction<Database>,
    keys: readonly { name: string; version: number }[],
  ): Promise<Map<string, number>> {
    const rows = await trx
      .selectFrom('projection_checkpoint')
      .select(['name', 'version', 'position'])
      .where(sql<boolean>`(name, version) in (${sql.join(keys.map((k) => sql`(${k.name}, ${k.version})`))})`)
      .orderBy('name')
      .orderBy('version')
      .forUpdate()
      .execute();
    return new Map(rows.map((r) => [checkpointKey(r), r.position]));
  }

  /** Moves several versions' checkpoints to `position`, in one statement. */
  async moveCheckpoints(
    trx: Transaction<Database>,
    keys: readonly { name: string; version: number }[],
    position: number,
  ): Promise<void> {
    await trx
      .updateTable('projection_checkpoint')
      .set({ position, updated_at: new Date() })
      .where(sql<boolean>`(name, version) in (${sql.join(keys.map((k) => sql`(${k.name}, ${k.version})`))})`)
      .execute();
  }

  async versions(name?: string) {
    let q = this.db.selectFrom('projection_checkpoint').selectAll();
    if (name) q = q.where('name', '=', name);
    return q.orderBy('name').orderBy('version').execute();
  }

  async activeVersion(name: string): Promise<number> {
    const row = await this.db
      .selectFrom('projection_checkpoint')
      .select('version')
      .where('name', '=', name)
      .where('active', '=', true)
      .executeTakeFirst();
    return row?.version ?? 1;
  }

  /**
   * Creates the next version's empty table (same columns and indexes as the served one) and its
   * checkpoint at 0, unless a version is already being built. The check and the creation are one
   * transaction serialised on the served version's row: two rebuilds asked at once used to both
   * pass the check, then both drop and create the same table (two 202s, or a 500 from the loser).
   */
  async createNextVersion(name: string, tableFor: (version: number) => string): Promise<{ version: number }> {
    return this.db.transaction().execute(async (trx) => {
      await trx
        .selectFrom('projection_checkpoint')
        .select('version')
        .where('name', '=', name)
        .where('active', '=', true)
        .forUpdate()
        .execute();
      // A new statement after the lock: it sees a version committed by a rebuild that held it.
      const versions = await trx
        .selectFrom('projection_checkpoint')
        .select(['version', 'active'])
        .where('name', '=', name)
        .execute();
      if (versions.some((v) => !v.active))
        throw new InvalidInput('name', `a rebuild of ${name} is already under way`);
      const active = versions.find((v) => v.active)?.version ?? 1;
      const version = Math.max(active, ...versions.map((v) => v.version)) + 1;
      const table = tableFor(version);
      const likeTable = tableFor(active);
      assertTableName(table);
      assertTableName(likeTable);
      await sql`drop table if exists ${sql.table(table)}`.execute(trx);
      await sql`create table ${sql.table(table)} (like ${sql.table(likeTable)} including all)`.execute(trx);
      await trx
        .insertInto('projection_checkpoint')
        .values({ name, version, position: 0, active: false })
        .onConflict((oc) => oc.columns(['name', 'version']).doUpdateSet({ position: 0, active: false }))
        .execute();
      return { version };
    });
  }

  /** Makes `version` the served one and drops the table of the version it replaces. */
  async swap(name: string, version: number, oldTable: string | undefined): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx
        .updateTable('projection_checkpoint')
        .set({ active: false })
        .where('name', '=', name)
        .execute();
      await trx
        .updateTable('projection_checkpoint')
        .set({ active: true, updated_at: new Date() })
        .where('name', '=', name)
        .where('version', '=', version)
        .execute();
      if (oldTable) {
        assertTableName(oldTable);
        await trx
          .deleteFrom('projection_checkpoint')
          .where('name', '=', name)
          .where('version', '<', version)
          .execute();
        // Readers that resolved the old version a moment ago finish first: DROP waits for their locks.
        await sql`drop table if exists ${sql.table(oldTable)}`.execute(trx);
      }
    });
  }
}

function assertTableName(table: string): void {
  if (!TABLE_NAME.test(table)) throw new Error(`not a projection table name: ${table}`);
}
