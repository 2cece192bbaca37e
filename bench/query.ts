import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { DatabaseHandle } from '../src/database/database.js';
import type { Database } from '../src/database/schema.js';
import { EventStore } from '../src/event-store/event-store.repository.js';
import { MetricsService } from '../src/metrics/metrics.service.js';
import { ProjectionsRepository } from '../src/projections/projections.repository.js';
import { encodeCursor } from '../src/rollouts/rollouts.dto.js';
import {
  ROLLOUT_SUMMARY,
  type RolloutListFilter,
  RolloutsRepository,
  summaryTable,
} from '../src/rollouts/rollouts.repository.js';
import { RolloutsService } from '../src/rollouts/rollouts.service.js';
import { CACHE_FILE } from '../src/service-bundle.js';
import type { AppendLoadResult } from './lib/append-load.js';
import { intArg } from './lib/args.js';
import type { PathsResult, PathsSpec } from './lib/autocannon-paths.js';
import {
  adminQuery,
  dbUrl,
  dropDatabase,
  ledgerStateSafe,
  recreateDatabase,
  serverVersion,
} from './lib/pg.js';
import { run, shellLine } from './lib/proc.js';
import type { RawQueryResult, RawQuerySpec, RawRequest } from './lib/raw-query.js';
import { avgEventsPerRollout, ledgerState, migrate, rolloutTemplates, seedRollouts } from './lib/seed.js';
import { authHeaders, SERVICE_MAIN, startServer } from './lib/server.js';
import { publish, type Row } from './lib/table.js';

const NAME = 'query';

/**
 * Other engineers rebuild dist/ on this machine (nest build empties it first): wait until
 * dist/src/bundle/main.js and the bundle's code cache are back and have not changed for 5 s
 * before starting the service.
 */
async function waitForBuild(): Promise<void> {
  const main = SERVICE_MAIN;
  for (let waited = 0, stable = 0, last = -1; waited < 300_000; waited += 1000) {
    // The build writes the bundle's code cache last, after main.js.
    const cache = path.join(path.dirname(main), CACHE_FILE);
    const m =
      existsSync(main) && existsSync(cache) ? Math.max(statSync(main).mtimeMs, statSync(cache).mtimeMs) : -1;
    stable = m > 0 && m === last ? stable + 1 : 0;
    last = m;
    if (stable >= 5) return;
    if (waited > 0 && waited % 10_000 === 0)
      console.log('  waiting for dist/src/bundle/main.js (a build is running)…');
    await sleep(1000);
  }
  throw new Error('dist/src/bundle/main.js did not come back: run `npm run build`');
}

/**
 * Seeds `rollouts` rollouts, then runs the built service until every event is sequenced and
 * every active projection (the rollout list among them) has reached the head, printing
 * progress. With `reuse`, a database already holding `rollouts` rollouts is kept and only waited
 * for (or topped up when it holds fewer).
 */
