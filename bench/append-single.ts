import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { canonicalJson } from '../src/ledger/hashing.js';
import { loadScenarios } from '../test/support/scenarios.js';
import { intArg, listArg } from './lib/args.js';
import { autocannon } from './lib/autocannon.js';
import { backendsOf, benchChild, cpuDuring, processOf } from './lib/cpu.js';
import type { PeerResult } from './lib/emmett.js';
import { dbUrl, dropDatabase, recreateDatabase, serverVersion } from './lib/pg.js';
import { literal, pgbench } from './lib/pgbench.js';
import { run } from './lib/proc.js';
import { ledgerState, migrate, rolloutEvents, rolloutTemplates } from './lib/seed.js';
import { authHeaders, startServer } from './lib/server.js';
import { publish, type Row } from './lib/table.js';

const NAME = 'append-single';
const HASH = 'a'.repeat(64);
const GENESIS = '0'.repeat(64);

/**
 * JSON as a pgbench-safe SQL literal: pgbench reads `:name` anywhere as a variable, so structural
 * colons get a space after them and colons inside strings become \u003a (jsonb stores the same value).
 */
export function pgbenchJson(value: unknown): string {
  const text = JSON.stringify(value, null, 1)
    .replaceAll('\n', ' ')
    .replace(/:(?=[A-Za-z0-9_])/g, '\\u003a');
  return literal(text);
}

/**
 * What one `EventStore.append` of one event to a new stream runs, in the same transaction, as a
 * pgbench script: advisory lock, stream upsert, row lock, idempotency look-up, insert, stream
 * update. Ids come from pgbench's random() so that every transaction writes a new stream.
 */
export function singleAppendScript(data: unknown, metadata: unknown, eventsPerTx = 1): string {
  const sid = `'rollout-' || :client_id || '-' || :r`;
  const eid = (i: number) => `md5('e${i}-' || :client_id || '-' || :r)::uuid`;
  const ids = Array.from({ length: eventsPerTx }, (_, i) => eid(i)).join(', ');
  const rows = Array.from(
    { length: eventsPerTx },
    (_, i) =>
      `(${eid(i)}, ${sid}, ${i + 1}, 'RolloutPlanned', 1, ${pgbenchJson(data)}, ${pgbenchJson(metadata)}, now(), '${i === 0 ? GENESIS : HASH}', '${HASH}')`,
  ).join(', ');
  return [
    '\\set r random(1, 999999999999)',
    'begin;',
    `select pg_advisory_xact_lock(hashtextextended(${sid}, 0));`,
    `insert into stream (stream_id, stream_type, version, head_hash) values (${sid}, 'rollout', 0, '${GENESIS}') on conflict (stream_id) do nothing;`,
    `select version, head_hash from stream where stream_id = ${sid} for update;`,
    `select event_id, stream_id, stream_version, type, schema_version, data from event where event_id in (${ids});`,
    `insert into event (event_id, stream_id, stream_version, type, schema_version, data, metadata, recorded_at, prev_hash, hash) values ${rows};`,
    `update stream set version = ${eventsPerTx}, head_hash = '${HASH}', updated_at = now() where stream_id = ${sid};`,
    'commit;',
    '',
  ].join('\n');
}

/**
 * A string as a pgbench-safe SQL literal, byte for byte: an escape string whose colons are
 * written `\x3a`, so pgbench sees no `:name` and Postgres reads the same text.
 */
export function pgbenchText(text: string): string {
  return `E'${text.replaceAll('\\', '\\\\').replaceAll("'", "\\'").replaceAll(':', '\\x3a')}'`;
}

/**
 * What one `EventStore.append` runs now: one call of `append_events` (migration 000500) with the
 * events already hashed, in its own implicit transaction, as a pgbench script. The same payload
 * and a new stream per transaction.
 */
export function appendFunctionScript(data: unknown, metadata: unknown, eventsPerTx = 1): string {
  const sid = `'rollout-' || :client_id || '-' || :r`;
  const events = Array.from(
    { length: eventsPerTx },
    (_, i) =>
      `jsonb_build_object('event_id', md5('e${i}-' || :client_id || '-' || :r)::uuid, 'type', 'RolloutPlanned', 'schema_version', 1, 'data_jcs', ${pgbenchText(canonicalJson(data))}::text, 'metadata_jcs', ${pgbenchText(canonicalJson(metadata))}::text, 'prev_hash', '${i === 0 ? GENESIS : HASH}', 'hash', '${HASH}')`,
  ).join(', ');
  return [
    '\\set r random(1, 999999999999)',
    `select * from append_events(${sid}, 'rollout', 0, '${GENESIS}', now(), jsonb_build_array(${events}));`,
    '',
  ].join('\n');
}

