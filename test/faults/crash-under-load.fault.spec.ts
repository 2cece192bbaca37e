import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { onPostgres } from '../support/database.js';
import { eventually } from '../support/wait.js';
import {
  createPostgresDatabase,
  createRollout,
  DEADLINE_MS,
  head,
  kill,
  LEDGER_TOTALS_SQL,
  type LedgerTotals,
  ledgerShape,
  query,
  readLedger,
  type Service,
  startService,
  stop,
  verifyOffline,
  verifyOnline,
} from './support.js';

/**
 * Crash under load: several clients record rollouts as fast as the service answers, the service
 * is killed with SIGKILL mid-load (no shutdown hook runs, in-flight requests are cut), then
 * started again on the same database. Every rollout that was answered 201 must be in the ledger
 * exactly once, the positions must run 1..head without a gap, every stored event must be
 * sequenced, and the chain must verify online and offline. Requests cut by the kill may or may
 * not have been recorded; either is fine, as long as it is recorded once.
 *
 * On Postgres (DATABASE_URL) the service gets a database of its own on that server; on the
 * embedded database a DATA_DIR of its own (a process kill, not a power loss: PGlite never fsyncs).
 */
const BACKEND = onPostgres ? 'postgres' : 'pglite';
const CLIENTS = 8;
/** Load runs at least this long and until this many rollouts were acknowledged, then the kill. */
const LOAD_MS = 4_000;
const MIN_ACKED = 150;

interface Load {
  acked: string[];
  /** How many were acknowledged when SIGKILL was sent (answers already on the wire come after). */
  ackedAtKill: number;
  /** Statuses other than 201 answered before the kill (none are expected). */
  refused: Map<number, number>;
  attempted: number;
  inFlightAtKill: number;
}

/**
 * Drives `CLIENTS` concurrent writers for at least LOAD_MS and MIN_ACKED acknowledgements, then
 * calls `killNow` while their requests are in flight; returns what they saw.
 */
async function driveLoad(base: string, killNow: () => Promise<void>): Promise<Load> {
  const load: Load = { acked: [], ackedAtKill: 0, refused: new Map(), attempted: 0, inFlightAtKill: 0 };
  let stopping = false;
  let inFlight = 0;
  const writer = async (w: number) => {
    for (let i = 0; !stopping; i++) {
      load.attempted++;
      inFlight++;
      try {
        const r = await createRollout(base, `crash ${w}-${i}`);
        if (r.id) load.acked.push(r.id);
        else if (!stopping) load.refused.set(r.status, (load.refused.get(r.status) ?? 0) + 1);
      } catch {
        // Cut by the kill: unacknowledged, may or may not be recorded.
      } finally {
        inFlight--;
      }
    }
  };
  const writers = Array.from({ length: CLIENTS }, (_, w) => writer(w));
  const started = Date.now();
  await eventually(
    `${MIN_ACKED} acknowledged rollouts and ${LOAD_MS} ms of load`,
    async () => (load.acked.length >= MIN_ACKED && Date.now() - started >= LOAD_MS ? true : undefined),
    { deadlineMs: DEADLINE_MS, intervalMs: 50 },
  );
  // No writer starts another request; the ones in flight are cut by the kill.
  stopping = true;
  load.inFlightAtKill = inFlight;
  load.ackedAtKill = load.acked.length;
  await killNow();
  await Promise.all(writers);
  return load;
}

