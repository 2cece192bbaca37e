import { PGlite } from '@electric-sql/pglite';
import { type ControlledTransaction, type Generated, Kysely, sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sqlState } from '../../src/database/pg-errors.js';
import { PGliteDialect } from '../../src/database/pglite-driver.js';

// Always PGlite, whatever DATABASE_URL says: this file tests the PGlite driver itself.

interface TestDb {
  item: { id: Generated<number>; owner: number; n: number };
}

async function openDb(): Promise<{ pg: PGlite; db: Kysely<TestDb> }> {
  const pg = new PGlite('memory://');
  const db = new Kysely<TestDb>({ dialect: new PGliteDialect(pg) });
  await sql`create table item (
    id int generated always as identity primary key,
    owner int not null,
    n int not null check (n >= 0),
    unique (owner, n))`.execute(db);
  return { pg, db };
}

class Boom extends Error {}

/** A promise the test resolves by hand, to hold a transaction open at a known point. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/**
 * Gives `p` many turns of the event loop to settle and reports whether it did. Not a timing
 * assertion: with a correct driver `p` cannot settle here however long we wait; a broken one
 * gets every chance to show it.
 */
async function settlesWhileBlocked(p: Promise<unknown>, turns = 50): Promise<boolean> {
  let settled = false;
  p.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  for (let i = 0; i < turns && !settled; i++) await new Promise((resolve) => setTimeout(resolve, 2));
  return settled;
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('PGliteDialect', () => {
  let pg: PGlite;
  let db: Kysely<TestDb>;

  beforeAll(async () => {
    ({ pg, db } = await openDb());
  });
  afterAll(() => db.destroy());
  beforeEach(async () => {
    await sql`truncate item`.execute(db);
  });

  const owners = async () =>
    (await db.selectFrom('item').select(['owner', 'n']).orderBy('owner').orderBy('n').execute()).map(
      (r) => `${r.owner}:${r.n}`,
    );

  it('keeps exactly the rows of concurrent transactions that commit, none of those that roll back', async () => {
    const fails = (t: number) => t % 4 === 3;
    const seenInside = new Map<number, number[]>();
    const outcomes = await Promise.allSettled(
      Array.from({ length: 16 }, (_, t) =>
        db.transaction().execute(async (trx) => {
          for (let n = 0; n < 3; n++) {
            await trx.insertInto('item').values({ owner: t, n }).execute();
            await nextTurn();
          }
          const visible = await trx.selectFrom('item').select('owner').distinct().execute();
          seenInside.set(
            t,
            visible.map((r) => r.owner),
          );
          if (fails(t)) throw new Boom(`transaction ${t} changed its mind`);
          return t;
        }),
      ),
    );

    outcomes.forEach((o, t) => {
      if (fails(t)) {
        expect(o.status).toBe('rejected');
        expect((o as PromiseRejectedResult).reason).toBeInstanceOf(Boom);
      } else {
        expect(o).toEqual({ status: 'fulfilled', value: t });
      }
    });
    const survivors = Array.from({ length: 16 }, (_, t) => t).filter((t) => !fails(t));
    expect(survivors).toHaveLength(12);
    expect(await owners()).toEqual(
      survivors
        .flatMap((t) => [0, 1, 2].map((n) => `${t}:${n}`))
        .sort((a, b) => a.localeCompare(b, 'en', { numeric: true })),
    );
    // No transaction ever saw another's rows that were not committed yet (they would share a session).
    for (const [t, visible] of seenInside) {
      expect(visible.filter((o) => o !== t && fails(o))).toEqual([]);
    }
  });

  it('never lets a plain query issued concurrently see part of a transaction', async () => {
    const fails = (t: number) => t % 4 === 3;
    const reads: Promise<{ owner: number; n: number }[]>[] = [];
    const writes = Array.from({ length: 16 }, (_, t) =>
      db.transaction().execute(async (trx) => {
        for (let n = 0; n < 3; n++) {
          await trx.insertInto('item').values({ owner: t, n }).execute();
          // A plain query on the same database while this transaction is mid-way.
          reads.push(db.selectFrom('item').select(['owner', 'n']).execute());
          await nextTurn();
        }
        if (fails(t)) throw new Boom();
      }),
    );
    await Promise.allSettled(writes);
    const snapshots = await Promise.all(reads);
    expect(snapshots).toHaveLength(48);
    for (const rows of snapshots) {
      const counts = new Map<number, number>();
      for (const r of rows) counts.set(r.owner, (counts.get(r.owner) ?? 0) + 1);
      for (const [owner, count] of counts) {
        expect(fails(owner)).toBe(false); // never a row that was rolled back
        expect(count).toBe(3); // never part of a transaction
      }
    }
  });

  it('runs a plain query only after an in-flight transaction has rolled back', async () => {
    const inserted = gate();
    const release = gate();
    const trx = db.transaction().execute(async (t) => {
      await t.insertInto('item').values({ owner: 1, n: 0 }).execute();
      inserted.open();
      await release.opened;
      throw new Boom();
    });
    await inserted.opened;
    const read = db.selectFrom('item').selectAll().execute();
    expect(await settlesWhileBlocked(read)).toBe(false);
    release.open();
    await expect(trx).rejects.toBeInstanceOf(Boom);
    expect(await read).toEqual([]);
  });

  it('rolls back a transaction whose statement fails, and the session stays usable', async () => {
    await db.insertInto('item').values({ owner: 1, n: 0 }).execute();
    const failing = db.transaction().execute(async (trx) => {
      await trx.insertInto('item').values({ owner: 2, n: 0 }).execute();
      await trx.insertInto('item').values({ owner: 1, n: 0 }).execute(); // unique violation
    });
    await expect(failing).rejects.toMatchObject({ code: '23505' });
    // Not left inside an aborted transaction: the next statements run and commit normally.
    await db.insertInto('item').values({ owner: 3, n: 0 }).execute();
    expect(await owners()).toEqual(['1:0', '3:0']);
    // Two plain statements run in two transactions, not in one left open.
    const xid = async () =>
      (await sql<{ x: string }>`select pg_current_xact_id()::text as x`.execute(db)).rows[0]?.x;
    expect(await xid()).not.toBe(await xid());
  });

  it('releases the session after a failing plain query', async () => {
    const results = await Promise.allSettled([
      sql`select * from no_such_table`.execute(db),
      db.insertInto('item').values({ owner: 1, n: -1 }).execute(),
      db.insertInto('item').values({ owner: 1, n: 0 }).execute(),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'fulfilled']);
    expect(sqlState((results[0] as PromiseRejectedResult).reason)).toBe('42P01');
    expect(sqlState((results[1] as PromiseRejectedResult).reason)).toBe('23514');
    expect(await owners()).toEqual(['1:0']);
  });

  it('applies the access mode and isolation level of a transaction', async () => {
    const readOnly = await db
      .transaction()
      .setAccessMode('read only')
      .execute(async (trx) => {
        const { rows } = await sql<{
          ro: string;
        }>`select current_setting('transaction_read_only') as ro`.execute(trx);
        return rows[0]?.ro;
      });
    expect(readOnly).toBe('on');
    const write = db
      .transaction()
      .setAccessMode('read only')
      .execute((trx) => trx.insertInto('item').values({ owner: 1, n: 0 }).execute());
    await expect(write).rejects.toMatchObject({ code: '25006' });

    const level = await db
      .transaction()
      .setIsolationLevel('serializable')
      .execute(async (trx) => {
        const { rows } = await sql<{
          level: string;
        }>`select current_setting('transaction_isolation') as level`.execute(trx);
        return rows[0]?.level;
      });
    expect(level).toBe('serializable');
    expect(await owners()).toEqual([]);
  });

  it('reports affected row counts for insert, update and delete', async () => {
    const inserted = await db
      .insertInto('item')
      .values([0, 1, 2, 3].map((n) => ({ owner: 7, n })))
      .executeTakeFirstOrThrow();
    expect(inserted.numInsertedOrUpdatedRows).toBe(4n);
    const updated = await db
      .updateTable('item')
      .set({ owner: 8 })
      .where('n', '<', 3)
      .executeTakeFirstOrThrow();
    expect(updated.numUpdatedRows).toBe(3n);
    const deleted = await db.deleteFrom('item').where('owner', '=', 8).executeTakeFirstOrThrow();
    expect(deleted.numDeletedRows).toBe(3n);
    const returned = await db.deleteFrom('item').returning(['owner', 'n']).execute();
    expect(returned).toEqual([{ owner: 7, n: 3 }]);
  });

  it('streams a result in chunks', async () => {
    await db
      .insertInto('item')
      .values(Array.from({ length: 7 }, (_, n) => ({ owner: 1, n })))
      .execute();
    const seen: number[] = [];
    for await (const row of db.selectFrom('item').select('n').orderBy('n').stream(3)) seen.push(row.n);
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  describe('controlled transactions and savepoints', () => {
    /** Runs `fn` in a controlled transaction, rolled back if `fn` fails so later tests get the session. */
    async function controlled(fn: (trx: ControlledTransaction<TestDb>) => Promise<void>): Promise<void> {
      const trx = await db.startTransaction().execute();
      try {
        await fn(trx);
      } finally {
        if (!trx.isCommitted && !trx.isRolledBack) await trx.rollback().execute();
      }
    }

    it('rolls back to a savepoint and releases another, keeping the rest', async () => {
      await controlled(async (trx) => {
        await trx.insertInto('item').values({ owner: 1, n: 0 }).execute();
        const afterFirst = await trx.savepoint('after first').execute();
        await afterFirst.insertInto('item').values({ owner: 1, n: 1 }).execute();
        await afterFirst.rollbackToSavepoint('after first').execute();
        await trx.insertInto('item').values({ owner: 1, n: 2 }).execute();
        const quoted = await trx.savepoint('it"s "quoted"').execute();
        await quoted.insertInto('item').values({ owner: 1, n: 3 }).execute();
        await quoted.releaseSavepoint('it"s "quoted"').execute();
        await trx.commit().execute();
      });
      expect(await owners()).toEqual(['1:0', '1:2', '1:3']);
    });

    it('recovers from a failed statement by rolling back to a savepoint', async () => {
      await controlled(async (trx) => {
        await trx.insertInto('item').values({ owner: 1, n: 0 }).execute();
        const sp = await trx.savepoint('attempt').execute();
        await expect(sp.insertInto('item').values({ owner: 1, n: 0 }).execute()).rejects.toMatchObject({
          code: '23505',
        });
        await sp.rollbackToSavepoint('attempt').execute();
        await trx.insertInto('item').values({ owner: 1, n: 1 }).execute();
        await trx.commit().execute();
      });
      expect(await owners()).toEqual(['1:0', '1:1']);
    });

    it('holds the session until commit or rollback: a plain query waits and sees no uncommitted row', async () => {
      let read: Promise<unknown> | undefined;
      await controlled(async (trx) => {
        await trx.insertInto('item').values({ owner: 5, n: 0 }).execute();
        read = db.selectFrom('item').selectAll().execute();
        expect(await settlesWhileBlocked(read)).toBe(false);
        await trx.rollback().execute();
      });
      expect(await read).toEqual([]);

      let read2: Promise<unknown> | undefined;
      await controlled(async (trx) => {
        await trx.insertInto('item').values({ owner: 6, n: 0 }).execute();
        read2 = db.selectFrom('item').select(['owner', 'n']).execute();
        await trx.commit().execute();
      });
      expect(await read2).toEqual([{ owner: 6, n: 0 }]);
    });
  });

  it('is one session: a second transaction waits for the first to finish', async () => {
    const order: string[] = [];
    const first = gate();
    const a = db.transaction().execute(async (trx) => {
      order.push('a begin');
      await trx.insertInto('item').values({ owner: 1, n: 0 }).execute();
      await first.opened;
      order.push('a end');
    });
    const b = db.transaction().execute(async (trx) => {
      order.push('b begin');
      await trx.insertInto('item').values({ owner: 2, n: 0 }).execute();
      order.push('b end');
    });
    expect(await settlesWhileBlocked(b)).toBe(false);
    first.open();
    await Promise.all([a, b]);
    expect(order).toEqual(['a begin', 'a end', 'b begin', 'b end']);
    expect(pg.closed).toBe(false);
  });
});

describe('PGliteDialect destroy', () => {
  it('waits for the in-flight transaction to commit before closing the database', async () => {
    const { pg, db } = await openDb();
    const order: string[] = [];
    const inserted = gate();
    const release = gate();
    const trx = db.transaction().execute(async (t) => {
      await t.insertInto('item').values({ owner: 1, n: 0 }).execute();
      inserted.open();
      await release.opened;
      await t.insertInto('item').values({ owner: 1, n: 1 }).execute();
      const { count } = await t
        .selectFrom('item')
        .select((eb) => eb.fn.countAll<number>().as('count'))
        .executeTakeFirstOrThrow();
      order.push('transaction done');
      return Number(count);
    });
    await inserted.opened;
    const destroyed = db.destroy().then(() => order.push('destroyed'));
    expect(await settlesWhileBlocked(destroyed)).toBe(false);
    expect(pg.closed).toBe(false);
    release.open();
    await expect(trx).resolves.toBe(2);
    await destroyed;
    expect(order).toEqual(['transaction done', 'destroyed']);
    expect(pg.closed).toBe(true);
    await expect(db.selectFrom('item').selectAll().execute()).rejects.toThrow();
  });
});