/** autocannon's request for one HTTP append: POST /api/v1/rollouts with `body`, as the admin. */
export function rolloutPost(serviceUrl: string, body: string) {
  return {
    url: `${serviceUrl}/api/v1/rollouts`,
    method: 'POST' as const,
    headers: { ...authHeaders, 'content-type': 'application/json' },
    body,
  };
}

/** The peer in a child process of its own (its own event loop and pool, in-process appends). */
export async function peerChild(
  kind: '_emmett' | '_store',
  db: string,
  concurrency: number,
  seconds: number,
  batch: number,
  poolMax: number,
  acks = false,
): Promise<PeerResult> {
  const args = [
    process.argv[1] as string,
    kind,
    db,
    String(concurrency),
    String(seconds),
    String(batch),
    String(poolMax),
    ...(acks ? ['1'] : []),
  ];
  const r = await run(process.execPath, args);
  if (r.code !== 0) throw new Error(`${kind} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '') as PeerResult;
}

/** Waits until the sequencer has given every event a position (so it does not load the next phase). */
export async function waitSequenced(db: string, timeoutMs = 300_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const s = await ledgerState(db);
    if (s.head >= s.events) return;
    await sleep(250);
  }
  throw new Error(`${db}: the sequencer did not catch up within ${timeoutMs} ms`);
}

/** One round's headline rates at one connection count. */
interface RoundRates {
  round: number;
  http: number;
  pgbench: number;
  emmett: number;
}

/**
 * The round whose ratio is the median of the rounds' (the lower middle one for an even count), as
 * the figure: a ratio from one round's pair of runs, never one rate's median over another's.
 */
function medianRows(measured: readonly RoundRates[], c: number, seconds: number): Row[] {
  const rounds = measured.length;
  const middle = (by: (m: RoundRates) => number) => {
    const sorted = [...measured].sort((a, b) => by(a) - by(b));
    return sorted[Math.floor((sorted.length - 1) / 2)] as RoundRates;
  };
  const list = (by: (m: RoundRates) => number) => measured.map((m) => by(m).toFixed(2)).join(', ');
  const vsPgbench = middle((m) => m.http / m.pgbench);
  const vsEmmett = middle((m) => m.http / m.emmett);
  const command = `npm run bench -- ${NAME} --connections ${c} --duration ${seconds} --rounds ${rounds}`;
  return [
    {
      figure: `HTTP single appends, ${c} connections, median of ${rounds} rounds: round ${vsPgbench.round}'s pair`,
      value: vsPgbench.http,
      unit: 'events/s',
      better: 'higher',
      baseline: { label: 'pgbench, same SQL (append_events), same round', value: vsPgbench.pgbench },
      command,
      note: `ratios by round: ${list((m) => m.http / m.pgbench)}`,
    },
    {
      figure: `  vs Emmett in-process, ${c} in flight, median of ${rounds} rounds: round ${vsEmmett.round}'s pair`,
      value: vsEmmett.http,
      unit: 'events/s',
      better: 'higher',
      baseline: { label: 'Emmett 0.42 appendToStream, same round', value: vsEmmett.emmett },
      command,
      note: `ratios by round: ${list((m) => m.http / m.emmett)}`,
    },
  ];
}

/**
 * HTTP single-event appends to distinct streams (POST /api/v1/rollouts: one RolloutPlanned event
 * on a new stream) against pgbench running the same transaction, and Emmett in-process.
 *
 * `--rounds N` runs the whole set N times at each level, in turn, and adds the round with the
 * median ratio against each baseline: on this shared machine one round's ratio moves by a third.
 */
