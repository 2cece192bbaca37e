import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { type DatabaseHandle, openDatabase } from '../../src/database/database.js';
import { migrateToLatest } from '../../src/database/migrator.js';
import { LedgerRepository } from '../../src/ledger/ledger.repository.js';
import type { LedgerEntry } from '../../src/ledger/ledger.types.js';
import { SequencerService } from '../../src/ledger/sequencer.service.js';
import {
  TransferRefused,
  transferEmbeddedToPostgres,
  verifyStoredLedger,
} from '../../src/ledger/transfer.js';
import { AUTH, settleProjections, startTestApp, testConfig } from '../support/app.js';
import { createTestDatabase, onPostgres, type TestDatabase } from '../support/database.js';
import { waitFor } from '../support/wait.js';

/**
 * Embedded → Postgres (`upgrade-ledger transfer`): a real embedded DATA_DIR, written by the
 * application, is carried into a new Postgres database. Same positions, same hashes, the
 * checkpoints signed by the embedded key still verify, the events the source had not sequenced
 * yet follow in commit order, the read models rebuild, new rollouts sequence after the old ones,
 * and a target that already holds data is refused.
 */
const SEQUENCED = 12;
const PENDING = 3;

const plan = (title: string) => ({
  title,
  scope: 'stack-wide',
  environment: 'transfer',
  products: [{ product: 'gateway', fromVersion: '1.4.2', toVersion: '1.5.0' }],
  sequence: [{ id: 's1', order: 1, product: 'gateway', action: 'upgrade gateway', reversible: true }],
});

async function readAll(repo: LedgerRepository): Promise<LedgerEntry[]> {
  const all: LedgerEntry[] = [];
  for (let after = 0; ; ) {
    const page = await repo.read(after, 1000);
    all.push(...page);
    const last = page.at(-1);
    if (!last || page.length < 1000) return all;
    after = last.position;
  }
}

