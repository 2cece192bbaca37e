import { mkdirSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { peerChild } from './append-single.js';
import { intArg } from './lib/args.js';
import { adminQuery, dbUrl, dropDatabase, recreateDatabase, serverVersion } from './lib/pg.js';
import { rawLedgerInsert } from './lib/raw-ledger.js';
import { ledgerState, migrate } from './lib/seed.js';
import { startServer } from './lib/server.js';
import { count, percentile, publish, type Row } from './lib/table.js';

const NAME = 'sequencer';
/** Pause between two reads of the ledger head: the resolution of "when a position was visible". */
const WATCH_MS = 5;

/**
 * Reads the ledger head (`sequencer_state.position`, committed by the sequencer with the entries)
 * every few milliseconds on a connection of its own, and keeps (epoch ms, head) whenever it moves:
 * when each position became visible to readers, to within one read.
 */
export function watchHead(db: string) {
  const client = new pg.Client({ connectionString: dbUrl(db) });
  const samples: [number, number][] = [];
  let stopped = false;
  const done = (async () => {
    await client.connect();
    let last = -1;
    while (!stopped) {
      const { rows } = await client.query<{ position: string }>(
        'select position from sequencer_state where id = 1',
      );
      const at = Date.now();
      const position = Number(rows[0]?.position ?? 0);
      if (position !== last) samples.push([at, position]);
      last = position;
      await sleep(WATCH_MS);
    }
    await client.end();
  })();
  return {
    stop: async (): Promise<[number, number][]> => {
      stopped = true;
      await done;
      return samples;
    },
  };
}

/** The first time the head was seen at or past `position` (samples ascend in both). */
function visibleAt(samples: readonly [number, number][], position: number): number | undefined {
  let lo = 0;
  let hi = samples.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((samples[mid] as [number, number])[1] >= position) hi = mid;
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
  const samples = await watch.stop();
  const lastPositions = await adminQuery<{ stream_id: string; position: string }>(
    `select e.stream_id, max(l.position) as position
     from ledger l join event e on e.id = l.event_row_id group by e.stream_id`,
    [],
    db,
  );
  const positionOf = new Map(lastPositions.map((r) => [r.stream_id, Number(r.position)]));
  const lags: number[] = [];
  const series: [number, number][] = [];
  for (const [streamId, ackedAt] of load.acks ?? []) {
    const position = positionOf.get(streamId);
    const seen = position === undefined ? undefined : visibleAt(samples, position);
    if (seen === undefined) throw new Error(`${streamId}: never seen in the ledger`);
    lags.push(seen - ackedAt);
    series.push([ackedAt, seen - ackedAt]);
  }
  // Every append's (ack time, lag), to see whether the tail is spread out or a few stalls.
  mkdirSync('bench-output', { recursive: true });
  writeFileSync(`bench-output/${NAME}-lags-batch${batch}.json`, JSON.stringify(series));
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
  try {
    await waitCaughtUp(db);
  } finally {
    await server2.stop();
  }
  const samples2 = (await watch2.stop()).filter(([, p]) => p > before.head);
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