async function prepare(
  db: string,
  rollouts: number,
  workers: number,
  reuse: boolean,
  seedOnly: boolean,
): Promise<string[]> {
  const notes: string[] = [];
  let seeded = false;
  if (reuse) {
    const s = await ledgerStateSafe(db);
    seeded = s !== undefined && s.rollouts >= rollouts;
    if (s !== undefined && s.rollouts > 0 && s.rollouts < rollouts) {
      // A database seeded to a smaller size: top it up with more rollouts rather than start over.
      console.log(`  topping up ${db} from ${s.rollouts} to ${rollouts} rollouts`);
      const t = performance.now();
      await seedRollouts(db, rollouts - s.rollouts, workers);
      notes.push(
        `seeding topped up from ${s.rollouts} to ${rollouts} rollouts (in-process EventStore.append, ${workers} at a time, synchronous_commit off) in ${((performance.now() - t) / 1000).toFixed(0)} s`,
      );
      seeded = true;
    } else {
      console.log(
        seeded ? `  reusing ${db} (${s?.rollouts} rollout streams)` : '  nothing to reuse: seeding',
      );
    }
  }
  if (!seeded) {
    await recreateDatabase(db);
    await migrate(db);
    const t = performance.now();
    await seedRollouts(db, rollouts, workers);
    notes.push(
      `seeding (in-process EventStore.append, one append per rollout, ${workers} at a time, synchronous_commit off) took ${((performance.now() - t) / 1000).toFixed(0)} s`,
    );
  }
  if (seedOnly) return notes;
  await waitForBuild();
  const server = await startServer({
    databaseUrl: dbUrl(db),
    env: { SEQUENCER_POLL_MS: '50', DB_POOL_MAX: '4' },
    timeoutMs: 120_000,
  });
  try {
    const waitStarted = performance.now();
    const from = (await ledgerState(db)).projection;
    for (let last = 0; ; ) {
      const s = await ledgerState(db);
      if (s.head >= s.events && s.projection >= s.head) {
        const msg = `sequencer and projections (the rollout list among them) reached the head, ${s.head.toLocaleString('en-US')} events, ${((performance.now() - waitStarted) / 1000).toFixed(0)} s after the service started`;
        console.log(`  ${msg}`);
        notes.push(msg);
        break;
      }
      if (performance.now() - last > 10_000) {
        last = performance.now();
        const s2 = (performance.now() - waitStarted) / 1000;
        console.log(
          `  catching up (${s2.toFixed(0)} s): ${s.events.toLocaleString('en-US')} events, sequenced ${s.head.toLocaleString('en-US')}, projections at ${s.projection.toLocaleString('en-US')} (${Math.round((s.projection - from) / Math.max(s2, 1)).toLocaleString('en-US')} events/s)`,
        );
      }
      await sleep(1000);
    }
  } finally {
    await server.stop();
  }
  // Autovacuum is off on this server: nothing else would ever give the planner statistics.
  const t = performance.now();
  await adminQuery('analyze', [], db);
  notes.push(
    `ANALYZE after seeding (${((performance.now() - t) / 1000).toFixed(1)} s): autovacuum is off on this server, and without statistics the planner mis-plans reads of the seeded tables (docs/operations.md)`,
  );
  return notes;
}

/** One measured kind of request: the HTTP paths autocannon cycles through, and the same SQL raw. */
interface Kind {
  name: string;
  paths: string[];
  /** The statements the route runs for each path, same order, same parameters. */
  sql: RawRequest[];
}

/**
 * The SQL the routes run, captured from the service's own code (RolloutsRepository.list,
 * RolloutsService.get) on a Kysely instance that logs every compiled query: the same
 * statements and parameters, not a hand-written copy.
 */
function capturingRepos(db: string) {
  const captured: { sql: string; params: unknown[] }[] = [];
  pg.types.setTypeParser(20, (v: string) => Number(v));
  const kysely = new Kysely<Database>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: dbUrl(db), max: 2 }) }),
    log: (e) => {
      if (e.level === 'query') captured.push({ sql: e.query.sql, params: [...e.query.parameters] });
    },
  });
  const handle = { kind: 'postgres', db: kysely } as unknown as DatabaseHandle;
  const projections = new ProjectionsRepository(handle);
  const rollouts = new RolloutsRepository(handle, projections);
  const store = new EventStore(handle);
  const service = new RolloutsService(store, rollouts, new MetricsService());
  const take = async (work: () => Promise<unknown>): Promise<RawRequest> => {
    captured.length = 0;
    await work();
    return captured.splice(0);
  };
  return {
    servedVersion: () => projections.activeVersion(ROLLOUT_SUMMARY),
    // As a running service does after its first list: it knows the served version already.
    list: async (f: RolloutListFilter) => {
      await projections.activeVersion(ROLLOUT_SUMMARY);
      return take(() => rollouts.list(f));
    },
    // As a running service does once it has read the rollout: its fold is cached, so the
    // statement reads the stream from that version on (the head only, when nothing was appended).
    get: async (id: string) => {
      await service.get(id);
      return take(() => service.get(id));
    },
    kysely,
  };
}