export async function appendSingle(args: Map<string, string>): Promise<void> {
  const started = new Date();
  const seconds = intArg(args, 'duration', 20);
  const levels = listArg(args, 'connections', [16, 64]);
  const rounds = intArg(args, 'rounds', 1);
  if (rounds < 1) throw new Error('--rounds: at least 1');
  const poolMax = intArg(args, 'pool', 20);
  const ours = 'bench_append_ours';
  const raw = 'bench_append_raw';
  const peer = 'bench_append_emmett';
  const pgVersion = await serverVersion();
  for (const db of [ours, raw]) {
    await recreateDatabase(db);
    await migrate(db);
  }
  await recreateDatabase(peer);

  const scenarios = loadScenarios(process.env.SCENARIOS_DIR ?? path.resolve('../shared/scenarios'));
  const body = JSON.stringify(scenarios[0]?.calls[0]?.body);
  const sample = rolloutEvents(rolloutTemplates(), 0, randomUUID()).events[0];
  if (!sample) throw new Error('no sample event');
  const script = appendFunctionScript(sample.data, sample.metadata);
  const before = singleAppendScript(sample.data, sample.metadata);

  const rows: Row[] = [];
  const server = await startServer({ databaseUrl: dbUrl(ours), env: { DB_POOL_MAX: String(poolMax) } });
  try {
    const post = rolloutPost(server.url, body);
    for (const c of levels) {
      await autocannon({ ...post, connections: c, seconds: 3 }); // warm-up, not counted
      /** Each round's headline rates, for the medians after the last one. */
      const measured: RoundRates[] = [];
      for (let round = 1; round <= rounds; round++) {
        // With rounds, each figure says which round gave it; the medians follow the last round.
        const tag = rounds > 1 ? ` (round ${round})` : '';
        await waitSequenced(ours);
        const httpCpu = await cpuDuring(
          seconds,
          { node: processOf(server.pid), postgres: backendsOf(ours) },
          autocannon({ ...post, connections: c, seconds }),
        );
        const http = httpCpu.result;
        if (http.errors > 0 || http.non2xx > 0)
          console.log(`  warning: ${http.non2xx} non-2xx and ${http.errors} errors at ${c} connections`);
        await waitSequenced(ours);
        const baseCpu = await cpuDuring(
          seconds,
          {
            // Debian's `pgbench` is a wrapper that runs /usr/lib/postgresql/<v>/bin/pgbench.
            node: (cmdline) => /(^|\/)pgbench /.test(cmdline) && cmdline.includes(` ${raw} `),
            postgres: backendsOf(raw),
          },
          pgbench({ db: raw, script, clients: c, seconds, name: 'append-single' }),
        );
        const base = baseCpu.result;
        const old = await pgbench({
          db: raw,
          script: before,
          clients: c,
          seconds,
          name: 'append-single-9-statements',
        });
        const emmettCpu = await cpuDuring(
          seconds,
          { node: benchChild('_emmett', peer), postgres: backendsOf(peer) },
          peerChild('_emmett', peer, c, seconds, 1, poolMax),
        );
        const emmett = emmettCpu.result;
        const storeCpu = await cpuDuring(
          seconds,
          { node: benchChild('_store', raw), postgres: backendsOf(raw) },
          peerChild('_store', raw, c, seconds, 1, poolMax),
        );
        const store = storeCpu.result;
        // CPU per event: what a core-bound machine divides its cores by. Ours counts the service
        // (HTTP, validation, hashing, and the sequencer and projections it runs) and its Postgres
        // backends; Emmett's counts its process and its backends. Postgres's shared background
        // processes (WAL writer, checkpointer) are left out of both. The sequencer's share is what
        // it did inside the window: it keeps up with far more than this rate (the sequencer bench),
        // so its backlog is about one batch at both ends.
        const perEvent = (w: { ms: Record<string, number>; seconds: number }, rate: number) => {
          const events = rate * w.seconds;
          const node = ((w.ms.node ?? 0) * 1000) / events;
          const postgres = ((w.ms.postgres ?? 0) * 1000) / events;
          return { node, postgres, total: node + postgres };
        };
        const cpuOurs = perEvent(httpCpu, http.okPerSec);
        const cpuEmmett = perEvent(emmettCpu, emmett.eventsPerSec);
        const cpuStore = perEvent(storeCpu, store.eventsPerSec);
        const cpuBase = perEvent(baseCpu, base.tps);
        const split = (x: { node: number; postgres: number }) =>
          `${Math.round(x.node)} µs in Node + ${Math.round(x.postgres)} µs in Postgres`;
        const cmd = `npm run bench -- ${NAME} --connections ${c} --duration ${seconds}${rounds > 1 ? ` --rounds ${rounds}` : ''}: ${http.command}`;
        measured.push({ http: http.okPerSec, pgbench: base.tps, emmett: emmett.eventsPerSec, round });
        rows.push(
          {
            figure: `HTTP single appends, ${c} connections${tag}`,
            value: http.okPerSec,
            unit: 'events/s',
            better: 'higher',
            baseline: { label: 'pgbench, same SQL (append_events)', value: base.tps },
            command: cmd,
            note: `baseline: ${base.command}`,
          },
          {
            figure: `  vs pgbench running the nine-statement transaction appends used before${tag}`,
            value: http.okPerSec,
            unit: 'events/s',
            better: 'higher',
            baseline: { label: 'pgbench, BEGIN … 7 statements … COMMIT', value: old.tps },
            command: cmd,
            note: `baseline: ${old.command}`,
          },
          {
            figure: `  vs Emmett in-process, ${c} in flight${tag}`,
            value: http.okPerSec,
            unit: 'events/s',
            better: 'higher',
            baseline: { label: 'Emmett 0.42 appendToStream', value: emmett.eventsPerSec },
            command: cmd,
            note: `Emmett p50 ${emmett.p50Ms.toFixed(1)} ms, p99 ${emmett.p99Ms.toFixed(1)} ms, pool ${poolMax}`,
          },
          {
            figure: `  in-process EventStore.append (no HTTP), ${c} in flight${tag}`,
            value: store.eventsPerSec,
            unit: 'events/s',
            better: 'higher',
            baseline: { label: 'pgbench, same SQL (append_events)', value: base.tps },
            command: cmd,
            note: `in-process p50 ${store.p50Ms.toFixed(1)} ms, p99 ${store.p99Ms.toFixed(1)} ms: the HTTP route's cost is the gap between this row and the first`,
          },
          {
            figure: `  CPU per event, HTTP, vs pgbench, ${c}${tag}`,
            value: cpuOurs.total,
            unit: 'µs',
            better: 'lower',
            baseline: { label: 'pgbench: its process + its backends', value: cpuBase.total },
            command: cmd,
            note: `pgbench ${split(cpuBase).replace('in Node', 'in pgbench')}`,
          },
          {
            figure: `  CPU per event, HTTP, vs Emmett in-process, ${c}${tag}`,
            value: cpuOurs.total,
            unit: 'µs',
            better: 'lower',
            baseline: { label: 'Emmett: its process + its backends', value: cpuEmmett.total },
            command: cmd,
            note: `ours ${split(cpuOurs)} (service, with its sequencer and projections); Emmett ${split(cpuEmmett)}; in-process EventStore.append ${split(cpuStore)}`,
          },
          {
            figure: `  CPU per event, in-process EventStore.append, vs Emmett, ${c}${tag}`,
            value: cpuStore.total,
            unit: 'µs',
            better: 'lower',
            baseline: { label: 'Emmett: its process + its backends', value: cpuEmmett.total },
            command: cmd,
          },
          {
            figure: `  p50 latency, ${c} connections${tag}`,
            value: http.p50Ms,
            unit: 'ms',
            better: 'lower',
            baseline: { label: 'pgbench', value: base.p50Ms },
            command: cmd,
          },
          {
            figure: `  p99 latency, ${c} connections${tag}`,
            value: http.p99Ms,
            unit: 'ms',
            better: 'lower',
            baseline: { label: 'pgbench', value: base.p99Ms },
            command: cmd,
          },
        );
      }
      if (rounds > 1) rows.push(...medianRows(measured, c, seconds));
    }
  } finally {
    await server.stop();
  }
  publish(NAME, started, pgVersion, { seconds, connections: levels.join(','), poolMax, rounds }, rows, [
    `ours: the built service on Postgres (DB_POOL_MAX=${poolMax}, sequencer and projections running in the same process), autocannon in a separate process; each 2xx is one RolloutPlanned event on a new stream`,
    'the route wakes the sequencer in its own process (the sequencer leads there), so it sends no pg_notify: that is only when another replica leads',
    'pgbench: -M extended, the same SQL one append runs (select * from append_events(…), one statement in its own transaction), the same event payload, into a migrated database of its own (same indexes and triggers); no JS hashing. A second pgbench runs the nine-statement transaction the append used before migration 000500',
    'Emmett: a child process appending one event to a new stream (STREAM_DOES_NOT_EXIST), no HTTP',
    'the machine has 2 cores shared with the load generator, Postgres and other users: compare ratios, not absolute figures',
  ]);
  if (!args.has('keep')) for (const db of [ours, raw, peer]) await dropDatabase(db);
}
