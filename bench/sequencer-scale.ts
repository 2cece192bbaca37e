import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { openDatabase } from '../src/database/database.js';
import { canonicalJson } from '../src/ledger/hashing.js';
import { type SequencerCursor, unsequencedEvents } from '../src/ledger/ledger.repository.js';
import { REPLAY_ROLLOUT_ID } from '../test/support/scenario-events.js';
import { intArg, listArg } from './lib/args.js';
import { databaseExists, dbUrl, dropDatabase, recreateDatabase, serverVersion } from './lib/pg.js';
import { rawLedgerInsert } from './lib/raw-ledger.js';
import { avgEventsPerRollout, migrate, rolloutTemplates, seedRollouts } from './lib/seed.js';
import { startServer } from './lib/server.js';
import { count, publish, type Row } from './lib/table.js';
import { watchHead } from './sequencer.js';

const NAME = 'sequencer-scale';
const BATCH = 5000; // SEQUENCER_BATCH's default: the service runs with it
/** 100000 → "100k", 10000000 → "10m": database names and labels. */
const label = (n: number) =>
  n >= 1e6 && n % 1e6 === 0 ? `${n / 1e6}m` : n >= 1e3 && n % 1e3 === 0 ? `${n / 1e3}k` : String(n);
const human = (n: number) => label(n).replace(/(\d)([km])$/, (_, d, u) => `${d} ${u === 'k' ? 'k' : 'M'}`);

/** The request id placed in every seeded event's metadata, replaced per rollout. */
const REQUEST_PLACEHOLDER = '00000000-0000-4000-8000-0000000000ff';

interface Definition {
  table: string;
  name: string;
  kind: 'p' | 'u' | 'f' | 'i';
  def: string;
}

/**
 * The primary keys, unique and foreign-key constraints and plain indexes of stream, event and
 * ledger (and the foreign keys pointing at them), as Postgres prints them: dropped before a bulk
 * load and recreated from these very definitions after it, then compared again.
 */
async function definitions(client: pg.Client): Promise<Definition[]> {
  const tables = `('stream'::regclass, 'event'::regclass, 'ledger'::regclass)`;
  const { rows } = await client.query<Definition>(
    `select c.conrelid::regclass::text as "table", c.conname as name, c.contype as kind,
            pg_get_constraintdef(c.oid) as def
       from pg_constraint c
      where c.contype in ('p', 'u', 'f') and (c.conrelid in ${tables} or c.confrelid in ${tables})
     union all
     select i.indrelid::regclass::text, x.relname, 'i', pg_get_indexdef(i.indexrelid)
       from pg_index i join pg_class x on x.oid = i.indexrelid
      where i.indrelid in ${tables}
        and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)
     order by 1, 2`,
  );
  return rows;
}

/**
 * `events` already-sequenced events of realistic rollouts (the 13 conformance scenarios, with
 * the same metadata as the backlog), written set-based: per chunk one INSERT … SELECT of streams
 * and one of events plus their ledger rows, each chunk its own transaction (so its own tx_id, in
 * increasing order as real appends get them). The constraints and indexes are dropped for the
 * load and recreated after it from their own definitions; then the cursor, the chain head and
 * the projections' checkpoints are set at the end of this history, as if the service had
 * sequenced and projected it, and the tables are vacuumed and analysed (autovacuum is off).
 *
 * Hashes of the history are placeholders of the right shape (SHA-256 hex of the position or
 * stream version), not the service's chain: nothing at start or in sequencing reads them but the
 * head hash, which the next entry links to. A verify of the whole ledger would fail on them.
 */
