import { intArg } from './lib/args.js';
import { httpGet } from './lib/http.js';
import {
  adminQuery,
  dbUrl,
  dropDatabase,
  ledgerStateSafe,
  psqlArgs,
  recreateDatabase,
  serverVersion,
} from './lib/pg.js';
import { run, shellLine } from './lib/proc.js';
import type { RawResult } from './lib/raw-readers.js';
import {
  avgEventsPerRollout,
  ledgerState,
  migrate,
  rolloutTemplates,
  seedRollouts,
  sequenceAll,
} from './lib/seed.js';
import { authHeaders, type Server, startServer } from './lib/server.js';
import { publish, type Row } from './lib/table.js';

const NAME = 'report-export';

/** Runs a raw baseline in a child process of its own, so that its peak memory is its own. */
async function rawChild(kind: '_raw-report' | '_raw-export', db: string): Promise<RawResult> {
  const r = await run(process.execPath, [process.argv[1] as string, kind, db]);
  if (r.code !== 0) throw new Error(`${kind} failed: ${r.stderr}`);
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(line) as RawResult;
}

/** Prints the server's resident set every 10 s while a long request runs. */
function watchMemory(server: Server, since: number): NodeJS.Timeout {
  return setInterval(() => {
    try {
      console.log(
        `  ${((performance.now() - since) / 1000).toFixed(0)} s: service RSS ${server.rssMb().toFixed(0)} MB, peak ${server.peakMb().toFixed(0)} MB`,
      );
    } catch {
      // the process ended
    }
  }, 10_000);
}