const qs = (o: Record<string, string | number>) =>
  Object.entries(o)
    .map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`)
    .join('&');

/**
 * Realistic filters from the data: the rarest product and the rarest environment+status pair (the
 * seeded scenarios have two products, one of them in every rollout, and one environment, so the
 * rarest are the only selective filters), and a page in the middle of the whole list.
 */
async function chooseKinds(db: string, sampleIds: number): Promise<{ kinds: Kind[]; notes: string[] }> {
  const repos = capturingRepos(db);
  const notes: string[] = [];
  try {
    // The served version: a database kept from an earlier run may have rebuilt the list since.
    const table = summaryTable(await repos.servedVersion());
    const [product] = await adminQuery<{ p: string; n: string; total: string }>(
      `select p, count(*) as n, (select count(*) from ${table}) as total
         from ${table}, unnest(products) p group by p order by count(*), p limit 1`,
      [],
      db,
    );
    const [envStatus] = await adminQuery<{ environment: string; status: string; n: string }>(
      `select environment, status, count(*) as n from ${table} where environment is not null
        group by environment, status order by count(*), environment, status limit 1`,
      [],
      db,
    );
    const [total] = await adminQuery<{ n: string }>(`select count(*) as n from ${table}`, [], db);
    const rows = Number(total?.n);
    const [mid] = await adminQuery<{ created_at: Date; rollout_id: string }>(
      `select created_at, rollout_id from ${table} order by created_at desc, rollout_id desc offset $1 limit 1`,
      [Math.floor(rows / 2)],
      db,
    );
    const ids = (
      await adminQuery<{ rollout_id: string }>(
        `select rollout_id from ${table} order by md5(rollout_id::text) limit $1`,
        [sampleIds],
        db,
      )
    ).map((r) => r.rollout_id);
    if (!product || !envStatus || !mid) throw new Error('the projection is empty');
    notes.push(
      `filters: product=${product.p} matches ${product.n} of ${product.total} rollouts; environment=${envStatus.environment}&status=${envStatus.status} matches ${envStatus.n}; the cursor is the row at offset ${Math.floor(rows / 2).toLocaleString('en-US')} (page ${Math.floor(rows / 2 / 50) + 1} at 50 per page); GET /:id cycles through ${ids.length} rollout ids sampled across the seeded ones`,
    );
    const cursor = encodeCursor(mid.created_at.toISOString(), mid.rollout_id);
    const listKind = async (name: string, query: Record<string, string | number>): Promise<Kind> => {
      const filter: RolloutListFilter = {
        status: query.status as string | undefined,
        product: query.product as string | undefined,
        environment: query.environment as string | undefined,
        limit: Number(query.limit ?? 50),
        cursor:
          query.cursor === undefined
            ? undefined
            : { createdAt: mid.created_at.toISOString(), id: mid.rollout_id },
      };
      return { name, paths: [`/api/v1/rollouts?${qs(query)}`], sql: [await repos.list(filter)] };
    };
    const kinds: Kind[] = [
      await listKind(`list ?product=${product.p}`, { product: product.p }),
      await listKind(`list ?environment=${envStatus.environment}&status=${envStatus.status}`, {
        environment: envStatus.environment,
        status: envStatus.status,
      }),
      await listKind('list ?cursor=(mid-table page)', { cursor }),
    ];
    const getSql: RawRequest[] = [];
    for (const id of ids) getSql.push(await repos.get(id));
    kinds.push({ name: 'get /:id', paths: ids.map((id) => `/api/v1/rollouts/${id}`), sql: getSql });
    return { kinds, notes };
  } finally {
    await repos.kysely.destroy();
  }
}

const DIST_LIB = path.resolve('dist-bench/bench/lib');

async function childJson<T>(script: string, args: string[]): Promise<T> {
  const r = await run(process.execPath, [path.join(DIST_LIB, script), ...args]);
  if (r.code !== 0) throw new Error(`${script} failed (${r.code}): ${r.stderr.slice(0, 2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '') as T;
}

function writeSpec(name: string, spec: unknown): string {
  mkdirSync('bench-output', { recursive: true });
  const file = path.join('bench-output', name);
  writeFileSync(file, `${JSON.stringify(spec, null, 1)}\n`);
  return file;
}

/** EXPLAIN (ANALYZE, BUFFERS) of each statement: the plan's scan nodes and the execution time. */
async function explain(db: string, kind: Kind): Promise<{ summary: string; text: string }> {
  const client = new pg.Client({ connectionString: dbUrl(db) });
  await client.connect();
  try {
    const parts: string[] = [];
    const texts: string[] = [];
    for (const s of kind.sql[0] ?? []) {
      const { rows } = await client.query<{ 'QUERY PLAN': string }>(
        `explain (analyze, buffers) ${s.sql}`,
        s.params,
      );
      const lines = rows.map((r) => r['QUERY PLAN']);
      texts.push(`-- ${kind.name}\n-- ${s.sql}\n-- params ${JSON.stringify(s.params)}\n${lines.join('\n')}`);
      const nodes = lines
        .filter((l) => /Scan|Sort|Join|Nested Loop|Limit/.test(l))
        .map((l) =>
          l
            .replace(/->/g, '')
            .replace(/\(cost=[^)]*\)/, '')
            .replace(/\(actual time=([\d.]+)\.\.([\d.]+) rows=(\d+) loops=(\d+)\)/, '(rows=$3, loops=$4)')
            .trim(),
        );
      const exec = lines.find((l) => l.startsWith('Execution Time'))?.replace('Execution Time: ', '') ?? '?';
      const buffers = lines.find((l) => l.trim().startsWith('Buffers'))?.trim() ?? '';
      const table = /from "([a-z_0-9]+)"/.exec(s.sql)?.[1] ?? 'sql';
      parts.push(`${table}: ${nodes.join(' / ')}; ${buffers}; execution ${exec}`);
    }
    return {
      summary: `EXPLAIN (ANALYZE, BUFFERS), ${kind.name}: ${parts.join(' || ')}`,
      text: texts.join('\n\n'),
    };
  } finally {
    await client.end();
  }
}

