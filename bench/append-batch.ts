import { randomUUID } from 'node:crypto';
import { appendFunctionScript, peerChild } from './append-single.js';
import { intArg, listArg } from './lib/args.js';
import { dropDatabase, recreateDatabase, serverVersion } from './lib/pg.js';
import { pgbench } from './lib/pgbench.js';
import { migrate, rolloutEvents, rolloutTemplates } from './lib/seed.js';
import { publish, type Row } from './lib/table.js';

const NAME = 'append-batch';

/**
 * Appends of `--batch` events (default 100) to a new stream per append. No HTTP route appends
 * many events in one request (the CloudEvents batch mode loops one append per event), so this is
 * in-process: the service's EventStore.append against pgbench running the same transaction with
 * 100 rows, and Emmett appending 100 events per appendToStream.
 */
export async function appendBatch(args: Map<string, string>): Promise<void> {
  const started = new Date();
  const seconds = intArg(args, 'duration', 20);
  const batch = intArg(args, 'batch', 100);
  const levels = listArg(args, 'concurrency', [16]);
  const poolMax = intArg(args, 'pool', 20);
  const ours = 'bench_batch_ours';
  const raw = 'bench_batch_raw';
  const peer = 'bench_batch_emmett';
  const pgVersion = await serverVersion();
  for (const db of [ours, raw]) {
    await recreateDatabase(db);
    await migrate(db);
  }
  await recreateDatabase(peer);
  const sample = rolloutEvents(rolloutTemplates(), 0, randomUUID()).events[0];
  if (!sample) throw new Error('no sample event');
  const script = appendFunctionScript(sample.data, sample.metadata, batch);

  const rows: Row[] = [];
  for (const c of levels) {
    const store = await peerChild('_store', ours, c, seconds, batch, poolMax);
    // -M simple: extended mode allows at most 255 variables per statement.
    const base = await pgbench({ db: raw, script, clients: c, seconds, name: NAME, protocol: 'simple' });
    const emmett = await peerChild('_emmett', peer, c, seconds, batch, poolMax);
    const cmd = `npm run bench -- ${NAME} --batch ${batch} --concurrency ${c} --duration ${seconds}`;
    rows.push(
      {
        figure: `in-process EventStore.append, ${batch} events/append, ${c} in flight`,
        value: store.eventsPerSec,
        unit: 'events/s',
        better: 'higher',
        baseline: { label: `pgbench, same SQL: append_events with ${batch} events`, value: base.tps * batch },
        command: cmd,
        note: `baseline: ${base.command}`,
      },
      {
        figure: '  vs Emmett in-process',
        value: store.eventsPerSec,
        unit: 'events/s',
        better: 'higher',
        baseline: { label: `Emmett 0.42, ${batch} events/appendToStream`, value: emmett.eventsPerSec },
        command: cmd,
      },
      {
        figure: '  p50 latency per append',
        value: store.p50Ms,
        unit: 'ms',
        better: 'lower',
        baseline: { label: 'pgbench', value: base.p50Ms },
        command: cmd,
      },
      {
        figure: '  p99 latency per append',
        value: store.p99Ms,
        unit: 'ms',
        better: 'lower',
        baseline: { label: 'pgbench', value: base.p99Ms },
        command: cmd,
        note: `Emmett p50 ${emmett.p50Ms.toFixed(1)} ms, p99 ${emmett.p99Ms.toFixed(1)} ms`,
      },
    );
  }
  publish(NAME, started, pgVersion, { seconds, batch, concurrency: levels.join(','), poolMax }, rows, [
    'no HTTP route appends many events in one transaction: POST /api/v1/ingest/cloudevents in batch mode runs one append per CloudEvent. So this figure is in-process (EventStore.append from a child process, pool of the same size as the service), not over HTTP',
    'no sequencer runs here: this is the append path alone (JS validation, JCS + SHA-256 per event, the SQL)',
    'the same event payload (the first scenario’s RolloutPlanned) in all three; pgbench runs the same SQL, one append_events call with the 100 events (-M simple: its extended mode allows at most 255 variables per statement)',
    'the machine has 2 cores shared with Postgres and other users: compare ratios, not absolute figures',
  ]);
  if (!args.has('keep')) for (const db of [ours, raw, peer]) await dropDatabase(db);
}