describe(`crash under load (${BACKEND}): SIGKILL mid-load, restart`, () => {
  let dataDir: string;
  let env: Record<string, string>;
  let dropDatabase: (() => Promise<void>) | undefined;
  let databaseUrl: string | undefined;
  let svc: Service | undefined;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'upgrade-ledger-fault-crash-'));
    // The signing key lives in DATA_DIR on both backends, so both runs sign with the same key.
    env = { DATA_DIR: dataDir, RATE_LIMIT_MAX: '1000000', SEQUENCER_POLL_MS: '50', CHECKPOINT_EVERY: '100' };
    if (onPostgres) {
      const db = await createPostgresDatabase(process.env.DATABASE_URL!, 'crash');
      dropDatabase = db.drop;
      databaseUrl = db.url;
      env.DATABASE_URL = db.url;
    }
  });

  afterAll(async () => {
    await kill(svc, 'SIGKILL');
    await dropDatabase?.();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('keeps every acknowledged rollout exactly once, sequences every stored event, and verifies', async () => {
    onTestFailed(() => {
      console.error(`service output (last 6000 characters):\n${svc?.output().slice(-6000) ?? ''}`);
    });

    // 1. Load, then SIGKILL while requests are in flight.
    const first = await startService(env);
    svc = first.svc;
    const load = await driveLoad(first.base, async () => {
      await kill(first.svc, 'SIGKILL');
    });
    expect((await first.svc.exited).signal).toBe('SIGKILL');
    expect(load.inFlightAtKill).toBeGreaterThan(0);
    expect(Object.fromEntries(load.refused)).toEqual({});
    expect(new Set(load.acked).size).toBe(load.acked.length);

    // 2. Start again on the same database; wait until every acknowledged rollout is sequenced.
    const second = await startService(env);
    svc = second.svc;
    const base = second.base;
    await eventually(
      'every acknowledged rollout to be sequenced',
      async () => {
        const streams = new Set((await readLedger(base)).map((e) => e.streamId));
        return load.acked.every((id) => streams.has(`rollout-${id}`)) ? true : undefined;
      },
      { deadlineMs: DEADLINE_MS, intervalMs: 250 },
    );

    // 3. The chain verifies, through the API and offline from an export.
    const before = await head(base);
    const online = await verifyOnline(base);
    expect(online).toMatchObject({ ok: true });
    expect(online.verifiedThrough).toBeGreaterThanOrEqual(before.position);
    const offline = await verifyOffline(base, dataDir);
    expect(offline.stdout).toMatch(/^OK: verified positions 1\.\./);
    expect(offline.code).toBe(0);

    // 4. The export is itself recorded (ReportDownloaded), after every event stored before the
    //    restart. Sequencing follows commit order, so once it has a position the sequencer has
    //    caught up with everything the killed process committed: read the whole ledger then.
    await eventually(
      'the export to be sequenced',
      async () => ((await head(base)).position > before.position ? true : undefined),
      { deadlineMs: DEADLINE_MS, intervalMs: 100 },
    );
    const entries = await readLedger(base);

    // 5. Each acknowledged rollout exactly once; positions 1..n; no event twice.
    const perStream = new Map<string, number>();
    for (const e of entries.filter((x) => x.type === 'RolloutPlanned'))
      perStream.set(e.streamId, (perStream.get(e.streamId) ?? 0) + 1);
    expect(load.acked.filter((id) => perStream.get(`rollout-${id}`) !== 1)).toEqual([]);
    expect([...perStream.values()].filter((n) => n !== 1)).toEqual([]);
    expect(ledgerShape(entries)).toEqual({ gaps: [], duplicates: [] });

    // 6. The database agrees, read directly once the service has stopped (PGlite is one session):
    //    every stored event has exactly one position, positions 1..head, head = what the API served.
    await stop(second.svc);
    const totals = databaseUrl
      ? (await query<LedgerTotals>(databaseUrl, LEDGER_TOTALS_SQL))[0]!
      : await pgliteTotals(path.join(dataDir, 'pgdata'));
    expectConsistent(totals);
    expect(totals.head).toBe(entries.length);

    console.log(
      `[fault] crash-under-load ${BACKEND}: ${load.attempted} requests, ${load.acked.length} acked, ` +
        `${load.inFlightAtKill} in flight at SIGKILL (${load.acked.length - load.ackedAtKill} answered 201 ` +
        `anyway, ${perStream.size - load.acked.length} recorded unanswered), ` +
        `ledger head ${totals.head}, ${online.checkpointsVerified ?? 0} checkpoints verified`,
    );
  });
});

function expectConsistent(t: LedgerTotals): void {
  expect(t).toMatchObject({
    unsequenced: 0,
    entries: t.events,
    distinct_events: t.events,
    max_position: t.events,
    head: t.events,
  });
}

async function pgliteTotals(pgdata: string): Promise<LedgerTotals> {
  const db = await PGlite.create(pgdata);
  try {
    const { rows } = await db.query<LedgerTotals>(LEDGER_TOTALS_SQL);
    return rows[0]!;
  } finally {
    await db.close();
  }
}