describe.runIf(onPostgres)('transfer: embedded database → Postgres (postgres)', () => {
  let dataDir: string;
  let source: DatabaseHandle | undefined;
  const targets: TestDatabase[] = [];
  let sourceEntries: LedgerEntry[];
  let sourceKeyId: string;
  let sourceCheckpoints: number;
  const sourceIds: string[] = [];
  const pendingIds: string[] = [];

  /** The application on the embedded database of dataDir (closing the app closes the database). */
  async function embeddedApp(env: Record<string, string>) {
    const handle = await openDatabase({ database: { kind: 'pglite', dataDir } });
    await migrateToLatest(handle.db);
    return createApp({ config: testConfig(dataDir, { CHECKPOINT_EVERY: '5', ...env }), database: handle });
  }

  async function record(app: Awaited<ReturnType<typeof createApp>>, title: string): Promise<string> {
    const res = await request(app.getHttpServer())
      .post('/api/v1/rollouts')
      .set(AUTH)
      .send(plan(title))
      .expect(201);
    return res.body.id as string;
  }

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'upgrade-ledger-transfer-'));
    const app = await embeddedApp({});
    await app.init();
    for (let i = 0; i < SEQUENCED; i++) sourceIds.push(await record(app, `embedded ${i}`));
    const repo = app.get(LedgerRepository);
    await waitFor('the embedded ledger to be sequenced and checkpointed', async () => {
      await app.get(SequencerService).drain();
      const cp = await repo.latestCheckpoint();
      return (await repo.pendingCount()) === 0 && cp !== undefined && cp.position >= SEQUENCED - 5;
    });
    await app.close();
    // Then rollouts the embedded sequencer never reached: stored, without a ledger position.
    const paused = await embeddedApp({ SEQUENCER_ENABLED: 'false' });
    await paused.init();
    for (let i = 0; i < PENDING; i++) pendingIds.push(await record(paused, `pending ${i}`));
    await paused.close();

    source = await openDatabase({ database: { kind: 'pglite', dataDir } });
    const sourceRepo = new LedgerRepository(source);
    expect(await sourceRepo.pendingCount()).toBe(PENDING);
    sourceEntries = await readAll(sourceRepo);
    expect(sourceEntries).toHaveLength(SEQUENCED);
    const keys = await sourceRepo.publicKeys();
    expect(keys).toHaveLength(1);
    sourceKeyId = keys[0]!.keyId;
    sourceCheckpoints = (await sourceRepo.checkpoints(0, 1000)).length;
    expect(sourceCheckpoints).toBeGreaterThan(0);
    await source.close();
    source = undefined;
  });

  afterAll(async () => {
    await source?.close();
    for (const t of targets) await t.drop().catch(() => {});
    await rm(dataDir, { recursive: true, force: true });
  });

  it('carries the ledger over unchanged, sequences the pending events, and the service carries on', async () => {
    const target = await createTestDatabase();
    targets.push(target);
    const lines: string[] = [];
    const result = await transferEmbeddedToPostgres({
      fromDataDir: dataDir,
      to: target.url!,
      progress: (l) => lines.push(l),
    });
    expect(result.mismatches).toEqual([]);
    expect(result.verify).toMatchObject({ ok: true, verifiedThrough: SEQUENCED + PENDING });
    expect(result.ok).toBe(true);
    expect(result.copied).toMatchObject({ ledger: SEQUENCED, event: SEQUENCED + PENDING, signing_key: 1 });
    expect(result.copied.checkpoint).toBe(sourceCheckpoints);
    expect(result.sequenced).toBe(PENDING);
    expect(lines.some((l) => /^event: \d+\/\d+$/.test(l))).toBe(true);

    const repo = new LedgerRepository(target.handle);
    const entries = await readAll(repo);
    // Same positions, same hashes, same events; the pending ones right after, in commit order.
    expect(entries.slice(0, SEQUENCED)).toEqual(sourceEntries);
    expect(entries.slice(SEQUENCED).map((e) => e.streamId)).toEqual(pendingIds.map((id) => `rollout-${id}`));
    // The embedded transaction ids are not carried over: sequenced events have 0, the pending
    // ones 1..n by their source transaction (one rollout, one transaction, here).
    const txIds = await sql<{ tx: string; n: number }>`
      select tx_id::text as tx, count(*)::int as n from event group by tx_id order by tx_id`.execute(
      target.handle.db,
    );
    expect(txIds.rows).toEqual([
      { tx: '0', n: SEQUENCED },
      ...pendingIds.map((_, i) => ({ tx: String(i + 1), n: 1 })),
    ]);
    // No stored tx_id is at or past the target's counter: the service's start-up check passes.
    expect(await repo.transactionIdHorizon()).toSatisfy(
      (h: { maxStored: bigint; next: bigint }) => h.maxStored < h.next,
    );

    // The service on the target: a key of its own (the embedded one stays listed), the old
    // checkpoints verify with the old key, the read models rebuild, new rollouts come after.
    const t = await startTestApp({ db: target });
    try {
      const keys = (await request(t.server).get('/api/v1/ledger/public-keys').set(AUTH).expect(200)).body
        .keys as { keyId: string }[];
      expect(keys.map((k) => k.keyId)).toContain(sourceKeyId);
      expect(keys.length).toBe(2);
      const checkpoints = (
        await request(t.server).get('/api/v1/ledger/checkpoints?limit=1000').set(AUTH).expect(200)
      ).body;
      const list = checkpoints.checkpoints as { keyId: string }[];
      expect(list.filter((c) => c.keyId === sourceKeyId)).toHaveLength(sourceCheckpoints);

      const app = t.app;
      const id = await record(app, 'after transfer');
      await settleProjections(t);
      const after = await readAll(repo);
      const mine = after.filter((e) => e.streamId === `rollout-${id}`).map((e) => e.position);
      expect(mine).toEqual([SEQUENCED + PENDING + 1]);
      const verify = (await request(t.server).get('/api/v1/ledger/verify').set(AUTH).expect(200)).body;
      expect(verify).toMatchObject({ ok: true, verifiedThrough: SEQUENCED + PENDING + 1 });
      expect(verify.checkpointsVerified).toBeGreaterThanOrEqual(sourceCheckpoints);
      const listed = (
        await request(t.server).get('/api/v1/rollouts?environment=transfer&limit=100').set(AUTH).expect(200)
      ).body.items as { id: string }[];
      expect(new Set(listed.map((r) => r.id))).toEqual(new Set([...sourceIds, ...pendingIds, id]));
    } finally {
      await t.app.close();
    }

    // A second transfer into the same, now non-empty, database is refused; nothing is written.
    const again = transferEmbeddedToPostgres({ fromDataDir: dataDir, to: target.url! });
    await expect(again).rejects.toThrow(TransferRefused);
    await expect(again).rejects.toThrow(/not empty \(stream: \d+ rows, event: \d+ rows/);
    // (closing the app closed the test database's first handle)
    expect((await readAll(new LedgerRepository(await target.reopen(2)))).length).toBe(
      SEQUENCED + PENDING + 1,
    );
  });

  it('refuses a directory without an embedded database, writing nothing', async () => {
    const target = await createTestDatabase();
    targets.push(target);
    const empty = await mkdtemp(path.join(tmpdir(), 'upgrade-ledger-transfer-empty-'));
    try {
      await expect(transferEmbeddedToPostgres({ fromDataDir: empty, to: target.url! })).rejects.toThrow(
        /holds no embedded database/,
      );
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
    const [row] = (await sql<{ n: number }>`select count(*)::int as n from event`.execute(target.handle.db))
      .rows;
    expect(row?.n).toBe(0);
  });

  it('reports a source whose chain is broken: the target does not verify, and the result says so', async () => {
    // Tamper with one stored event in the embedded database, as only its owner could.
    const db = await openDatabase({ database: { kind: 'pglite', dataDir } });
    try {
      await sql`alter table event disable trigger event_no_update_delete`.execute(db.db);
      await sql`update event set data = jsonb_set(data, '{title}', '"forged"')
                 where id = (select event_row_id from ledger where position = 4)`.execute(db.db);
      await sql`alter table event enable trigger event_no_update_delete`.execute(db.db);
    } finally {
      await db.close();
    }
    const target = await createTestDatabase();
    targets.push(target);
    const result = await transferEmbeddedToPostgres({ fromDataDir: dataDir, to: target.url! });
    expect(result.ok).toBe(false);
    expect(result.verify).toMatchObject({ ok: false, brokenAt: 4 });
    expect(await verifyStoredLedger(new LedgerRepository(target.handle))).toMatchObject({ ok: false });
  });
});