async function seedHistory(db: string, events: number, chunkEvents: number): Promise<void> {
  const templates = rolloutTemplates();
  const client = new pg.Client({ connectionString: dbUrl(db) });
  await client.connect();
  const started = performance.now();
  try {
    await client.query(`set synchronous_commit = off`);
    await client.query(`set maintenance_work_mem = '1GB'`);
    await client.query(
      `create table bench_seed_template (scenario int, n int, type text, data_jcs text, metadata_jcs text,
         primary key (scenario, n))`,
    );
    const metadataJcs = canonicalJson({
      actor: { id: 'key-bench', name: 'bench-pipeline', role: 'engineer' },
      requestId: REQUEST_PLACEHOLDER,
      source: 'rest',
      requestDigest: '0'.repeat(64),
    });
    for (const [s, t] of templates.entries()) {
      for (const [i, e] of t.events.entries()) {
        await client.query(`insert into bench_seed_template values ($1, $2, $3, $4, $5)`, [
          s,
          i + 1,
          e.type,
          canonicalJson(JSON.parse(e.dataJson)),
          metadataJcs,
        ]);
      }
    }
    // Whole rollouts up to `events` events.
    let rollouts = 0;
    for (let n = 0; n < events; rollouts++) n += templates[rollouts % templates.length]?.events.length ?? 0;
    const perChunk = Math.max(1, Math.round(chunkEvents / avgEventsPerRollout(templates)));

    const before = await definitions(client);
    for (const d of before.filter((d) => d.kind === 'f'))
      await client.query(`alter table ${d.table} drop constraint ${d.name}`);
    for (const d of before.filter((d) => d.kind === 'p' || d.kind === 'u'))
      await client.query(`alter table ${d.table} drop constraint ${d.name}`);
    for (const d of before.filter((d) => d.kind === 'i')) await client.query(`drop index ${d.name}`);

    const S = templates.length;
    // Rollout i: stream rollout-<uuid from i>, appended 30 s after rollout i-1, ending now.
    const rolloutRows = (from: number, to: number) => `
      select i, md5('h' || i)::uuid::text as rid, 'rollout-' || md5('h' || i)::uuid::text as sid,
             md5('q' || i)::uuid::text as req, i % ${S} as s,
             now() - (${rollouts} - i) * interval '30 seconds' as ts
        from generate_series(${from}, ${to - 1}) i`;
    const hex = (text: string) => `encode(sha256(convert_to(${text}, 'UTF8')), 'hex')`;
    let position = 0;
    let last = performance.now();
    for (let from = 0; from < rollouts; from += perChunk) {
      const to = Math.min(rollouts, from + perChunk);
      await client.query(
        `insert into stream (stream_id, stream_type, version, head_hash, created_at, updated_at)
         select r.sid, 'rollout', c.k, ${hex(`r.sid || ':' || c.k`)}, r.ts, r.ts
           from (${rolloutRows(from, to)}) r
           join (select scenario, count(*) as k from bench_seed_template group by scenario) c on c.scenario = r.s`,
      );
      const res = await client.query(
        `with ins as (
           insert into event (event_id, stream_id, stream_version, type, schema_version, data, metadata,
                              recorded_at, prev_hash, hash, data_jcs, metadata_jcs)
           select gen_random_uuid(), r.sid, t.n, t.type, 1, d.jcs::jsonb, m.jcs::jsonb, r.ts,
                  case when t.n = 1 then repeat('0', 64) else ${hex(`r.sid || ':' || (t.n - 1)`)} end,
                  ${hex(`r.sid || ':' || t.n`)}, d.jcs, m.jcs
             from (${rolloutRows(from, to)}) r
             join bench_seed_template t on t.scenario = r.s
             cross join lateral (select replace(t.data_jcs, '${REPLAY_ROLLOUT_ID}', r.rid)) d(jcs)
             cross join lateral (select replace(t.metadata_jcs, '${REQUEST_PLACEHOLDER}', r.req)) m(jcs)
            order by r.i, t.n
           returning id, recorded_at)
         insert into ledger (position, event_row_id, prev_hash, hash, sequenced_at)
         select p, id, case when p = 1 then repeat('0', 64) else ${hex(`'ledger:' || (p - 1)`)} end,
                ${hex(`'ledger:' || p`)}, recorded_at + interval '50 milliseconds'
           from (select ${position} + row_number() over (order by id) as p, id, recorded_at from ins) x`,
      );
      position += res.rowCount ?? 0;
      if (performance.now() - last > 5000 || to === rollouts) {
        last = performance.now();
        const s = (last - started) / 1000;
        console.log(
          `  ${db}: ${count(position)}/${count(events)} events, ${count(to)}/${count(rollouts)} rollouts, ${count(position / s)} events/s, ${s.toFixed(0)} s`,
        );
      }
    }

    let t = performance.now();
    for (const d of before.filter((d) => d.kind === 'p' || d.kind === 'u'))
      await client.query(`alter table ${d.table} add constraint ${d.name} ${d.def}`);
    for (const d of before.filter((d) => d.kind === 'i')) await client.query(d.def);
    console.log(`  ${db}: keys and indexes built in ${((performance.now() - t) / 1000).toFixed(0)} s`);
    t = performance.now();
    for (const d of before.filter((d) => d.kind === 'f'))
      await client.query(`alter table ${d.table} add constraint ${d.name} ${d.def}`);
    console.log(`  ${db}: foreign keys validated in ${((performance.now() - t) / 1000).toFixed(0)} s`);
    const after = await definitions(client);
    if (JSON.stringify(after) !== JSON.stringify(before))
      throw new Error(
        `${db}: the schema after the load differs from the migrations':\n${JSON.stringify({ before, after }, null, 1)}`,
      );
    await client.query(`drop table bench_seed_template`);

    // The service's state at the end of this history: cursor, head, projections caught up.
    await client.query(
      `update sequencer_state s
          set position = $1, head_hash = l.hash, tx_id = e.tx_id, event_row_id = e.id
         from ledger l join event e on e.id = l.event_row_id
        where s.id = 1 and l.position = $1`,
      [position],
    );
    await client.query(`update projection_checkpoint set position = $1, updated_at = now()`, [position]);
    t = performance.now();
    await client.query(`vacuum analyze stream, event, ledger, sequencer_state, projection_checkpoint`);
    await client.query(`checkpoint`);
    console.log(
      `  ${db}: vacuum analyze + checkpoint ${((performance.now() - t) / 1000).toFixed(0)} s; history of ${count(position)} events seeded in ${((performance.now() - started) / 1000).toFixed(0)} s`,
    );
  } finally {
    await client.end();
  }
}

