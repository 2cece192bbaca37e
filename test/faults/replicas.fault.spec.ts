import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { isLeader, type Load, loadErrors, startLoad } from '../../bench/soak.js';
import { type SamplePlatform, startSamplePlatform } from '../fixtures/sample-platform.js';
import { onPostgres } from '../support/database.js';
import { eventually } from '../support/wait.js';
import {
  createPostgresDatabase,
  DEADLINE_MS,
  kill,
  LEDGER_TOTALS_SQL,
  type LedgerTotals,
  ledgerShape,
  query,
  readLedger,
  type Service,
  startService,
  stop,
  TOKEN,
  verifyOffline,
  verifyOnline,
} from './support.js';

/**
 * Replicas: three instances on one Postgres, the same signing key, the same snapshot targets on a
 * schedule firing every second, under a mixed load spread over all three (rollouts and their
 * steps, reads, report downloads). The sequencer leader (`ledger_sequencer_leader` 1) is killed
 * with SIGKILL mid-load while the load carries on against the other two. Another instance takes
 * over; afterwards every acknowledged rollout is in the ledger exactly once, positions run 1..head
 * with no event sequenced twice, the chain verifies online and offline, each (target, tick) has
 * exactly one snapshot (SnapshotTaken or SnapshotFailed), the killed instance's open claim is
 * recorded as an abandoned SnapshotFailed at most, and the killed instance, started again, joins
 * as a follower. Deadlines only bound a hang: the takeover time is printed, never asserted.
 */
const CLIENTS = 6;
/** Load before the kill (at least), and after the takeover (at least). */
const BEFORE_KILL_MS = 5_000;
const AFTER_TAKEOVER_MS = 5_000;
const MIN_ACKED_BEFORE = 30;
const TARGETS = ['alpha', 'beta'] as const;
/** The platform answers this late, so that a tick's claim stays open for most of its second. */
const SURFACE_DELAY_MS = 500;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Instance {
  name: string;
  svc: Service;
  base: string;
}

const running = (i: Instance) => i.svc.proc.exitCode === null && i.svc.proc.signalCode === null;

