import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { onPostgres } from '../support/database.js';
import { adminUrl } from '../support/postgres.js';
import { eventually } from '../support/wait.js';
import { binDir, type ScratchCluster, startScratchCluster } from './scratch-cluster.js';
import {
  createPostgresDatabase,
  createRollouts,
  DEADLINE_MS,
  kill,
  LEDGER_TOTALS_SQL,
  type LedgerEntry,
  type LedgerTotals,
  ledgerShape,
  query,
  readLedger,
  runCli,
  type Service,
  spawnService,
  startService,
  stop,
  verifyOffline,
  verifyOnline,
} from './support.js';

/**
 * Logical restore (Postgres only): the service writes on database A; A is dumped with pg_dump and
 * restored into a new cluster, whose transaction counter is behind the ids stored in A. The
 * service must refuse that database, naming `rebase-after-restore`; once the command has run it
 * starts, the restored ledger verifies unchanged, and new rollouts are sequenced after it.
 *
 * Restoring into another database of the *same* server is not that fault: the server's counter is
 * already past every stored id. That case is checked too: it must just work, with nothing to fix.
 */
const exec = promisify(execFile);
const BEFORE = 24;
/** Recorded with the sequencer off: in the dump, but without a ledger position yet. */
const PENDING = 4;
const AFTER = 6;

/** The whole ledger of `base`, once every one of these rollouts has a position in it. */
async function sequencedRollouts(base: string, ids: readonly string[]): Promise<LedgerEntry[]> {
  return eventually(
    `${ids.length} rollouts to be sequenced`,
    async () => {
      const entries = await readLedger(base);
      const streams = new Set(entries.filter((e) => e.type === 'RolloutPlanned').map((e) => e.streamId));
      return ids.every((id) => streams.has(`rollout-${id}`)) ? entries : undefined;
    },
    { deadlineMs: DEADLINE_MS, intervalMs: 200 },
  );
}

interface Xid {
  next: string;
}
const NEXT_XID = 'select pg_snapshot_xmax(pg_current_snapshot())::text as next';