interface State extends SequencerCursor {
  position: number;
}

async function sequencerState(client: pg.Client): Promise<State> {
  const { rows } = await client.query<{ position: string; tx_id: string; event_row_id: string }>(
    'select position, tx_id::text, event_row_id from sequencer_state where id = 1',
  );
  const r = rows[0];
  if (!r) throw new Error('no sequencer_state row');
  return { position: Number(r.position), tx_id: r.tx_id, event_row_id: Number(r.event_row_id) };
}

const loadAverage = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');

/**
 * Walks the events after `from` in the sequencer's batches with its read statement (the one
 * `sequenceBatchInNode` sends; `sequence_ledger`, migrations 001100 and 001200, runs the same
 * read inside Postgres, planned with each call's cursor by EXECUTE), `passes` times, alternating
 * the service's database layer (Kysely on its pg pool, its type parsers) with node-postgres
 * running the same compiled SQL and returning text: events per second of each, the median pass.
 */
async function readWalks(db: string, from: SequencerCursor, passes: number) {
  const handle = await openDatabase({ database: { kind: 'postgres', url: dbUrl(db), poolMax: 1 } });
  const raw = new pg.Client({
    connectionString: dbUrl(db),
    types: { getTypeParser: () => (v: string) => v },
  });
  await raw.connect();
  const ours: number[] = [];
  const base: number[] = [];
  let events = 0;
  try {
    for (let p = 0; p < passes; p++) {
      for (const which of ['ours', 'raw'] as const) {
        let cursor = from;
        let n = 0;
        const t = performance.now();
        for (;;) {
          const query = unsequencedEvents(handle.db, cursor, BATCH);
          let last: SequencerCursor | undefined;
          let got: number;
          if (which === 'ours') {
            const rows = await query.execute();
            got = rows.length;
            const r = rows.at(-1);
            if (r) last = { tx_id: r.tx_id, event_row_id: r.id };
          } else {
            const c = query.compile();
            const { rows } = await raw.query<{ tx_id: string; id: string }>(c.sql, c.parameters as unknown[]);
            got = rows.length;
            const r = rows.at(-1);
            if (r) last = { tx_id: r.tx_id, event_row_id: Number(r.id) };
          }
          n += got;
          if (!last || got < BATCH) break;
          cursor = last;
        }
        const rate = n / ((performance.now() - t) / 1000);
        (which === 'ours' ? ours : base).push(rate);
        events = n;
      }
    }
    // The plan of the first batch, as the sequencer ran it.
    const c = unsequencedEvents(handle.db, from, BATCH).compile();
    const { rows } = await raw.query<{ 'QUERY PLAN': string }>(
      `explain (analyze, buffers) ${c.sql}`,
      c.parameters as unknown[],
    );
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
    return {
      ours: median(ours),
      raw: median(base),
      events,
      plan: rows.map((r) => r['QUERY PLAN']),
      sql: c.sql,
    };
  } finally {
    await raw.end();
    await handle.close();
  }
}

