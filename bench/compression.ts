import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { canonicalJson } from '../src/ledger/hashing.js';
import { intArg } from './lib/args.js';
import { dbUrl, dropDatabase, recreateDatabase, serverVersion } from './lib/pg.js';
import { rolloutEvents, rolloutTemplates } from './lib/seed.js';
import { percentile, publish, type Row } from './lib/table.js';

const NAME = 'compression';
const METHODS = ['pglz', 'lz4'] as const;
type Method = (typeof METHODS)[number];

const median = (values: readonly number[]): number => percentile(values, 50);

/**
 * The event payload columns compressed with LZ4 (migration 001000) against pglz, Postgres's
 * default, on the payload the HTTP append benchmarks record: RolloutPlanned events, whose row is
 * over the 2 kB past which Postgres compresses. Each round inserts the same `--rows` payloads (as
 * jsonb and as their canonical text, as the event table holds them) into a table of each method,
 * in alternating order, then reads every payload back: as its canonical text (as the sequencer
 * reads it), and rendered from its jsonb (as the projections read it). Prints the medians per row.
 *
 * `npm run bench -- compression --rows 10000 --rounds 6`
 */
export async function compression(args: Map<string, string>): Promise<void> {
  const started = new Date();
  const rows = intArg(args, 'rows', 10_000);
  const rounds = intArg(args, 'rounds', 6);
  if (rows < 1 || rounds < 1) throw new Error('--rows and --rounds: at least 1');
  const pgVersion = await serverVersion();
  const db = 'bench_compression';
  const templates = rolloutTemplates();
  const planned = templates.map((_, i) => {
    const e = rolloutEvents(templates, i, randomUUID()).events[0];
    if (e?.type !== 'RolloutPlanned') throw new Error('a scenario does not start with RolloutPlanned');
    return { data: canonicalJson(e.data), metadata: canonicalJson(e.metadata) };
  });
  const insertUs: Record<Method, number[]> = { pglz: [], lz4: [] };
  const readUs: Record<Method, number[]> = { pglz: [], lz4: [] };
  /** The LZ4 table's payloads rendered from their jsonb, as the projections read them. */
  const renderUs: number[] = [];
  const sizes: Record<Method, number> = { pglz: 0, lz4: 0 };
  await recreateDatabase(db);
  const client = new pg.Client({ connectionString: dbUrl(db) });
  await client.connect();
  try {
    const { rows: lz4 } = await client.query<{ ok: boolean }>(
      `select coalesce('lz4' = any(enumvals), false) as ok from pg_settings where name = 'default_toast_compression'`,
    );
    if (!lz4[0]?.ok) throw new Error('this Postgres server was built without LZ4');
    // The payloads once, as text: each round parses and stores them afresh, never copying a datum
    // already compressed (an INSERT … SELECT of stored values would keep their compression).
    await client.query('create table payload (data text, metadata text)');
    await client.query('insert into payload select x ->> 0, x ->> 1 from jsonb_array_elements($1::jsonb) x', [
      JSON.stringify(planned.map((p) => [p.data, p.metadata])),
    ]);
    const copies = Math.ceil(rows / planned.length);
    for (let round = 0; round < rounds; round++) {
      for (const method of round % 2 === 0 ? METHODS : [...METHODS].reverse()) {
        const table = `payload_${method}`;
        await client.query(`drop table if exists ${table}`);
        await client.query(`create table ${table} (
          id bigserial primary key,
          data jsonb compression ${method}, data_jcs text compression ${method},
          metadata jsonb compression ${method}, metadata_jcs text compression ${method})`);
        let t = performance.now();
        const inserted = await client.query(
          `insert into ${table} (data, data_jcs, metadata, metadata_jcs)
           select p.data::jsonb, p.data || '', p.metadata::jsonb, p.metadata || ''
           from payload p, generate_series(1, $1) limit $2`,
          [copies, rows],
        );
        insertUs[method].push(((performance.now() - t) * 1000) / (inserted.rowCount ?? rows));
        // The first scan after a bulk insert also sets every row's hint bits: not part of a read.
        await client.query(`select count(*) from ${table}`);
        t = performance.now();
        await client.query(`select sum(length(data_jcs)) + sum(length(metadata_jcs)) from ${table}`);
        readUs[method].push(((performance.now() - t) * 1000) / rows);
        if (method === 'lz4') {
          t = performance.now();
          await client.query(`select sum(length(data::text)) + sum(length(metadata::text)) from ${table}`);
          renderUs.push(((performance.now() - t) * 1000) / rows);
        }
        const { rows: size } = await client.query<{ bytes: string }>(
          `select pg_total_relation_size('${table}') as bytes`,
        );
        sizes[method] = Number(size[0]?.bytes ?? 0);
      }
    }
  } finally {
    await client.end();
    await dropDatabase(db);
  }
  const command = `npm run bench -- ${NAME} --rows ${rows} --rounds ${rounds}`;
  const payloadBytes = Math.round(planned.reduce((n, p) => n + p.data.length, 0) / planned.length);
  const out: Row[] = [
    {
      figure: 'insert a RolloutPlanned payload, LZ4 (median of rounds)',
      value: median(insertUs.lz4),
      unit: 'µs/row',
      better: 'lower',
      baseline: { label: 'pglz, the default', value: median(insertUs.pglz) },
      command,
      note: `rounds: LZ4 ${insertUs.lz4.map((x) => x.toFixed(1)).join(' ')}; pglz ${insertUs.pglz.map((x) => x.toFixed(1)).join(' ')}`,
    },
    {
      figure: 'read its canonical text back, LZ4 (median of rounds)',
      value: median(readUs.lz4),
      unit: 'µs/row',
      better: 'lower',
      baseline: { label: 'pglz, the default', value: median(readUs.pglz) },
      command,
    },
    {
      figure: 'read the text, against rendering the jsonb as text (LZ4)',
      value: median(readUs.lz4),
      unit: 'µs/row',
      better: 'lower',
      baseline: { label: 'data::text, metadata::text', value: median(renderUs) },
      command,
      note: 'the sequencer reads the stored text; the projections read the jsonb, which is what verification checks (docs/benchmarks.md, session 10)',
    },
    {
      figure: 'table size, LZ4',
      value: sizes.lz4 / 1048576,
      unit: 'MB',
      better: 'lower',
      baseline: { label: 'pglz, the default', value: sizes.pglz / 1048576 },
      command,
    },
  ];
  publish(NAME, started, pgVersion, { rows, rounds }, out, [
    `payload: the ${planned.length} scenarios' RolloutPlanned events, data ${payloadBytes} bytes of canonical JSON on average, stored as jsonb and as text beside metadata, as the event table stores them`,
    'one connection, one statement per insert of all rows: the time is Postgres parsing, compressing and writing them',
  ]);
}
