import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../../src/database/database.js';
import { EventStore } from '../../src/event-store/event-store.repository.js';
import { LedgerService } from '../../src/ledger/ledger.service.js';
import { SEQUENCER_LOCK_KEY, SequencerService } from '../../src/ledger/sequencer.service.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, onPostgres, type TestDatabase } from '../support/database.js';
import { waitFor as waitUntil } from '../support/wait.js';

/**
 * Two replicas on one Postgres: exactly one leads the sequencer (advisory lock); when the
 * leader's session dies the other takes over within seconds, and the ledger stays gapless and
 * duplicate-free while appends keep flowing. PGlite is one process and one session, so this only
 * means something on Postgres.
 */
const DEADLINE_MS = 30_000;
const ENV = { SEQUENCER_POLL_MS: '50', SEQUENCER_BATCH: '200', CHECKPOINT_EVERY: '100' };

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const waitFor = (what: string, check: () => Promise<boolean> | boolean) =>
  waitUntil(what, check, { deadlineMs: DEADLINE_MS });

describe.runIf(onPostgres)('sequencer failover between two replicas (postgres)', () => {
  let db: TestDatabase;
  let admin: DatabaseHandle;
  const apps: TestApp[] = [];

  /** One replica: the whole app on a pool of its own, so closing it closes only that pool. */
  const startReplica = async (): Promise<TestApp> => {
    const app = await startTestApp({ db: { ...db, handle: await db.reopen(5) }, env: ENV });
    apps.push(app);
    return app;
  };
  const leaders = () => apps.filter((a) => a.app.get(SequencerService).isLeader);
  /** Backends holding the sequencer's session-level advisory lock in this database. */
  const lockHolders = async (): Promise<number[]> => {
    const { rows } = await sql<{ pid: number }>`
      select pid from pg_locks
      where locktype = 'advisory' and granted and objsubid = 1
        and database = (select oid from pg_database where datname = current_database())
        and classid = ${Number(SEQUENCER_LOCK_KEY >> 32n)}::oid
        and objid = ${Number(SEQUENCER_LOCK_KEY & 0xffff_ffffn)}::oid`.execute(admin.db);
    return rows.map((r) => Number(r.pid));
  };
  const headOf = async () => (await apps[0]!.app.get(LedgerService).head()).position;

  beforeAll(async () => {
    db = await createTestDatabase();
    admin = await db.reopen(2);
  });
  afterAll(async () => {
    for (const a of apps) await a.close().catch(() => {});
    await db?.drop();
  });

  it('keeps one leader, fails over when its session dies, and never leaves a gap or a duplicate', async () => {
    const a = await startReplica();
    const b = await startReplica();

    // Appends flow the whole time, from a third pool (as if from other replicas' requests).
    const store = new EventStore(await db.reopen(4));
    let appended = 0;
    let stop = false;
    const writers = Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        for (let i = 0; !stop; i++) {
          const n = 1 + (i % 3);
          await store.append(
            `failover-${(w * 7 + i) % 20}`,
            Array.from({ length: n }, (_, k) => ({ type: 'Tick', data: { w, i, k } })),
          );
          appended += n;
          await sleep(2);
        }
      }),
    );

    try {
      // Exactly one leader, and it holds the one lock.
      await waitFor('a leader', () => leaders().length === 1);
      await sleep(300); // let the other replica try for the lock a few times
      expect(leaders()).toHaveLength(1);
      const [firstHolder, ...others] = await lockHolders();
      expect(firstHolder).toBeDefined();
      expect(others).toEqual([]);
      await waitFor('the ledger to advance', async () => (await headOf()) >= 200);

      // 1. The leader's database session dies (network cut, backend killed): its lock goes with it.
      const first = leaders()[0]!;
      const survivor = first === a ? b : a;
      const killedAt = Date.now();
      await sql`select pg_terminate_backend(${firstHolder}::int)`.execute(admin.db);
      const headAtKill = await headOf();
      await waitFor('a new lock holder', async () => {
        const holders = await lockHolders();
        return holders.length === 1 && holders[0] !== firstHolder;
      });
      await waitFor('exactly one replica to lead again', () => leaders().length === 1);
      const tookOver = Date.now() - killedAt;
      await waitFor('sequencing to continue', async () => (await headOf()) >= headAtKill + 200);

      // 2. The leader goes away entirely (its session killed and the process stopped): the other
      //    replica, whichever it is now, takes over within seconds.
      const second = leaders()[0]!;
      const heir = second === survivor ? first : survivor;
      const [secondHolder] = await lockHolders();
      const crashedAt = Date.now();
      await Promise.all([
        sql`select pg_terminate_backend(${secondHolder}::int)`.execute(admin.db),
        second.close(),
      ]);
      apps.splice(apps.indexOf(second), 1);
      const headAtCrash = (await heir.app.get(LedgerService).head()).position;
      await waitFor('the surviving replica to lead', () => heir.app.get(SequencerService).isLeader);
      console.info(
        `failover: session kill → ${second === first ? 'the same' : 'the other'} replica led after ` +
          `${tookOver} ms (the lock goes to whoever asks first); leader stopped → heir led after ` +
          `${Date.now() - crashedAt} ms`,
      );
      await waitFor(
        'sequencing to continue on the survivor',
        async () => (await heir.app.get(LedgerService).head()).position >= headAtCrash + 200,
      );
      expect(await lockHolders()).toHaveLength(1);
    } finally {
      stop = true;
      await writers;
    }

    // Everything appended is sequenced exactly once, at positions 1..N.
    const { rows: eventCount } = await sql<{ n: number }>`select count(*)::int as n from event`.execute(
      admin.db,
    );
    const total = Number(eventCount[0]?.n);
    expect(total).toBe(appended);
    const ledger = apps[0]!.app.get(LedgerService);
    await waitFor(`the ledger to reach ${total}`, async () => (await ledger.head()).position === total);
    const { rows } = await sql<{ position: number; event_row_id: number }>`
      select position, event_row_id from ledger order by position`.execute(admin.db);
    expect(rows).toHaveLength(total);
    expect(rows.every((r, i) => Number(r.position) === i + 1)).toBe(true);
    expect(new Set(rows.map((r) => Number(r.event_row_id))).size).toBe(total);
    const { rows: unsequenced } = await sql<{ n: number }>`
      select count(*)::int as n from event e where not exists (select 1 from ledger l where l.event_row_id = e.id)`.execute(
      admin.db,
    );
    expect(Number(unsequenced[0]?.n)).toBe(0);

    const result = await ledger.verify();
    expect(result).toMatchObject({ ok: true, verifiedThrough: total });
    expect(result.ok && result.checkpointsVerified).toBeGreaterThan(0);
  });
});