interface Measured {
  history: number;
  backlog: number;
  sequencedPerSec: number;
  firstToLastMs: number;
  wholeSeconds: number;
  batches: number;
  readOurs: number;
  readRaw: number;
  rawInsertPerSec: number;
  plan: string[];
  load: string;
  tableMb: number;
}

/**
 * One round on one database: a backlog of whole rollouts appended through EventStore.append with
 * the service stopped, then the service (sequencer and projections) started to work it off; the
 * rate from its first batch to its last, as the `sequencer` bench measures it. Then the read
 * walks and the plan, and raw Postgres writing the same ledger rows in one INSERT … SELECT.
 */
async function round(db: string, backlogEvents: number): Promise<Measured> {
  const templates = rolloutTemplates();
  const client = new pg.Client({ connectionString: dbUrl(db) });
  await client.connect();
  try {
    const before = await sequencerState(client);
    await seedRollouts(db, Math.ceil(backlogEvents / avgEventsPerRollout(templates)));
    // Counted once, on the index from the cursor (a count(*) of the table would scan 10 M rows).
    const { rows } = await client.query<{ n: string }>(
      `select count(*) as n from event where (tx_id, id) > ($1::xid8, $2::bigint)`,
      [before.tx_id, before.event_row_id],
    );
    const backlog = Number(rows[0]?.n);
    const target = before.position + backlog;
    const { rows: size } = await client.query<{ mb: string }>(
      `select pg_total_relation_size('event') / 1048576 as mb`,
    );
    const load = loadAverage();

    const watch = watchHead(db);
    const t0 = performance.now();
    const server = await startServer({ databaseUrl: dbUrl(db), env: { SEQUENCER_POLL_MS: '500' } });
    let wholeSeconds: number;
    try {
      for (;;) {
        if ((await sequencerState(client)).position >= target) break;
        await sleep(50);
      }
      wholeSeconds = (performance.now() - t0) / 1000;
    } finally {
      await server.stop();
    }
    const samples = (await watch.stop()).samples.filter(([, p]) => p > before.position);
    const first = samples[0];
    const last = samples.at(-1);
    if (!first || !last || last[0] <= first[0])
      throw new Error(`${db}: the backlog was sequenced in one batch`);
    const sequencedPerSec = ((last[1] - first[1]) / (last[0] - first[0])) * 1000;

    const walks = await readWalks(db, before, 3);
    if (walks.events !== backlog) throw new Error(`${db}: read ${walks.events} events, expected ${backlog}`);

    const raw = await rawLedgerInsert(db, before);
    return {
      history: before.position,
      backlog,
      sequencedPerSec,
      firstToLastMs: last[0] - first[0],
      wholeSeconds,
      batches: samples.length,
      readOurs: walks.ours,
      readRaw: walks.raw,
      rawInsertPerSec: raw.rows / raw.seconds,
      plan: walks.plan,
      load,
      tableMb: Number(size[0]?.mb),
    };
  } finally {
    await client.end();
  }
}

/**
 * Issue 7: "reads at the same rate at 10 M events as at 100 k". One database per history size
 * (`--sizes`, events already sequenced, seeded set-based), then `--rounds` rounds, alternating
 * the sizes, each appending a backlog of about `--backlog` events through the normal append path
 * and letting the real service sequence it. Prints the rates at each size and large ÷ small.
 */