describe.runIf(onPostgres)('logical restore (postgres): pg_dump, restore, refuse, rebase, carry on', () => {
  const baseUrl = process.env.DATABASE_URL ?? '';
  let work: string;
  let cluster: ScratchCluster | undefined;
  const drops: (() => Promise<void>)[] = [];
  let svc: Service | undefined;
  let dump: string;
  let original: LedgerEntry[];
  let pendingIds: string[];
  const env = (url: string) => ({
    DATABASE_URL: url,
    DATA_DIR: work,
    RATE_LIMIT_MAX: '1000000',
    SEQUENCER_POLL_MS: '50',
    CHECKPOINT_EVERY: '10',
  });

  let major: number;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'upgrade-ledger-fault-restore-'));
    const [{ version } = { version: 0 }] = await query<{ version: number }>(
      adminUrl(baseUrl),
      "select current_setting('server_version_num')::int as version",
    );
    major = Math.floor(version / 10_000);
    cluster = await startScratchCluster(major);

    // A new cluster starts near transaction id 0; the server under test must be ahead of it,
    // as any server that has lived a while is. A fresh CI server may not be: move it on.
    const [scratch] = await query<Xid>(cluster.url('postgres'), NEXT_XID);
    const needed = BigInt(scratch!.next) + 1_000n;
    const burner = new pg.Client({ connectionString: adminUrl(baseUrl) });
    await burner.connect();
    try {
      for (;;) {
        const { rows } = await burner.query<{ xid: string }>('select pg_current_xact_id()::text as xid');
        if (BigInt(rows[0]!.xid) >= needed) break;
      }
    } finally {
      await burner.end();
    }

    // Database A: the service records rollouts, every one sequenced, then stops; A is dumped.
    const a = await createPostgresDatabase(baseUrl, 'restore_a');
    drops.push(a.drop);
    const first = await startService(env(a.url));
    svc = first.svc;
    try {
      const ids = await createRollouts(first.base, BEFORE, 'before dump');
      original = await sequencedRollouts(first.base, ids);
      expect(await verifyOnline(first.base)).toMatchObject({ ok: true, verifiedThrough: original.length });
    } catch (err) {
      console.error(`service output:\n${first.svc.output().slice(-6000)}`);
      throw err;
    } finally {
      await stop(first.svc);
    }
    // Then rollouts the sequencer has not reached when the dump is taken.
    const paused = await startService({ ...env(a.url), SEQUENCER_ENABLED: 'false' });
    svc = paused.svc;
    try {
      pendingIds = await createRollouts(paused.base, PENDING, 'pending at dump');
    } finally {
      await stop(paused.svc);
    }
    const [a0] = await query<LedgerTotals>(a.url, LEDGER_TOTALS_SQL);
    expect(a0).toMatchObject({ unsequenced: PENDING, head: original.length });

    dump = path.join(cluster.root, 'a.dump');
    await exec(path.join(await binDir(major), 'pg_dump'), ['--format=custom', '--file', dump, a.url]);
  });

  afterAll(async () => {
    await kill(svc, 'SIGKILL');
    for (const drop of drops) await drop().catch(() => {});
    await cluster?.stop();
    await rm(work, { recursive: true, force: true });
  });

  /** Starts the service on `url`, records AFTER rollouts, checks they follow the restored ledger. */
  async function carriesOn(url: string): Promise<{ head: number; checkpoints: number }> {
    const { svc: s, base } = await startService(env(url));
    svc = s;
    onTestFailed(() => console.error(`service output:\n${s.output().slice(-6000)}`));
    // The restored ledger is served unchanged: same events at the same positions, same hashes.
    const restored = await readLedger(base);
    expect(restored.slice(0, original.length)).toEqual(original);
    expect(await verifyOnline(base)).toMatchObject({ ok: true });

    const ids = await createRollouts(base, AFTER, 'after restore');
    const entries = await sequencedRollouts(base, [...pendingIds, ...ids]);
    expect(ledgerShape(entries)).toEqual({ gaps: [], duplicates: [] });
    expect(entries.slice(0, original.length)).toEqual(original);
    // The restored events come first, in the order they were committed; the new ones after them.
    const positionsOf = (of: string[]) =>
      entries.filter((e) => of.some((id) => e.streamId === `rollout-${id}`)).map((e) => e.position);
    expect(positionsOf(pendingIds)).toEqual(
      Array.from({ length: PENDING }, (_, i) => original.length + 1 + i),
    );
    const positions = positionsOf(ids);
    expect(positions).toHaveLength(AFTER);
    expect(Math.min(...positions)).toBeGreaterThan(original.length + PENDING);

    const online = await verifyOnline(base);
    expect(online).toMatchObject({ ok: true });
    expect(online.verifiedThrough).toBeGreaterThanOrEqual(original.length + PENDING + AFTER);
    const offline = await verifyOffline(base, work);
    expect(offline.stdout).toMatch(/^OK: verified positions 1\.\./);
    expect(offline.code).toBe(0);
    await stop(s);
    return { head: entries.length, checkpoints: online.checkpointsVerified ?? 0 };
  }

  it('into a new cluster: refuses to start naming rebase-after-restore; after it, carries on', async () => {
    const c = cluster!;
    await c.bin('createdb', ['restored']);
    await c.bin('pg_restore', ['--no-owner', '--exit-on-error', '-d', 'restored', dump]);
    const url = c.url('restored');
    const [{ maxStored } = { maxStored: '0' }] = await query<{ maxStored: string }>(
      url,
      'select max(tx_id::text::numeric)::text as "maxStored" from event',
    );
    const [scratch] = await query<Xid>(url, NEXT_XID);
    // The precondition of the fault: stored ids at or past the new cluster's counter.
    expect(BigInt(maxStored)).toBeGreaterThanOrEqual(BigInt(scratch!.next));

    // Refused, with the documented fix, and nothing written.
    const refused = spawnService(env(url));
    svc = refused;
    const exit = await refused.exited;
    expect(exit).toEqual({ code: 3, signal: null });
    expect(refused.stderr()).toContain('refusing to start');
    expect(refused.stderr()).toContain('npx upgrade-ledger rebase-after-restore');
    expect(refused.stderr()).toContain(`holds transaction ids up to ${maxStored}`);
    const [counts] = await query<{ entries: number }>(url, 'select count(*)::int as entries from ledger');
    expect(counts?.entries).toBe(original.length);

    // The fix, as an operator runs it.
    const fix = await runCli(['rebase-after-restore'], { DATABASE_URL: url, DATA_DIR: work });
    expect(fix.stderr).toBe('');
    expect(fix.stdout).toMatch(
      new RegExp(
        `^sequenced ${PENDING} restored events; rebased ${original.length + PENDING} transaction ids\n$`,
      ),
    );
    expect(fix.code).toBe(0);
    // Run twice, it finds nothing to do.
    const again = await runCli(['rebase-after-restore'], { DATABASE_URL: url, DATA_DIR: work });
    expect(again).toMatchObject({ code: 0, stdout: 'transaction ids are consistent: nothing to do\n' });

    const { head, checkpoints } = await carriesOn(url);
    console.log(
      `[fault] logical-restore new cluster: ${original.length} restored entries and ${PENDING} pending ` +
        `(tx ids up to ${maxStored}, ` +
        `new cluster's next ${scratch!.next}), refused with exit 3, rebased; ledger head ${head}, ` +
        `${checkpoints} checkpoints verified`,
    );
  });

  it('into another database of the same server: nothing to fix, carries on', async () => {
    const b = await createPostgresDatabase(baseUrl, 'restore_b');
    drops.push(b.drop);
    await exec(path.join(await binDir(major), 'pg_restore'), [
      '--no-owner',
      '--exit-on-error',
      '-d',
      b.url,
      dump,
    ]);
    const fix = await runCli(['rebase-after-restore'], { DATABASE_URL: b.url, DATA_DIR: work });
    expect(fix).toMatchObject({ code: 0, stdout: 'transaction ids are consistent: nothing to do\n' });
    const { head, checkpoints } = await carriesOn(b.url);
    console.log(
      `[fault] logical-restore same server: ${original.length} restored entries and ${PENDING} pending, ` +
        'started without a fix; ' +
        `ledger head ${head}, ${checkpoints} checkpoints verified`,
    );
  });
});
