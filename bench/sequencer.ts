import { mkdirSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { peerChild } from './append-single.js';
import { intArg } from './lib/args.js';
import { cpuByPid, processOf } from './lib/cpu.js';
import { adminQuery, dbUrl, dropDatabase, recreateDatabase, serverVersion } from './lib/pg.js';
import { rawLedgerInsert } from './lib/raw-ledger.js';
import { ledgerState, migrate } from './lib/seed.js';
import { startServer } from './lib/server.js';
import { count, percentile, publish, type Row } from './lib/table.js';

const NAME = 'sequencer';
/** Pause between two reads of the ledger head: the resolution of "when a position was visible". */
const WATCH_MS = 5;

/** A transaction that held the cluster's snapshot xmin (and so the sequencer) for a while. */
export interface XminHold {
  /** Epoch ms of the first read that saw it, and how long the xmin stayed at its id. */
  at: number;
  ms: number;
  /** Its database, whether that is the bench's, and what it ran (from pg_stat_activity). */
  database: string;
  ours: boolean;
  activity: string;
}

/** An xmin unmoved this long is looked up in pg_stat_activity once. */
const HOLD_LOOKUP_MS = 100;

/**
 * Reads the ledger head (`sequencer_state.position`, committed by the sequencer with the entries)
 * and the cluster's snapshot xmin every few milliseconds on a connection of its own, and keeps
 * (epoch ms, head) whenever the head moves and (epoch ms, xmin) whenever the xmin moves: when each
 * position became visible to readers, and when each transaction's events became sequenceable
 * (every older transaction ended), to within one read. An xmin that stays put for
 * `HOLD_LOOKUP_MS` is looked up once: which transaction, in which database, held it.
 */
export function watchHead(db: string) {
  const client = new pg.Client({ connectionString: dbUrl(db) });
  const samples: [number, number][] = [];
  const xmins: [number, bigint][] = [];
  const holds: XminHold[] = [];
  let stopped = false;
  const done = (async () => {
    await client.connect();
    let last = -1;
    let lastXmin = -1n;
    let xminSince = 0;
    let hold: XminHold | undefined;
    while (!stopped) {
      const { rows } = await client.query<{ position: string; xmin: string }>(
        'select position, pg_snapshot_xmin(pg_current_snapshot())::text as xmin from sequencer_state where id = 1',
      );
      const at = Date.now();
      const position = Number(rows[0]?.position ?? 0);
      const xmin = BigInt(rows[0]?.xmin ?? 0);
      if (position !== last) samples.push([at, position]);
      if (xmin !== lastXmin) {
        xmins.push([at, xmin]);
        if (hold) hold.ms = at - hold.at;
        hold = undefined;
        xminSince = at;
      } else if (!hold && at - xminSince >= HOLD_LOOKUP_MS) {
        // No row when nothing at all is running (the xmin is then the next id): not a hold.
        const { rows: who } = await client.query<{ database: string; ours: boolean; activity: string }>(
          `select datname as database, datname = current_database() as ours,
                  concat_ws(' | ', state, wait_event, left(regexp_replace(query, '\\s+', ' ', 'g'), 80)) as activity
           from pg_stat_activity where backend_xid::text = $1 limit 1`,
          // backend_xid is the 32-bit xid; the snapshot's is the 64-bit xid8 (epoch and xid).
          [String(xmin % 4294967296n)],
        );
        if (who[0]) {
          hold = { at: xminSince, ms: at - xminSince, ...who[0] };
          holds.push(hold);
        }
      }
      last = position;
      lastXmin = xmin;
      await sleep(WATCH_MS);
    }
    await client.end();
  })();
  return {
    stop: async (): Promise<{
      samples: [number, number][];
      xmins: [number, bigint][];
      holds: XminHold[];
    }> => {
      stopped = true;
      await done;
      return { samples, xmins, holds };
    },
  };
}

/** The first time the head was seen at or past `position` (samples ascend in both). */
function visibleAt(samples: readonly [number, number][], position: number): number | undefined {
  return firstAtLeast(samples, position);
}

/** The first sample whose value is at least `value` (samples ascend in both time and value). */
function firstAtLeast<T extends number | bigint>(
  samples: readonly [number, T][],
  value: T,
): number | undefined {
  let lo = 0;
  let hi = samples.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((samples[mid] as [number, T])[1] >= value) hi = mid;
    else lo = mid + 1;
  }
  return samples[lo]?.[0];
}