describe.runIf(onPostgres)('replicas (postgres): three instances, the sequencer leader is SIGKILLed', () => {
  let dir: string;
  let platform: SamplePlatform;
  let slow: Server | undefined;
  let env: (name: string) => Record<string, string>;
  let dropDatabase: (() => Promise<void>) | undefined;
  let databaseUrl: string;
  const instances: Instance[] = [];
  const extra: Service[] = [];
  let load: Load | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'upgrade-ledger-fault-replicas-'));
    const keyFile = path.join(dir, 'signing-key.pem');
    const { privateKey } = generateKeyPairSync('ed25519');
    await writeFile(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    platform = await startSamplePlatform({ environment: 'replicas', versions: { gateway: '1.4.2' } });
    // In front of it, the same surfaces SURFACE_DELAY_MS later (under SNAPSHOT_TIMEOUT_MS).
    slow = createServer((req, res) => {
      setTimeout(() => {
        fetch(`${platform.url}${req.url ?? '/'}`).then(
          async (r) => {
            const body = await r.text();
            res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' });
            res.end(body);
          },
          () => {
            res.writeHead(502).end();
          },
        );
      }, SURFACE_DELAY_MS);
    });
    await new Promise<void>((resolve) => slow!.listen(0, '127.0.0.1', resolve));
    const slowUrl = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
    const db = await createPostgresDatabase(process.env.DATABASE_URL!, 'replicas');
    dropDatabase = db.drop;
    databaseUrl = db.url;
    env = (name: string) => ({
      DATABASE_URL: db.url,
      DATA_DIR: path.join(dir, name),
      SIGNING_KEY_FILE: keyFile,
      // Three instances and the tests' own clients share the server: small pools.
      DB_POOL_MAX: '6',
      RATE_LIMIT_MAX: '1000000',
      SEQUENCER_POLL_MS: '100',
      CHECKPOINT_EVERY: '100',
      SNAPSHOT_TARGETS: TARGETS.map((t) => `${t}=${slowUrl}`).join(','),
      SNAPSHOT_CRON: '* * * * * *',
      // A tick's worst case is 1 s, so an abandoned claim is reaped 32 s after it was made.
      SNAPSHOT_TIMEOUT_MS: '1000',
      SNAPSHOT_RETRIES: '0',
    });
  });

  afterAll(async () => {
    await load?.stop();
    await Promise.all([
      ...instances.map((i) => kill(i.svc, 'SIGKILL')),
      ...extra.map((s) => kill(s, 'SIGKILL')),
    ]);
    slow?.closeAllConnections();
    await new Promise((resolve) => (slow ? slow.close(resolve) : resolve(undefined)));
    await platform?.close();
    await dropDatabase?.();
    await rm(dir, { recursive: true, force: true });
  });

  it('takes over without a gap, a duplicate or a double snapshot, and the killed one rejoins as a follower', async () => {
    onTestFailed(() => {
      for (const i of instances) {
        console.error(`instance ${i.name} (last 3000 characters):\n${i.svc.output().slice(-3000)}`);
      }
    });

    // 1. Three instances (one after the other: a start is slow on a loaded two-core machine).
    for (const name of ['r1', 'r2', 'r3']) instances.push({ name, ...(await startService(env(name))) });
    const leaders = async (among: readonly Instance[]) => {
      const flags = await Promise.all(among.map((i) => isLeader(i.base, TOKEN)));
      return among.filter((_, k) => flags[k]);
    };
    const leader = await eventually(
      'exactly one instance to lead the sequencer',
      async () => {
        const l = await leaders(instances);
        return l.length === 1 ? l[0] : undefined;
      },
      { deadlineMs: DEADLINE_MS, intervalMs: 100 },
    );
    const followers = instances.filter((i) => i !== leader);

    // 2. Mixed load over the three instances (the dead one leaves the rotation when killed).
    const alive = () => instances.filter(running).map((i) => i.base);
    load = startLoad({ bases: alive, token: TOKEN, workers: CLIENTS, rate: 0, environment: 'replicas' });
    const loadStarted = Date.now();
    await eventually(
      `${MIN_ACKED_BEFORE} acknowledged rollouts and ${BEFORE_KILL_MS} ms of load`,
      async () =>
        load!.stats.acked.length >= MIN_ACKED_BEFORE && Date.now() - loadStarted >= BEFORE_KILL_MS
          ? true
          : undefined,
      { deadlineMs: DEADLINE_MS, intervalMs: 50 },
    );

    // 3. SIGKILL the leader mid-load, at a moment it holds a snapshot claim if it wins one within
    //    a few seconds; the load carries on against the other two.
    const killedPid = leader.svc.proc.pid!;
    const killedClaims = `claimed_by like '%:${killedPid}:%'`;
    const openClaimsOfLeader = async () =>
      (
        await query<{ n: number }>(
          databaseUrl,
          `select count(*)::int as n from snapshot_tick where completed_at is null and ${killedClaims}`,
        )
      )[0]?.n ?? 0;
    const midTickUntil = Date.now() + 15_000;
    while (Date.now() < midTickUntil && (await openClaimsOfLeader()) === 0) await sleep(20);
    const inFlightAtKill = load.inFlight();
    const ackedAtKill = load.stats.acked.length;
    const killedAt = performance.now();
    expect((await kill(leader.svc, 'SIGKILL'))?.signal).toBe('SIGKILL');
    // Dead, it completes nothing more: what is open now is what it held when killed.
    const openAtKill = await openClaimsOfLeader();
    const successor = await eventually(
      'another instance to take the sequencer over',
      async () => {
        const l = await leaders(followers).catch(() => []);
        return l.length === 1 ? l[0] : undefined;
      },
      { deadlineMs: DEADLINE_MS, intervalMs: 25 },
    );
    const takeoverMs = performance.now() - killedAt;
    const ackedAtTakeover = load.stats.acked.length;
    const takenOver = Date.now();
    await eventually(
      `${AFTER_TAKEOVER_MS} ms of load after the takeover, with new acknowledgements`,
      async () =>
        Date.now() - takenOver >= AFTER_TAKEOVER_MS && load!.stats.acked.length > ackedAtTakeover + 10
          ? true
          : undefined,
      { deadlineMs: DEADLINE_MS, intervalMs: 50 },
    );
    const stats = await load.stop();
    load = undefined;

    // Only the killed instance's cut requests may have failed: no 5xx, and nothing else went
    // wrong but answers that never came (`network`) and reports of a rollout the paused
    // sequencer had not given a position yet (404).
    const { serverErrors } = loadErrors(stats);
    expect(serverErrors).toBe(0);
    const success = { write: ['200', '201'], read: ['200'], report: ['200', '404'] } as const;
    const wrong = Object.entries(stats.statuses).flatMap(([kind, by]) =>
      Object.entries(by)
        .filter(
          ([status]) =>
            status !== 'network' &&
            !(success[kind as keyof typeof success] as readonly string[]).includes(status),
        )
        .map(([status, n]) => `${kind} ${status}×${n}`),
    );
    expect(wrong, JSON.stringify(stats.unexpected.filter((u) => u.status !== 'network'))).toEqual([]);
    const cut = Object.values(stats.statuses).reduce((s, by) => s + (by.network ?? 0), 0);
    const reportsNotYetSequenced = stats.statuses.report['404'] ?? 0;
    expect(new Set(stats.acked).size).toBe(stats.acked.length);

    // 4. The killed instance's open claim (if it held one) is reaped by a survivor, as abandoned.
    await eventually(
      "the killed instance's open snapshot claims to be reaped",
      async () => ((await openClaimsOfLeader()) === 0 ? true : undefined),
      { deadlineMs: DEADLINE_MS, intervalMs: 500 },
    );

    // 5. Started again, the killed instance joins as a follower: the successor keeps leading.
    const back = await startService(env(leader.name));
    const rejoined: Instance = { name: `${leader.name}'`, ...back };
    instances.push(rejoined);
    const live = instances.filter(running);
    for (let k = 0; k < 10; k++) {
      // Several of its sequencer loops (100 ms each): it never takes the lock from a live leader.
      await sleep(200);
      expect((await leaders(live)).map((i) => i.name)).toEqual([successor.name]);
    }
    expect(await isLeader(rejoined.base, TOKEN)).toBe(false);

    // 6. Every acknowledged rollout gets its position; the chain verifies online.
    const base = successor.base;
    await eventually(
      'every acknowledged rollout to be sequenced',
      async () => {
        const streams = new Set((await readLedger(base)).map((e) => e.streamId));
        return stats.acked.every((id) => streams.has(`rollout-${id}`)) ? true : undefined;
      },
      { deadlineMs: DEADLINE_MS, intervalMs: 250 },
    );
    const online = await verifyOnline(rejoined.base);
    expect(online).toMatchObject({ ok: true });

    // 7. Stop all three (graceful), then let one instance without snapshot targets sequence
    //    whatever the shutdown left, and verify offline from its export.
    await Promise.all(instances.filter(running).map((i) => stop(i.svc)));
    const { SNAPSHOT_TARGETS: _, SNAPSHOT_CRON: __, ...quiet } = env('final');
    const final = await startService(quiet);
    extra.push(final.svc);
    await eventually(
      'every stored event to be sequenced',
      async () => {
        const [t] = await query<LedgerTotals>(databaseUrl, LEDGER_TOTALS_SQL);
        return t?.unsequenced === 0 ? true : undefined;
      },
      { deadlineMs: DEADLINE_MS, intervalMs: 250 },
    );
    const offline = await verifyOffline(final.base, dir);
    expect(offline.stdout).toMatch(/^OK: verified positions 1\.\./);
    expect(offline.code).toBe(0);
    const entries = await readLedger(final.base);
    await stop(final.svc);

    // 8. Each acknowledged rollout exactly once; positions 1..n; no event twice — over the API
    //    and in the database itself.
    const perStream = new Map<string, number>();
    for (const e of entries.filter((x) => x.type === 'RolloutPlanned'))
      perStream.set(e.streamId, (perStream.get(e.streamId) ?? 0) + 1);
    expect(stats.acked.filter((id) => perStream.get(`rollout-${id}`) !== 1)).toEqual([]);
    expect([...perStream.values()].filter((n) => n !== 1)).toEqual([]);
    expect(ledgerShape(entries)).toEqual({ gaps: [], duplicates: [] });
    const [totals] = await query<LedgerTotals>(databaseUrl, LEDGER_TOTALS_SQL);
    expect(totals).toMatchObject({
      unsequenced: 0,
      entries: totals!.events,
      distinct_events: totals!.events,
      max_position: totals!.events,
      head: totals!.events,
    });

    // 9. Exactly one snapshot per (target, tick), counted in the event table: taken or failed.
    const perTick = await query<{ stream_id: string; tick_at: string; n: number; types: string }>(
      databaseUrl,
      `select stream_id, data->>'tickAt' as tick_at, count(*)::int as n, string_agg(type, ',') as types
       from event where type in ('SnapshotTaken', 'SnapshotFailed')
       group by 1, 2 order by 1, 2`,
    );
    expect(perTick.filter((r) => r.n !== 1)).toEqual([]);
    const perTarget = Object.fromEntries(
      TARGETS.map((t) => [t, perTick.filter((r) => r.stream_id === `snapshots-${t}`).length]),
    );
    for (const t of TARGETS) expect(perTarget[t]).toBeGreaterThan(0);
    // Every claim made is one snapshot event, and every snapshot event had its claim.
    const claims = await query<{
      target: string;
      tick_at: string;
      outcome: string | null;
      claimed_by: string;
    }>(
      databaseUrl,
      `select target, to_char(tick_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as tick_at,
              outcome, claimed_by from snapshot_tick`,
    );
    const claimed = new Set(claims.map((c) => `snapshots-${c.target} ${c.tick_at}`));
    const recorded = new Set(perTick.map((r) => `${r.stream_id} ${r.tick_at}`));
    expect([...recorded].filter((k) => !claimed.has(k))).toEqual([]);
    expect(claims.filter((c) => c.outcome === null)).toEqual([]);
    expect([...claimed].filter((k) => !recorded.has(k))).toEqual([]);

    // 10. The killed instance's claims: what it recorded itself, or an abandoned SnapshotFailed
    //     recorded by a survivor — never both (the per-tick count above), never anything else.
    const killed = claims.filter((c) => c.claimed_by.includes(`:${killedPid}:`));
    const abandoned = killed.filter((c) => c.outcome === 'abandoned');
    // `recorded`: it had recorded the tick and died before closing its claim; its event stays.
    const recordedLate = killed.filter((c) => c.outcome === 'recorded');
    expect(
      killed.filter((c) => !['taken', 'failed', 'abandoned', 'recorded'].includes(c.outcome ?? '')),
    ).toEqual([]);
    // Whatever it held open when killed was closed by a survivor, one way or the other.
    expect(abandoned.length + recordedLate.length).toBeGreaterThanOrEqual(openAtKill);
    // Nobody but the killed instance left a claim to reap.
    expect(
      claims.filter((c) => ['abandoned', 'recorded'].includes(c.outcome ?? '') && !killed.includes(c)),
    ).toEqual([]);
    const abandonedEvents = await query<{ target: string; tick_at: string; type: string; taken_by: string }>(
      databaseUrl,
      `select data->>'target' as target, data->>'tickAt' as tick_at, type, data->>'takenBy' as taken_by
       from event where type in ('SnapshotTaken', 'SnapshotFailed') and data->>'reason' like 'abandoned:%'`,
    );
    // Only the killed instance ever abandoned a tick, each as a SnapshotFailed under its own claim.
    expect(
      abandonedEvents.filter((e) => e.type !== 'SnapshotFailed' || !e.taken_by.includes(`:${killedPid}:`)),
    ).toEqual([]);
    expect(abandonedEvents.map((e) => `${e.target} ${e.tick_at}`).sort()).toEqual(
      abandoned.map((c) => `${c.target} ${c.tick_at}`).sort(),
    );

    console.log(
      `[fault] replicas postgres: ${stats.sent} requests over 3 instances, ${stats.acked.length} acked ` +
        `(${ackedAtKill} before SIGKILL of the leader ${leader.name}, ${inFlightAtKill} requests in flight then, ${cut} cut), ` +
        `takeover by ${successor.name} after ${Math.round(takeoverMs)} ms, ledger head ${totals!.head}, ` +
        `snapshots per target ${TARGETS.map((t) => `${t} ${perTarget[t]}`).join(', ')} (one per tick), ` +
        `${killed.length} claims of the killed instance (${openAtKill} open at SIGKILL: ${abandoned.length} ` +
        `recorded as abandoned, ${recordedLate.length} already recorded by it), ` +
        `${reportsNotYetSequenced} reports of a rollout not yet sequenced (404), ${online.checkpointsVerified ?? 0} checkpoints verified, ` +
        `${leader.name} rejoined as a follower`,
    );
  });
});