/**
 * Issue 7 item 4: GET /api/v1/rollouts (filters, keyset cursor) and GET /api/v1/rollouts/:id at
 * ~1 M events, under concurrent appends, against the same SQL run raw at the same concurrency.
 */
export async function query(args: Map<string, string>): Promise<void> {
  const startedAt = new Date();
  const rollouts = intArg(args, 'rollouts', 85_000);
  const workers = intArg(args, 'workers', 8);
  const seconds = intArg(args, 'duration', 15);
  const connections = intArg(args, 'connections', 16);
  const appendRate = intArg(args, 'append-rate', 10);
  const poolMax = 20;
  const db = args.get('db') ?? `bench_query_${rollouts}`;
  const pgVersion = await serverVersion();
  const command = `npm run bench -- ${NAME} --rollouts ${rollouts}${args.has('db') ? ` --db ${db}` : ''} --duration ${seconds} --connections ${connections} --append-rate ${appendRate}`;
  console.log(
    `${NAME}: ${rollouts.toLocaleString('en-US')} rollouts (~${Math.round(rollouts * avgEventsPerRollout(rolloutTemplates())).toLocaleString('en-US')} events) in database ${db}`,
  );
  const notes = await prepare(db, rollouts, workers, args.has('reuse'), args.has('seed-only'));
  if (args.has('prepare-only') || args.has('seed-only')) {
    for (const n of notes) console.log(`  note: ${n}`);
    return;
  }
  const before = await ledgerState(db);
  const chosen = await chooseKinds(db, 1000);
  // --kinds product,get: only the kinds whose name holds one of these words (a shorter run for an
  // A/B of one route; the others wait for the bench lock meanwhile).
  const only = args.get('kinds')?.split(',');
  const kinds = chosen.kinds.filter((k) => !only || only.some((w) => k.name.includes(w)));
  const kindNotes = chosen.notes;
  notes.push(...kindNotes);
  const plans: string[] = [];
  for (const k of kinds) {
    const e = await explain(db, k);
    notes.push(e.summary);
    plans.push(e.text);
  }
  mkdirSync('bench-output', { recursive: true });
  writeFileSync(path.join('bench-output', 'query-plans.txt'), `${plans.join('\n\n')}\n`);

  // The service as deployed: sequencer and projections on (they sequence and project the
  // concurrent appends during both phases, so Postgres sees the same writes while the raw
  // baseline runs), pool of 20.
  await waitForBuild();
  const server = await startServer({
    databaseUrl: dbUrl(db),
    env: { DB_POOL_MAX: String(poolMax), SEQUENCER_POLL_MS: '50' },
    timeoutMs: 120_000,
  });
  let appender: ChildProcess | undefined;
  const rows: Row[] = [];
  const uptimes: string[] = [];
  try {
    appender = spawn(process.execPath, [path.join(DIST_LIB, 'append-load.js'), db, String(appendRate), '4'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let appendOut = '';
    appender.stdout?.setEncoding('utf8').on('data', (d: string) => {
      appendOut += d;
    });
    const appenderDone = new Promise<void>((resolve) => appender?.on('close', () => resolve()));
    const appendCmd = shellLine('node', ['dist-bench/bench/lib/append-load.js', db, String(appendRate), '4']);
    for (const k of kinds) {
      const slug = k.name
        .replace(/[^a-z0-9]+/gi, '-')
        .replace(/^-|-$/g, '')
        .toLowerCase();
      const acSpec: PathsSpec = {
        url: server.url,
        paths: k.paths,
        connections,
        seconds,
        headers: authHeaders,
      };
      // Untimed warm-up of the route (JIT, pool connections, caches).
      await childJson<PathsResult>('autocannon-paths.js', [
        writeSpec(`query-${slug}.warmup.json`, { ...acSpec, seconds: 2 }),
      ]);
      const acFile = writeSpec(`query-${slug}.autocannon.json`, acSpec);
      console.log(`  ${k.name}: ours (${seconds} s, ${connections} connections)…`);
      const ours = await childJson<PathsResult>('autocannon-paths.js', [acFile]);
      if (ours.non2xx > 0 || ours.errors > 0)
        throw new Error(`${k.name}: ${ours.non2xx} non-2xx, ${ours.errors} errors`);
      const rawSpec: RawQuerySpec = {
        url: dbUrl(db),
        requests: k.sql,
        concurrency: connections,
        seconds,
        poolMax,
      };
      const rawFile = writeSpec(`query-${slug}.raw.json`, rawSpec);
      console.log(`  ${k.name}: raw SQL…`);
      const raw = await childJson<RawQueryResult>('raw-query.js', [rawFile]);
      uptimes.push(
        `${new Date().toISOString().slice(11, 19)} load ${(await run('cat', ['/proc/loadavg'])).stdout.split(' ').slice(0, 3).join(' ')}`,
      );
      const oursCmd = `${shellLine('node', ['dist-bench/bench/lib/autocannon-paths.js', acFile])}  (${command})`;
      const rawCmd = shellLine('node', ['dist-bench/bench/lib/raw-query.js', rawFile]);
      const label = `same ${k.sql[0]?.length ?? 0} statement(s) via node-postgres, ${connections} in flight`;
      rows.push(
        {
          figure: `${k.name}: p50`,
          value: ours.p50Ms,
          unit: 'ms',
          better: 'lower',
          baseline: { label, value: raw.p50Ms },
          command: oursCmd,
          note: `raw: ${rawCmd}; autocannon's own histogram (whole ms): p50 ${ours.autocannonP50Ms}, p99 ${ours.autocannonP99Ms}`,
        },
        {
          figure: `${k.name}: p99`,
          value: ours.p99Ms,
          unit: 'ms',
          better: 'lower',
          baseline: { label, value: raw.p99Ms },
          command: oursCmd,
        },
        {
          figure: `${k.name}: requests/s`,
          value: ours.okPerSec,
          unit: 'req/s',
          better: 'higher',
          baseline: { label, value: raw.perSec },
          command: oursCmd,
        },
      );
    }
    appender.kill('SIGTERM');
    await appenderDone;
    const a = JSON.parse(appendOut.trim().split('\n').at(-1) ?? '{}') as AppendLoadResult;
    notes.push(
      `concurrent appends through both phases: ${appendCmd} — ${a.appends} appends (${a.appendsPerSec?.toFixed(1)} rollouts/s, ${Math.round(a.eventsPerSec)} events/s, p50 ${a.p50Ms?.toFixed(0)} ms, p99 ${a.p99Ms?.toFixed(0)} ms per append, ${a.skipped} ticks skipped at 4 in flight), sequenced and projected by the running service`,
    );
  } finally {
    if (appender && appender.exitCode === null) appender.kill('SIGTERM');
    await server.stop();
  }
  const after = await ledgerState(db);
  notes.push(
    `ledger: ${before.events.toLocaleString('en-US')} events at the start, ${after.events.toLocaleString('en-US')} at the end (sequenced ${after.head.toLocaleString('en-US')}, projections at ${after.projection.toLocaleString('en-US')})`,
    `service: node dist/src/bundle/main.js, DB_POOL_MAX=${poolMax}, sequencer and projections on; autocannon (programmatic, one path after the other) in its own process; the raw baseline in its own process with a pool of ${poolMax}; ours then raw for each kind, ${seconds} s each`,
    `load average after each kind: ${uptimes.join('; ')}`,
    'the list route runs one statement (the page of the projection version the service remembers as served, with the served version read in the same statement to check it; Postgres builds the page as JSON text, which the route sends as it is, and the raw baseline receives the same one row of text); GET /:id runs one (the stream joined to ledger from the version the service last folded it to, that event checked by its hash: the head only, as the concurrent appends make new rollouts and the sampled ones do not change), then folds the events after it in JS; under concurrency the service sends the reads that queue while one is out as one statement (group read, src/event-store/group-read.ts), where the raw baseline sends the statement of each request alone, as a client of the database alone would; the raw baseline runs the same statements, parses the rows, and does nothing else',
    'full plans: bench-output/query-plans.txt',
  );
  publish(
    NAME,
    startedAt,
    pgVersion,
    { rollouts, events: before.events, duration: seconds, connections, appendRate, poolMax },
    rows,
    notes,
  );
  if (!args.has('keep')) await dropDatabase(db);
}