async function waitCaughtUp(db: string): Promise<void> {
  for (;;) {
    const s = await ledgerState(db);
    if (s.head >= s.events) return;
    await sleep(50);
  }
}

/**
 * Two phases on one database, the appender always a separate process appending through the
 * service's EventStore in-process (`--batch` events per append, `--concurrency` in flight), as
 * fast as this machine lets it:
 *
 * 1. **Lag.** For `--duration` seconds, with the service (its sequencer and projections) running.
 *    Lag is measured from each append's acknowledged commit (the appender's clock) to the moment
 *    the ledger head, read every few ms by this process, covered its last event. Whether the
 *    sequencer keeps up shows as the backlog left when the load stops.
 * 2. **Capacity.** The service stopped, `--backlog` seconds of appends pile up; then the service
 *    starts and the rate at which it works the backlog off is its sequencing throughput, against
 *    raw Postgres writing the same ledger rows in one INSERT … SELECT.
 */
export async function sequencer(args: Map<string, string>): Promise<void> {
  const started = new Date();
  const seconds = intArg(args, 'duration', 60);
  const backlogSeconds = intArg(args, 'backlog', 20);
  const batch = intArg(args, 'batch', 100);
  const concurrency = intArg(args, 'concurrency', 16);
  const db = 'bench_sequencer';
  const pgVersion = await serverVersion();
  await recreateDatabase(db);
  await migrate(db);
  const env = { SEQUENCER_POLL_MS: '500' };

  // Phase 1: lag at the maximum append rate.
  const server = await startServer({ databaseUrl: dbUrl(db), env });
  const watch = watchHead(db);
  let load: Awaited<ReturnType<typeof peerChild>>;
  let atEnd: { head: number; events: number };
  let drainMs: number;
  try {
    load = await peerChild('_store', db, concurrency, seconds, batch, 20, true);
    atEnd = await ledgerState(db);
    const t = performance.now();
    await waitCaughtUp(db);
    drainMs = performance.now() - t;
  } finally {
    await server.stop();
  }
  const { samples, xmins, holds } = await watch.stop();
  const lastPositions = await adminQuery<{ stream_id: string; position: string; tx_id: string }>(
    `select e.stream_id, max(l.position) as position, max(e.tx_id::text::numeric)::text as tx_id
     from ledger l join event e on e.id = l.event_row_id group by e.stream_id`,
    [],
    db,
  );
  const ofStream = new Map(
    lastPositions.map((r) => [r.stream_id, { position: Number(r.position), txId: BigInt(r.tx_id) }]),
  );
  const lags: number[] = [];
  // The lag in two parts: until every older transaction had ended (the xmin rule), then until the
  // sequencer had made the position visible (its wake-up, its batch, its commit).
  const xminWaits: number[] = [];
  const pickUps: number[] = [];
  const series: [number, number, number][] = [];
  const heldByOthers: number[] = [];
  const notHeldByOthers: number[] = [];
  for (const [streamId, ackedAt] of load.acks ?? []) {
    const stream = ofStream.get(streamId);
    const seen = stream === undefined ? undefined : visibleAt(samples, stream.position);
    if (stream === undefined || seen === undefined) throw new Error(`${streamId}: never seen in the ledger`);
    const sequenceable = Math.min(seen, Math.max(ackedAt, firstAtLeast(xmins, stream.txId + 1n) ?? seen));
    lags.push(seen - ackedAt);
    xminWaits.push(sequenceable - ackedAt);
    pickUps.push(seen - sequenceable);
    series.push([ackedAt, seen - ackedAt, sequenceable - ackedAt]);
    // Held back by a transaction of another database on the same server: the xmin is the
    // cluster's, so their long transactions (CREATE/DROP DATABASE waits for a checkpoint) count.
    if (holds.some((h) => !h.ours && h.at < sequenceable && h.at + h.ms > ackedAt))
      heldByOthers.push(seen - ackedAt);
    else notHeldByOthers.push(seen - ackedAt);
  }
  const firstAck = load.acks?.[0]?.[1] ?? 0;
  const lastAck = load.acks?.at(-1)?.[1] ?? 0;
  const loadHolds = holds.filter((h) => h.at + h.ms >= firstAck && h.at <= lastAck);
  const describeHolds = (list: XminHold[]) => {
    const longest = list.reduce<XminHold | undefined>((a, h) => (a && a.ms >= h.ms ? a : h), undefined);
    return longest
      ? `${list.length}, longest ${count(longest.ms)} ms (${longest.database}: ${longest.activity})`
      : 'none';
  };
  // Every append's (ack time, lag, of which waiting for xmin), to see whether the tail is spread
  // out or a few stalls, and which part it is.
  mkdirSync('bench-output', { recursive: true });
  writeFileSync(`bench-output/${NAME}-lags-batch${batch}.json`, JSON.stringify(series));
  writeFileSync(
    `bench-output/${NAME}-watch-batch${batch}.json`,
    JSON.stringify({ heads: samples, xmins: xmins.map(([at, x]) => [at, Number(x)]), holds }),
  );
  // The older measure, for comparison with earlier runs: from the append's recorded_at (taken
  // before its INSERT, so it includes the append's own commit) to the sequencer transaction's start.
  const [recorded] = await adminQuery<{ p50: number; p99: number }>(
    `select percentile_cont(0.5) within group (order by s) * 1000 as p50,
            percentile_cont(0.99) within group (order by s) * 1000 as p99
     from (select extract(epoch from l.sequenced_at - e.recorded_at)::float8 as s
           from ledger l join event e on e.id = l.event_row_id) x`,
    [],
    db,
  );

  // Phase 2: capacity, working off a backlog.
  const before = await ledgerState(db);
  const piled = await peerChild('_store', db, concurrency, backlogSeconds, batch, 20);
  const backlog = (await ledgerState(db)).events - before.head;
  const watch2 = watchHead(db);
  const server2 = await startServer({ databaseUrl: dbUrl(db), env });
  // The service's own CPU while it works the backlog off (from ready, when part of it may be
  // done already, to caught up), per event sequenced meanwhile. Its Postgres backends are left
  // out: the head watcher's backend, polling every few ms, is among them.
  const serviceCpu = () => [...cpuByPid(processOf(server2.pid)).values()].reduce((a, b) => a + b, 0);
  const cpuAtReady = serviceCpu();
  const headAtReady = (await ledgerState(db)).head;
  let serviceUsPerEvent: number;
  try {
    await waitCaughtUp(db);
    const sequenced = (await ledgerState(db)).head - headAtReady;
    serviceUsPerEvent = sequenced > 0 ? ((serviceCpu() - cpuAtReady) * 1000) / sequenced : Number.NaN;
  } finally {
    await server2.stop();
  }
  const samples2 = (await watch2.stop()).samples.filter(([, p]) => p > before.head);
  const first = samples2[0];
  const last = samples2.at(-1);
  if (!first || !last || last[0] <= first[0]) throw new Error('the backlog was sequenced in one batch');
  // From the first batch seen to the last: the first batch's own time is not counted, nor its events.
  const sequencedPerSec = ((last[1] - first[1]) / (last[0] - first[0])) * 1000;

  const raw = await rawLedgerInsert(db);
  const cmd = `npm run bench -- ${NAME} --duration ${seconds} --backlog ${backlogSeconds} --batch ${batch} --concurrency ${concurrency}`;
  const rows: Row[] = [
    {
      figure: `sequencing throughput, backlog of ${count(backlog)} events`,
      value: sequencedPerSec,
      unit: 'events/s',
      better: 'higher',
      baseline: {
        label: `raw INSERT … SELECT of the same ledger rows (${count(raw.rows)})`,
        value: raw.rows / raw.seconds,
      },
      command: cmd,
      note: `phase 2: ${count(piled.events)} events appended in ${piled.seconds.toFixed(0)} s with the service stopped, then worked off by a fresh service (projections running too); from its first batch to its last`,
    },
    {
      figure: "  the service's CPU per event sequenced, working the backlog off",
      value: serviceUsPerEvent,
      unit: 'µs',
      better: 'lower',
      baseline: { label: 'raw INSERT … SELECT: its time per row', value: (raw.seconds * 1e6) / raw.rows },
      command: cmd,
      note: 'Node only (sequencer, projections running beside it, and the rest of the service), from ready until the head reached the last event; the baseline is one Postgres backend, so its time is its CPU',
    },
    {
      figure: '  phase 1: append rate (maximum, with the service running)',
      value: load.eventsPerSec,
      unit: 'events/s',
      command: cmd,
      note: `${count(load.events)} events in ${load.appends.toLocaleString('en-US')} appends over ${load.seconds.toFixed(0)} s; when the load stopped ${count(atEnd.events - atEnd.head)} events were not yet sequenced, and ${count(drainMs)} ms later none`,
    },
    {
      figure: '  sequencing capacity ÷ maximum append rate (keeps up ≥ 1)',
      value: sequencedPerSec,
      unit: 'events/s',
      better: 'higher',
      baseline: { label: 'append rate of phase 1', value: load.eventsPerSec },
      command: cmd,
    },
    {
      figure: '  lag commit → position visible, p50',
      value: percentile(lags, 50),
      unit: 'ms',
      command: cmd,
      note: `from each append's acknowledged commit to the ledger head covering it, read every ${WATCH_MS} ms (+ the read); no raw-Postgres equivalent: compare with the target (p99 ≤ 250 ms)`,
    },
    { figure: '  lag commit → position visible, p99', value: percentile(lags, 99), unit: 'ms', command: cmd },
    { figure: '  lag commit → position visible, max', value: Math.max(...lags), unit: 'ms', command: cmd },
    {
      figure: '  of which waiting for older transactions (xmin), p50 / p99',
      value: percentile(xminWaits, 99),
      unit: 'ms (p99)',
      command: cmd,
      note: `p50 ${count(percentile(xminWaits, 50))} ms, max ${count(Math.max(...xminWaits))} ms: from the ack until the snapshot xmin (read with the head) passed the append's transaction (every older transaction of the server had ended, the sequencer's own open batch included)`,
    },
    {
      figure: '  of which the sequencer, after xmin, p50 / p99',
      value: percentile(pickUps, 99),
      unit: 'ms (p99)',
      command: cmd,
      note: `p50 ${count(percentile(pickUps, 50))} ms, max ${count(Math.max(...pickUps))} ms: from then until the head covering the append was visible (wake-up, batch, commit)`,
    },
    {
      figure: '  lag p99 of appends not held back by another database',
      value: percentile(notHeldByOthers, 99),
      unit: 'ms',
      command: cmd,
      note: `${count(heldByOthers.length)} of ${count(lags.length)} appends waited on the xmin while a transaction of another database on this server held it (their p99 ${count(percentile(heldByOthers, 99))} ms). Held ≥ ${HOLD_LOOKUP_MS} ms during the load by other databases: ${describeHolds(loadHolds.filter((h) => !h.ours))}; by this one (appends, the sequencer's and projections' own transactions): ${describeHolds(loadHolds.filter((h) => h.ours))}`,
    },
    {
      figure: '  lag recorded_at → sequencer tx start, p50 / p99',
      value: recorded?.p99 ?? Number.NaN,
      unit: 'ms (p99)',
      command: cmd,
      note: `p50 ${count(recorded?.p50 ?? Number.NaN)} ms. The measure of earlier runs: it starts before the append's INSERT, so it includes the append's own commit (${count(load.p50Ms)} ms p50, ${count(load.p99Ms)} ms p99 per append of ${batch} here)`,
    },
  ];
  publish(NAME, started, pgVersion, { seconds, backlogSeconds, batch, concurrency }, rows, [
    'the service runs with its defaults (SEQUENCER_BATCH 5000, NOTIFY wake-ups, poll 500 ms) and its projections; the load is a separate process appending through EventStore.append',
    'the read rate at 10 M events against 100 k: npm run bench -- sequencer-scale',
    'the machine has 2 cores: the appender, the service and Postgres share them, so the sequencer competes with the load it must keep up with',
  ]);
  if (!args.has('keep')) await dropDatabase(db);
}
