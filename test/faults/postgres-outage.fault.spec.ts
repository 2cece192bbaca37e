import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { onPostgres } from '../support/database.js';
import { adminUrl } from '../support/postgres.js';
import { eventually } from '../support/wait.js';
import { type ScratchCluster, startScratchCluster } from './scratch-cluster.js';
import {
  type Answer,
  createApiKey,
  DEADLINE_MS,
  getJson,
  head,
  kill,
  LEDGER_TOTALS_SQL,
  type LedgerTotals,
  ledgerShape,
  listedRolloutIds,
  postRollout,
  probe,
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
 * Postgres goes away (Postgres only): the service runs on a scratch cluster of its own (never the
 * shared server, which other suites use) while several clients record rollouts; the cluster is
 * stopped with `pg_ctl stop -m fast` for OUTAGE_MS, then started again on the same data directory
 * and port. Meanwhile every request must be answered, a 503 with Retry-After when the database is
 * missing, never another 5xx and never a hang; /health/ready must say so. After the restart the
 * same process must recover by itself: every rollout answered 201 is in the ledger exactly once,
 * positions 1..head, the chain verifies online and offline, the sequencer and the projections
 * carry on from their checkpoints.
 */
const CLIENTS = 4;
/** Load before the outage: at least this long and this many acknowledgements. */
const WARMUP_MS = 3_000;
const MIN_ACKED = 40;
const OUTAGE_MS = 5_000;
/** Load after the restart: at least this long and this many acknowledgements. */
const RECOVERY_MS = 3_000;
const MIN_ACKED_AFTER = 20;
/** A request with no answer within this is a hang (the pool must fail fast instead). */
const REQUEST_TIMEOUT_MS = 15_000;
const AFTER_RECOVERY = 5;

/** The NOTIFY channels the service's sessions listen on, as the database sees them. */
async function listenChannels(url: string): Promise<string[]> {
  const rows = await query<{ query: string }>(
    url,
    "select query from pg_stat_activity where application_name = 'upgrade-ledger' and query ilike 'listen %'",
  );
  return [...new Set(rows.map((r) => r.query.replace(/^listen\s+"?|"$/gi, '')))].sort();
}

type Phase = 'before' | 'outage' | 'after';
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const key = (a: Answer) => String(a.status);

interface Tally {
  /** Each acknowledged rollout with the phase its request started in. */
  acked: { id: string; phase: Phase }[];
  statuses: Map<string, number>;
  /** Answers that break the contract: 5xx other than 503, 503 without Retry-After, hangs, no answer. */
  bad: { phase: Phase; answer: Answer }[];
  attempted: number;
}

describe.skipIf(!onPostgres)(
  onPostgres
    ? 'postgres outage (postgres): stop the server mid-load for 5 s, start it again'
    : 'postgres outage: skipped, needs DATABASE_URL (a Postgres whose server binaries start a scratch cluster)',
  () => {
    let work: string;
    let cluster: ScratchCluster | undefined;
    let svc: Service | undefined;

    beforeAll(async () => {
      work = await mkdtemp(path.join(tmpdir(), 'upgrade-ledger-fault-outage-'));
      const [{ version } = { version: 0 }] = await query<{ version: number }>(
        adminUrl(process.env.DATABASE_URL ?? ''),
        "select current_setting('server_version_num')::int as version",
      );
      cluster = await startScratchCluster(Math.floor(version / 10_000));
      await cluster.bin('createdb', ['ledger']);
    });

    afterAll(async () => {
      await kill(svc, 'SIGKILL');
      await cluster?.stop();
      await rm(work, { recursive: true, force: true });
    });

    it('answers 503 with Retry-After meanwhile, never hangs, and recovers by itself with nothing lost', async () => {
      const c = cluster!;
      const url = c.url('ledger');
      const started = await startService({
        DATABASE_URL: url,
        DATA_DIR: work,
        RATE_LIMIT_MAX: '1000000',
        SEQUENCER_POLL_MS: '50',
        CHECKPOINT_EVERY: '20',
      });
      svc = started.svc;
      const s = started.svc;
      const base = started.base;
      let exitedMeanwhile: string | undefined;
      void s.exited.then((e) => {
        exitedMeanwhile = `exited (${e.code ?? e.signal})`;
      });
      // What the service said about its background work (the request log would drown it).
      const said: string[] = [];
      let pending = '';
      const listenTo = (chunk: string) => {
        const lines = (pending + chunk).split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) {
          const m = /"msg":"((?:[^"\\]|\\.)*)"/.exec(line);
          if (!m?.[1] || m[1] === 'request failed') continue;
          if (/"level":[456]0/.test(line) || m[1].startsWith('leading:')) said.push(m[1]);
        }
      };
      s.proc.stdout?.on('data', listenTo);
      s.proc.stderr?.on('data', listenTo);
      onTestFailed(() => {
        console.error(`service output (last 8000 characters):\n${s.output().slice(-8000)}`);
        console.error(`service warnings:\n${said.join('\n')}`);
      });
      /** A wait's verdict; fails the wait at once when the service died (nothing left to wait for). */
      const holds = (condition: boolean): true | undefined => {
        if (exitedMeanwhile) throw new Error(`the service ${exitedMeanwhile} during the outage`);
        return condition ? true : undefined;
      };

      // 1. Writers record rollouts as fast as the service answers; after a refusal they pause a
      //    little (less than Retry-After, so the outage is sampled often). Half of them use a stored
      //    key: looked up in the database once its cache entry is stale (AUTH_CACHE_TTL_MS, 5 s),
      //    so the outage reaches the authentication too.
      const tokens = [TOKEN, await createApiKey(base, 'engineer')];
      let phase: Phase = 'before';
      let stopping = false;
      const tally: Tally = { acked: [], statuses: new Map(), bad: [], attempted: 0 };
      const writer = async (w: number) => {
        for (let i = 0; !stopping; i++) {
          const at = phase;
          tally.attempted++;
          const a = await postRollout(base, `outage ${w}-${i}`, REQUEST_TIMEOUT_MS, tokens[w % 2]);
          tally.statuses.set(key(a), (tally.statuses.get(key(a)) ?? 0) + 1);
          if (a.id) tally.acked.push({ id: a.id, phase: at });
          const broken =
            typeof a.status !== 'number' ||
            (a.status >= 500 && a.status !== 503) ||
            (a.status === 503 && !a.retryAfter);
          if (broken) tally.bad.push({ phase: at, answer: a });
          if (a.status !== 201) await sleep(100);
        }
      };
      const writers = Array.from({ length: CLIENTS }, (_, w) => writer(w));
      const ackedIn = (p: Phase) => tally.acked.filter((a) => a.phase === p).length;

      // /health/ready, polled from the outage on: what it answered, in order.
      const readiness: { phase: Phase; status: Answer['status'] }[] = [];
      let polling = false;
      const poller = async () => {
        while (polling) {
          const at = phase;
          const a = await probe(base, '/health/ready', REQUEST_TIMEOUT_MS);
          readiness.push({ phase: at, status: a.status });
          await sleep(200);
        }
      };

      const t0 = Date.now();
      await eventually(
        `${MIN_ACKED} acknowledged rollouts and ${WARMUP_MS} ms of load`,
        async () => holds(ackedIn('before') >= MIN_ACKED && Date.now() - t0 >= WARMUP_MS),
        { deadlineMs: DEADLINE_MS, intervalMs: 50 },
      );
      const headBefore = (await head(base)).position;
      // The sequencer's wake-ups and the key revocations, at least.
      const listenedBefore = await listenChannels(url);
      expect(listenedBefore.length).toBeGreaterThanOrEqual(2);

      // 2. The outage: the cluster stops (sessions are ended), the load goes on for OUTAGE_MS.
      phase = 'outage';
      polling = true;
      const polled = poller();
      await c.stopServer();
      await sleep(OUTAGE_MS);
      const during = readiness.filter((r) => r.phase === 'outage');

      // 3. The cluster starts again on the same data directory and port; the service is left alone.
      await c.startServer();
      phase = 'after';
      const t1 = Date.now();
      await eventually(
        `${MIN_ACKED_AFTER} rollouts acknowledged after the restart and ${RECOVERY_MS} ms of load`,
        async () => holds(ackedIn('after') >= MIN_ACKED_AFTER && Date.now() - t1 >= RECOVERY_MS),
        { deadlineMs: DEADLINE_MS, intervalMs: 50 },
      );
      await eventually(
        '/health/ready to answer 200 again',
        async () => holds(readiness.some((r) => r.phase === 'after' && r.status === 200)),
        { deadlineMs: DEADLINE_MS, intervalMs: 100 },
      );
      stopping = true;
      polling = false;
      await Promise.all([...writers, polled]);

      // 4. What the clients saw: 201 or 503 with Retry-After, nothing else, no hang, no cut.
      const statuses = Object.fromEntries(tally.statuses);
      expect(tally.bad.slice(0, 10)).toEqual([]);
      expect(Object.keys(statuses).filter((k) => k !== '201' && k !== '503')).toEqual([]);
      expect(statuses['503'] ?? 0).toBeGreaterThan(0);
      expect(during.length).toBeGreaterThan(0);
      expect(during.filter((r) => typeof r.status !== 'number')).toEqual([]);
      expect(during.some((r) => r.status !== 200)).toBe(true);
      expect(exitedMeanwhile).toBeUndefined();
      const ids = tally.acked.map((a) => a.id);
      expect(new Set(ids).size).toBe(ids.length);

      // 5. Recovered without a restart: new rollouts are recorded and sequenced after the others.
      const fresh: string[] = [];
      for (let i = 0; i < AFTER_RECOVERY; i++) {
        const a = await postRollout(base, `after recovery ${i}`, REQUEST_TIMEOUT_MS);
        expect(a.status).toBe(201);
        fresh.push(a.id!);
      }
      const everyId = [...ids, ...fresh];
      const entries = await eventually(
        `${everyId.length} acknowledged rollouts to be sequenced`,
        async () => {
          const all = await readLedger(base);
          const streams = new Set(all.filter((e) => e.type === 'RolloutPlanned').map((e) => e.streamId));
          return everyId.every((id) => streams.has(`rollout-${id}`)) ? all : undefined;
        },
        { deadlineMs: DEADLINE_MS, intervalMs: 250 },
      );
      const perStream = new Map<string, number>();
      for (const e of entries.filter((x) => x.type === 'RolloutPlanned'))
        perStream.set(e.streamId, (perStream.get(e.streamId) ?? 0) + 1);
      expect(everyId.filter((id) => perStream.get(`rollout-${id}`) !== 1)).toEqual([]);
      expect([...perStream.values()].filter((n) => n !== 1)).toEqual([]);
      expect(ledgerShape(entries)).toEqual({ gaps: [], duplicates: [] });
      const positionOf = new Map(entries.map((e) => [e.streamId, e.position]));
      const lastBefore = Math.max(
        ...tally.acked.filter((a) => a.phase === 'before').map((a) => positionOf.get(`rollout-${a.id}`)!),
      );
      const freshPositions = fresh.map((id) => positionOf.get(`rollout-${id}`)!);
      expect(Math.min(...freshPositions)).toBeGreaterThan(lastBefore);
      expect(Math.min(...freshPositions)).toBeGreaterThan(headBefore);

      // 6. The sequencer leads again and signed a checkpoint past the outage.
      const metrics = await (
        await fetch(`${base}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })
      ).text();
      expect(metrics).toMatch(/^ledger_sequencer_leader 1$/m);
      const { checkpoints } = await getJson<{ checkpoints: { position: number }[] }>(
        base,
        `/api/v1/ledger/checkpoints?after=${headBefore}&limit=1`,
      );
      expect(checkpoints.length).toBe(1);

      // 7. The projections caught up from their checkpoints: the list serves every rollout, and
      //    every served projection reaches the ledger head.
      await eventually(
        'the rollout list to serve every acknowledged rollout',
        async () => {
          const listed = await listedRolloutIds(base);
          return everyId.every((id) => listed.has(id)) ? true : undefined;
        },
        { deadlineMs: DEADLINE_MS, intervalMs: 250 },
      );
      await eventually(
        'every served projection to reach the ledger head',
        async () => {
          const { projections } = await getJson<{ projections: { active: boolean; lag: number }[] }>(
            base,
            '/api/v1/admin/projections',
          );
          return projections.filter((p) => p.active).every((p) => p.lag === 0) ? true : undefined;
        },
        { deadlineMs: DEADLINE_MS, intervalMs: 250 },
      );

      // 8. Every NOTIFY subscription came back: new events wake the sequencer, and a key revoked by
      //    another replica empties this one's key cache, without waiting for a poll or a TTL.
      let listening: string[] = [];
      await eventually(
        'every LISTEN of before the outage to be back',
        async () => {
          listening = await listenChannels(url);
          return listenedBefore.every((ch) => listening.includes(ch)) ? true : undefined;
        },
        { deadlineMs: DEADLINE_MS, intervalMs: 250 },
      ).catch(() => {});
      expect(listenedBefore.filter((ch) => !listening.includes(ch))).toEqual([]);

      // 9. The chain verifies, through the API and offline from an export.
      const finalHead = await head(base);
      const online = await verifyOnline(base);
      expect(online).toMatchObject({ ok: true });
      expect(online.verifiedThrough).toBeGreaterThanOrEqual(finalHead.position);
      const offline = await verifyOffline(base, work);
      expect(offline.stdout).toMatch(/^OK: verified positions 1\.\./);
      expect(offline.code).toBe(0);
      expect(exitedMeanwhile).toBeUndefined();

      // 10. The database agrees, read once the service has stopped: every stored event sequenced once.
      await stop(s);
      const [totals] = await query<LedgerTotals>(url, LEDGER_TOTALS_SQL);
      expect(totals).toMatchObject({
        unsequenced: 0,
        entries: totals!.events,
        distinct_events: totals!.events,
        max_position: totals!.events,
        head: totals!.events,
      });

      const others = Object.entries(statuses)
        .filter(([k]) => k !== '201' && k !== '503')
        .map(([k, n]) => `${k}:${n}`);
      const notReady = during.filter((r) => r.status !== 200).length;
      const count = (prefix: string) => said.filter((m) => m.startsWith(prefix)).length;
      console.log(
        `[fault] postgres-outage: ${tally.attempted} requests over a ${OUTAGE_MS / 1000} s outage, ` +
          `${statuses['201'] ?? 0}×201 (${ackedIn('before')} before, ${ackedIn('outage')} during, ` +
          `${ackedIn('after')} after), ${statuses['503'] ?? 0}×503 all with Retry-After, ` +
          `other ${others.length ? others.join(' ') : 'none'}; /health/ready not ready ${notReady}/${during.length} ` +
          `polls during the outage; ${fresh.length} new after recovery from position ${Math.min(...freshPositions)}; ` +
          `sequencer paused ${count('sequencer paused')}× and took the lead again ${count('leading:')}×, ` +
          `projections paused ${count('projections paused')}×; ` +
          `ledger head ${totals!.head}, ${online.checkpointsVerified ?? 0} checkpoints verified`,
      );
    });
  },
);