export async function sequencerScale(args: Map<string, string>): Promise<void> {
  const started = new Date();
  const sizes = listArg(args, 'sizes', [100_000, 10_000_000]);
  const backlog = intArg(args, 'backlog', 100_000);
  // The rate is taken from the first batch seen to the last: a backlog of a few batches gives
  // mostly the wait between them (the service's poll), not its rate.
  if (backlog < 4 * BATCH)
    throw new Error(
      `--backlog ${backlog}: at least ${4 * BATCH} events (four sequencer batches) to measure a rate`,
    );
  const rounds = intArg(args, 'rounds', 2);
  const chunk = intArg(args, 'chunk', 20_000);
  const reuse = args.has('reuse');
  const pgVersion = await serverVersion();
  const dbs = sizes.map((n) => `bench_seqread_${label(n)}`);
  for (const [i, n] of sizes.entries()) {
    const db = dbs[i] as string;
    if (reuse && (await databaseExists(db))) {
      console.log(`  ${db}: reused (--reuse)`);
      continue;
    }
    await recreateDatabase(db);
    await migrate(db);
    await seedHistory(db, n, chunk);
  }

  const results: Measured[][] = sizes.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (const [i, db] of dbs.entries()) {
      console.log(`  round ${r + 1}, ${db}: appending a backlog of about ${count(backlog)} events`);
      const m = await round(db, backlog);
      console.log(
        `  round ${r + 1}, ${db}: history ${count(m.history)}, backlog ${count(m.backlog)}: sequenced ${count(m.sequencedPerSec)} events/s, read ${count(m.readOurs)} (raw ${count(m.readRaw)}) events/s, load ${m.load}`,
      );
      results[i]?.push(m);
    }
  }

  const cmd = `npm run bench -- ${NAME} --sizes ${sizes.join(',')} --backlog ${backlog} --rounds ${rounds}${reuse ? ' --reuse' : ''}`;
  const rows: Row[] = [];
  const small = results[0] as Measured[];
  for (const [i, ms] of results.entries()) {
    for (const [r, m] of ms.entries()) {
      const h = `${human(sizes[i] as number)} history, round ${r + 1}`;
      rows.push(
        {
          figure: `sequencing (service), ${h}`,
          value: m.sequencedPerSec,
          unit: 'events/s',
          better: 'higher',
          baseline: { label: 'raw INSERT … SELECT of the same ledger rows', value: m.rawInsertPerSec },
          command: cmd,
          note: `${count(m.history)} events already sequenced (event table ${count(m.tableMb)} MB), backlog ${count(m.backlog)} appended through EventStore.append with the service stopped; ${m.batches} batches seen, first to last in ${count(m.firstToLastMs)} ms; ${m.wholeSeconds.toFixed(1)} s from spawn to caught up; load average ${m.load} before the start`,
        },
        {
          figure: `  read statement (service's Kysely), ${h}`,
          value: m.readOurs,
          unit: 'events/s',
          better: 'higher',
          baseline: { label: 'same SQL, node-postgres, text rows', value: m.readRaw },
          command: cmd,
        },
      );
      if (i > 0) {
        const s = small[r] as Measured;
        rows.push(
          {
            figure: `  ${human(sizes[i] as number)} ÷ ${human(sizes[0] as number)}, sequencing, round ${r + 1}`,
            value: m.sequencedPerSec,
            unit: 'events/s',
            better: 'higher',
            baseline: {
              label: `service at ${human(sizes[0] as number)}, same round`,
              value: s.sequencedPerSec,
            },
            command: cmd,
          },
          {
            figure: `  ${human(sizes[i] as number)} ÷ ${human(sizes[0] as number)}, read (service), round ${r + 1}`,
            value: m.readOurs,
            unit: 'events/s',
            better: 'higher',
            baseline: { label: `read at ${human(sizes[0] as number)}, same round`, value: s.readOurs },
            command: cmd,
          },
          {
            figure: `  ${human(sizes[i] as number)} ÷ ${human(sizes[0] as number)}, read (raw), round ${r + 1}`,
            value: m.readRaw,
            unit: 'events/s',
            better: 'higher',
            baseline: { label: `raw read at ${human(sizes[0] as number)}, same round`, value: s.readRaw },
            command: cmd,
          },
        );
      }
    }
  }
  for (const [i, ms] of results.entries()) {
    const m = ms[0];
    if (!m) continue;
    console.log(
      `\nEXPLAIN (ANALYZE, BUFFERS) of the first batch's read, ${count(m.history)} events sequenced:`,
    );
    console.log(m.plan.map((l) => `  ${l}`).join('\n'));
    if (i === 0) console.log('');
  }
  publish(NAME, started, pgVersion, { sizes: sizes.join(','), backlog, rounds, chunk, reuse }, rows, [
    `the history is seeded set-based (INSERT … SELECT per ${count(chunk)} events, each chunk its own transaction), with keys and indexes built after the load from the migrations' own definitions, checked identical; VACUUM ANALYZE after it (autovacuum is off here). Its hashes are placeholders: the service reads only the head hash`,
    'the service runs with its defaults (SEQUENCER_BATCH 5000, poll 500 ms) and its projections, which start at the end of the history and project the backlog beside the sequencer',
    'ratios in the "÷" rows are the large history over the small one in the same round, not ours ÷ raw',
    ...results.flatMap((ms, i) =>
      (ms[0]?.plan ?? []).map((l) => `plan at ${human(sizes[i] as number)}: ${l}`),
    ),
  ]);
  if (!args.has('keep')) for (const db of dbs) await dropDatabase(db);
}