async function withServer<T>(db: string, fn: (s: Server) => Promise<T>): Promise<T> {
  // A fresh server per measured phase, so that its peak resident set belongs to that phase.
  // Sequencer and projections off: everything is sequenced already, and a projection still
  // catching up on the seeded events would otherwise share the CPU and the heap with the request.
  const server = await startServer({
    databaseUrl: dbUrl(db),
    env: { DB_POOL_MAX: '20', SEQUENCER_ENABLED: 'false' },
  });
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

/**
 * Issue 4's benchmark: the period compliance report over N rollouts and the NDJSON export of the
 * whole ledger, time and peak memory of the service process, against raw Postgres reading the
 * same rows.
 */
export async function reportExport(args: Map<string, string>): Promise<void> {
  const started = new Date();
  const rollouts = intArg(args, 'rollouts', 100_000);
  const workers = intArg(args, 'workers', 8);
  const db = `bench_report_${rollouts}`;
  const command = `npm run bench -- ${NAME} --rollouts ${rollouts}`;
  const pgVersion = await serverVersion();
  const templates = rolloutTemplates();
  console.log(
    `${NAME}: ${rollouts.toLocaleString('en-US')} rollouts (~${Math.round(rollouts * avgEventsPerRollout(templates)).toLocaleString('en-US')} events) in database ${db}`,
  );

  let seeded = false;
  if (args.has('reuse')) {
    const s = await ledgerStateSafe(db);
    seeded = s !== undefined && s.rollouts === rollouts;
    console.log(seeded ? '  reusing the seeded database' : '  nothing to reuse: seeding');
  }
  const notes: string[] = [];
  if (!seeded) {
    await recreateDatabase(db);
    await migrate(db);
    const t = performance.now();
    await seedRollouts(db, rollouts, workers);
    notes.push(
      `seeding (in-process EventStore.append, one append per rollout, ${workers} at a time, synchronous_commit off) took ${((performance.now() - t) / 1000).toFixed(0)} s`,
    );
  }
  // The report and the export read the event store and the ledger, not the projections.
  const seq = await sequenceAll(db, false);
  if (!seeded) notes.push(`sequencing the seeded events took ${seq.seconds.toFixed(0)} s`);
  const { head } = await ledgerState(db);
  // This server runs with autovacuum off, so nothing ever analyzes the seeded tables; without
  // statistics the report's per-page read becomes a parallel seq scan of event (see the notes).
  const [{ autovacuum } = { autovacuum: 'unknown' }] = await adminQuery<{ autovacuum: string }>(
    'show autovacuum',
  );
  await adminQuery('analyze', [], db);
  notes.push(
    `autovacuum is ${autovacuum} on this server: the script ran ANALYZE after seeding, as autovacuum would have. Unanalyzed, the period report's per-page events query (readStreamsAsOf) is planned as a parallel seq scan of event, and the 100,000-rollout report had not finished after 500 s`,
  );

  // Warm the OS cache with one untimed full read, so neither side pays the first read from disk.
  const copySql = `copy (select l.position, l.hash, l.prev_hash, e.stream_id, e.stream_version, e.event_id, e.type, e.schema_version, e.data, e.metadata, e.recorded_at, e.hash, e.prev_hash from ledger l join event e on e.id = l.event_row_id where l.position <= ${head} order by l.position) to stdout`;
  const copyArgs = [...psqlArgs(db), '-X', '-q', '-c', copySql];
  await run('psql', copyArgs, { discardStdout: true });

  const rows: Row[] = [];

  // 1. The period report (JSON), every rollout in the ledger.
  const report = await withServer(db, async (server) => {
    const idleMb = server.rssMb();
    const t = performance.now();
    const watch = watchMemory(server, t);
    const res = await httpGet(`${server.url}/api/v1/reports/compliance?format=json`, authHeaders, true);
    const ms = performance.now() - t;
    clearInterval(watch);
    if (res.status !== 200) throw new Error(`period report: ${res.status} ${res.body.slice(0, 500)}`);
    const parsed = JSON.parse(res.body) as { totals: { rollouts: number } };
    return { ms, idleMb, peakMb: server.peakMb(), bytes: res.bytes, rollouts: parsed.totals.rollouts };
  });
  const rawRep = await rawChild('_raw-report', db);
  const reportCmd = `curl -H 'Authorization: Bearer …' '/api/v1/reports/compliance?format=json'  (${command})`;
  rows.push(
    {
      figure: `period report, ${report.rollouts.toLocaleString('en-US')} rollouts / ${rawRep.events.toLocaleString('en-US')} events`,
      value: report.ms / 1000,
      unit: 's',
      better: 'lower',
      baseline: { label: 'same SQL via node-postgres, no fold', value: rawRep.ms / 1000 },
      command: reportCmd,
      note: `response ${(report.bytes / 1048576).toFixed(1)} MB of JSON`,
    },
    {
      figure: 'period report, events read/s',
      value: rawRep.events / (report.ms / 1000),
      unit: 'events/s',
      better: 'higher',
      baseline: { label: 'same SQL via node-postgres, no fold', value: rawRep.events / (rawRep.ms / 1000) },
      command: reportCmd,
    },
    {
      figure: 'period report, peak RSS of the service',
      value: report.peakMb,
      unit: 'MB',
      better: 'lower',
      baseline: { label: 'peak RSS of the raw reader process', value: rawRep.peakMb },
      command: reportCmd,
      note: `the service's RSS just after /health/ready was ${report.idleMb.toFixed(0)} MB`,
    },
  );

  // 2. The NDJSON export of the whole ledger.
  const exp = await withServer(db, async (server) => {
    const idleMb = server.rssMb();
    const t = performance.now();
    const watch = watchMemory(server, t);
    const out = await httpGet(`${server.url}/api/v1/exports/ledger?format=ndjson`, authHeaders);
    const ms = performance.now() - t;
    clearInterval(watch);
    if (out.status !== 200) throw new Error(`export: ${out.status} ${out.lastLine}`);
    const end = JSON.parse(out.lastLine) as { kind: string; entries: number };
    if (end.kind !== 'end') throw new Error(`export did not end with an end line: ${out.lastLine}`);
    return { ms, idleMb, peakMb: server.peakMb(), bytes: out.bytes, entries: end.entries };
  });
  const copy = await run('/usr/bin/time', ['-f', '%M', 'psql', ...copyArgs], { discardStdout: true });
  const copyPeakMb = Number(copy.stderr.trim().split('\n').at(-1)) / 1024;
  const rawExp = await rawChild('_raw-export', db);
  const exportCmd = `curl -H 'Authorization: Bearer …' '/api/v1/exports/ledger?format=ndjson' > /dev/null  (${command})`;
  const rate = exp.entries / (exp.ms / 1000);
  rows.push(
    {
      figure: `NDJSON export, ${exp.entries.toLocaleString('en-US')} events`,
      value: rate,
      unit: 'events/s',
      better: 'higher',
      baseline: { label: 'psql COPY of the same rows', value: head / (copy.ms / 1000) },
      command: exportCmd,
      note: `${(exp.ms / 1000).toFixed(1)} s, ${(exp.bytes / 1048576).toFixed(0)} MB; baseline: ${shellLine('psql', copyArgs)} > /dev/null`,
    },
    {
      figure: 'NDJSON export vs the same keyset pages in Node',
      value: rate,
      unit: 'events/s',
      better: 'higher',
      baseline: {
        label: 'same SQL via node-postgres + JSON.stringify',
        value: rawExp.events / (rawExp.ms / 1000),
      },
      command: exportCmd,
    },
    {
      figure: 'NDJSON export, peak RSS of the service',
      value: exp.peakMb,
      unit: 'MB',
      better: 'lower',
      baseline: { label: 'peak RSS of the node-postgres reader', value: rawExp.peakMb },
      command: exportCmd,
      note: `RSS after /health/ready ${exp.idleMb.toFixed(0)} MB; psql COPY peaked at ${copyPeakMb.toFixed(0)} MB. Goal: ≥ 100,000 events/s and < 300 MB`,
    },
  );
  notes.push(
    'one measured request per figure, a fresh service process per phase (its VmHWM is that phase’s peak) with SEQUENCER_ENABLED=false (all events are sequenced already; the projections, which would still be catching up on the seeded events, stay off); the OS cache was warmed by one untimed COPY first',
    'the machine has 2 cores shared with other users: compare ratios, not absolute figures',
  );
  publish(NAME, started, pgVersion, { rollouts, events: head, workers }, rows, notes);
  if (!args.has('keep')) await dropDatabase(db);
  else console.log(`kept database ${db} (drop it with: psql -c 'drop database ${db}')`);
}
