import { Inject, Injectable } from '@nestjs/common';
import { type Kysely, sql, type Transaction } from 'kysely';
import { InvalidInput } from '../common/errors.js';
import type { DatabaseHandle } from '../database/database.js';
import { DATABASE } from '../database/database.module.js';
import { sqlState } from '../database/pg-errors.js';
import type { Database } from '../database/schema.js';

/** A projection version's checkpoint, as one string: `name/version`. */
export const checkpointKey = (k: { name: string; version: number }): string => `${k.name}/${k.version}`;

const TABLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
/** Reads of a served version tried before giving up (each retry follows a swap seen meanwhile). */
const SERVED_READ_ATTEMPTS = 4;

/** A row of a read against the served version: `served_version` is `servedVersionColumn`'s. */
export interface ServedRow {
  served_version: number | null;
}

/** Checkpoints and version tables of projections. */
@Injectable()
export class ProjectionsRepository {
  private readonly db: Kysely<Database>;
  /**
   * The served version of each projection as this process last read it. Only a guess that saves
   * a statement per read: `readServed` checks it in the read's own statement, so a version
   * swapped meanwhile (by another replica too) costs a retry, never a stale answer.
   */
  private readonly served = new Map<string, number>();

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

  /** The served version of `name`, read now (1 when none is marked active). */
  async activeVersion(name: string): Promise<number> {
    const row = await this.db
      .selectFrom('projection_checkpoint')
      .select('version')
      .where('name', '=', name)
      .where('active', '=', true)
      .executeTakeFirst();
    const version = row?.version ?? 1;
    this.served.set(name, version);
    return version;
  }

  /**
   * The served version of `name` as a column of the read itself (`served_version`, null when
   * none is marked active): evaluated once per statement, in the same snapshot as the rows.
   */
  servedVersionColumn(name: string) {
    return this.db
      .selectFrom('projection_checkpoint')
      .select('version')
      .where('name', '=', name)
      .where('active', '=', true)
      .$asScalar()
      .as('served_version');
  }

  /**
   * Runs `read` against the version of `name` this process last saw served, in one statement
   * that also selects `servedVersionColumn(name)`, and answers its rows only when that version
   * was the served one in the read's own snapshot. Otherwise (another replica swapped versions)
   * it reads the served version and tries again: when the old table is already dropped the
   * statement fails (undefined table); when it still exists the rows say another version is
   * served; an empty answer is checked with one more statement. Versions only ever move forward,
   * so a version served before and after an empty read was served during it.
   */
  async readServed<R extends ServedRow>(name: string, read: (version: number) => Promise<R[]>): Promise<R[]> {
    for (let attempt = 1; ; attempt++) {
      const cached = this.served.get(name);
      const version = cached ?? (await this.activeVersion(name));
      let rows: R[];
      try {
        rows = await read(version);
      } catch (err) {
        if (sqlState(err) !== '42P01' || attempt >= SERVED_READ_ATTEMPTS) throw err;
        this.served.delete(name);
        continue;
      }
      const first = rows[0];
      const served = first ? (first.served_version ?? 1) : await this.activeVersion(name);
      if (served === version) return rows;
      if (attempt >= SERVED_READ_ATTEMPTS)
        throw new Error(`projection ${name}: the served version kept changing under the read`);
      this.served.set(name, served);
    }
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
    this.served.set(name, version);
  }
}

function assertTableName(table: string): void {
  if (!TABLE_NAME.test(table)) throw new Error(`not a projection table name: ${table}`);
}
