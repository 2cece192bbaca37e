import { peerChild } from './append-single.js';
import { intArg } from './lib/args.js';
import { adminQuery, dbUrl, dropDatabase, recreateDatabase, serverVersion } from './lib/pg.js';
import { ledgerState, migrate } from './lib/seed.js';
import { startServer } from './lib/server.js';
import { publish, type Row } from './lib/table.js';

const NAME = 'sequencer';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Appends at the highest rate this machine gives (in-process EventStore.append from a child
 * process, `--batch` events per append, `--concurrency` in flight) for `--duration` seconds while
 * the service's sequencer runs, then: sequencing throughput, lag from append to ledger position,
 * and raw Postgres writing the same ledger rows in one INSERT … SELECT.
 */
export async function sequencer(args: Map<string, string>): Promise<void> {
  const started = new Date();
  const seconds = intArg(args, 'duration', 60);
  const batch = intArg(args, 'batch', 100);
  const concurrency = intArg(args, 'concurrency', 16);
  const db = 'bench_sequencer';
  const pgVersion = await serverVersion();
  await recreateDatabase(db);
  await migrate(db);
  const server = await startServer({ databaseUrl: dbUrl(db), env: { SEQUENCER_POLL_MS: '500' } });
  let caughtUpAfter = 0;
  let load: Awaited<ReturnType<typeof peerChild>>;
  let during: { head: number; events: number };
  try {
    const t0 = performance.now();
    load = await peerChild('_store', db, concurrency, seconds, batch, 20);
    during = await ledgerState(db);
    for (;;) {
      const s = await ledgerState(db);
      if (s.head >= s.events) break;
      await sleep(50);
    }
    caughtUpAfter = (performance.now() - t0) / 1000;
  } finally {
    await server.stop();
  }
  const { head } = await ledgerState(db);
  // Lag: ledger.sequenced_at (the sequencer transaction's start) minus event.recorded_at (taken
  // just before the append's INSERT). Both clocks are the same machine's.
  const [lag] = await adminQuery<{ p50: number; p99: number; max: number; first: string; last: string }>(
    `select percentile_cont(0.5) within group (order by s) * 1000 as p50,
            percentile_cont(0.99) within group (order by s) * 1000 as p99,
            max(s) * 1000 as max
     from (select extract(epoch from l.sequenced_at - e.recorded_at)::float8 as s
           from ledger l join event e on e.id = l.event_row_id) x`,
    [],
    db,
  );
  const [span] = await adminQuery<{ s: number }>(
    'select extract(epoch from max(sequenced_at) - min(sequenced_at))::float8 as s from ledger',
    [],
    db,
  );
  // Raw: the same ledger rows (position, event, prev hash, hash) written in commit order by one
  // INSERT … SELECT into a table with the ledger's constraints, without hashing in JS.
  await adminQuery(
    `create table bench_ledger_raw (position bigint primary key, event_row_id bigint not null unique references event(id),
       prev_hash text not null, hash text not null, sequenced_at timestamptz not null default now())`,
    [],
    db,
  );
  const t = performance.now();
  await adminQuery(
    `insert into bench_ledger_raw (position, event_row_id, prev_hash, hash)
     select row_number() over (order by tx_id, id), id, prev_hash, hash from event order by tx_id, id`,
    [],
    db,
  );
  const rawSeconds = (performance.now() - t) / 1000;
  const sequencedPerSec = head / Math.max(caughtUpAfter, span?.s ?? 0);
  const cmd = `npm run bench -- ${NAME} --duration ${seconds} --batch ${batch} --concurrency ${concurrency}`;
  const rows: Row[] = [
    {
      figure: `sequencing throughput, ${head.toLocaleString('en-US')} events`,
      value: sequencedPerSec,
      unit: 'events/s',
      better: 'higher',
      baseline: { label: 'raw INSERT … SELECT of the same ledger rows', value: head / rawSeconds },
      command: cmd,
      note: `appended ${load.events.toLocaleString('en-US')} events in ${load.seconds.toFixed(0)} s (${Math.round(load.eventsPerSec).toLocaleString('en-US')} events/s); every event had its position ${caughtUpAfter.toFixed(1)} s after the load started; ${during.head.toLocaleString('en-US')} of ${during.events.toLocaleString('en-US')} were sequenced when the load stopped`,
    },
    {
      figure: '  sequencing rate ÷ append rate (keeps up ≥ 1)',
      value: sequencedPerSec,
      unit: 'events/s',
      better: 'higher',
      baseline: { label: 'append rate of the same run', value: load.eventsPerSec },
      command: cmd,
    },
    {
      figure: '  lag append → position, p50',
      value: lag?.p50 ?? Number.NaN,
      unit: 'ms',
      command: cmd,
      note: 'no raw-Postgres equivalent: compare with the target (p99 ≤ 250 ms)',
    },
    { figure: '  lag append → position, p99', value: lag?.p99 ?? Number.NaN, unit: 'ms', command: cmd },
    { figure: '  lag append → position, max', value: lag?.max ?? Number.NaN, unit: 'ms', command: cmd },
  ];
  publish(NAME, started, pgVersion, { seconds, batch, concurrency }, rows, [
    'the service runs with its defaults (SEQUENCER_BATCH 5000, poll 500 ms, NOTIFY wake-ups) and its projections; the load is a separate process appending through EventStore.append',
    'lag is ledger.sequenced_at (start of the sequencer transaction) − event.recorded_at (just before the append’s INSERT): it includes the append’s own commit time',
    'not measured: the read rate at 10 M events against 100 k (no time to seed 10 M here)',
    'the machine has 2 cores: the appender, the service and Postgres share them, so the sequencer competes with the load it must keep up with',
  ]);
  if (!args.has('keep')) await dropDatabase(db);
}
