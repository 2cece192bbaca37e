import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { configSchema } from '../src/config/config.js';
import { BUNDLE_FILE } from '../src/service-bundle.js';
import { loadScenarios } from '../test/support/scenarios.js';
import { appendFunctionScript, rolloutPost } from './append-single.js';
import { intArg } from './lib/args.js';
import { autocannon } from './lib/autocannon.js';
import { backendsOf, cpuDuring, processOf } from './lib/cpu.js';
import { metricValues, scrape } from './lib/metrics.js';
import { dbUrl, dropDatabase, recreateDatabase, serverVersion } from './lib/pg.js';
import { pgbench } from './lib/pgbench.js';
import { migrate, rolloutEvents, rolloutTemplates } from './lib/seed.js';
import { ADMIN_TOKEN, startServer } from './lib/server.js';
import { count, publish, type Row } from './lib/table.js';

const NAME = 'append-ab';

/**
 * `A=1,B=2|A=4`: variants of the service's settings, each a comma-separated list of NAME=value
 * (an empty variant is the defaults). Only names the service reads as settings are accepted.
 */
function parseVariants(text: string): Record<string, string>[] {
  return text.split('|').map((variant) => {
    const env: Record<string, string> = {};
    for (const pair of variant.split(',').filter((p) => p.trim() !== '')) {
      const m = /^\s*([A-Z][A-Z0-9_]*)=(\S*)\s*$/.exec(pair);
      if (!m) throw new Error(`--settings: "${pair}" is not NAME=value`);
      const name = m[1] as string;
      if (!(name in configSchema.shape)) throw new Error(`--settings: the service has no setting ${name}`);
      env[name] = m[2] as string;
    }
    return env;
  });
}

/**
 * `dist/src/bundle/main.js|../other/dist/src/bundle/main.js`: builds of the service to compare
 * (each a bundle's main), under one set of settings. Each run's database is migrated by this
 * checkout before the build starts, and pgbench runs this checkout's SQL: the builds must share
 * its migrations (an A/B of a change to the code, not to the schema).
 */
function parseBuilds(text: string | undefined): (string | undefined)[] {
  if (text === undefined) return [undefined];
  const mains = text.split('|').map((p) => {
    if (p.trim() === '') throw new Error("--builds: an empty entry (each is a built bundle's main.js)");
    const main = path.resolve(p.trim());
    if (!existsSync(main) || !statSync(main).isFile())
      throw new Error(`--builds: ${main} is not a file (each is a built bundle's main.js)`);
    return main;
  });
  if (new Set(mains).size !== mains.length) throw new Error('--builds: the same build twice');
  return mains;
}

/**
 * Which build a figure is of: the first 12 hex digits of the SHA-256 of a build's main.js and,
 * when there is one beside it, of the service's bundle it loads (main.js is the same loader in
 * every build since session 13).
 */
const buildId = (main: string): string => {
  const hash = createHash('sha256').update(readFileSync(main));
  const bundle = path.join(path.dirname(main), BUNDLE_FILE);
  if (existsSync(bundle)) hash.update(readFileSync(bundle));
  return hash.digest('hex').slice(0, 12);
};

type CommitCounters = Awaited<ReturnType<typeof commitCounters>>;

/** The service's own account of its appends, from /metrics: counters and histograms' sums. */
async function commitCounters(url: string) {
  const text = await scrape(url, ADMIN_TOKEN);
  const one = (name: string, labels = '') => metricValues(text, name).get(labels) ?? Number.NaN;
  const route = '{method="POST",route="/api/v1/rollouts"}';
  return {
    calls: one('ledger_group_commit_calls_total'),
    appends: one('ledger_group_commit_appends_total'),
    callSeconds: one('ledger_group_commit_call_duration_seconds_sum'),
    queuedSeconds: one('ledger_group_commit_queue_wait_seconds_sum'),
    requests: one('http_request_duration_seconds_count', route),
    requestSeconds: one('http_request_duration_seconds_sum', route),
  };
}

/**
 * Where a run's appends spent their time, as the service saw it: the mean request (from Fastify
 * receiving it to its answer), and within it the mean wait for a group-commit call to go out (per
 * append) and the mean call (per call, as the service saw it: pool, round trip, statement, commit,
 * and its own event loop reading the answer). Nothing when the build has no such metrics (one
 * older than session 18, in an A/B of builds) or sent no call.
 */
function commitBreakdown(before: CommitCounters, after: CommitCounters): string {
  const d = (k: keyof CommitCounters) => after[k] - before[k];
  const parts = Object.keys(before).map((k) => d(k as keyof CommitCounters));
  if (!parts.every(Number.isFinite) || d('calls') <= 0 || d('requests') <= 0) return '';
  const ms = (seconds: number, n: number) => ((seconds * 1000) / n).toFixed(2);
  return (
    `; in the service: request ${ms(d('requestSeconds'), d('requests'))} ms mean, of which queued for a ` +
    `group-commit call ${ms(d('queuedSeconds'), d('appends'))} ms and its call ` +
    `${ms(d('callSeconds'), d('calls'))} ms (${(d('appends') / d('calls')).toFixed(1)} appends a call)`
  );
}

const label = (env: Record<string, string>, main?: string): string =>
  (main ? `${path.relative(process.cwd(), main)}, ` : '') +
  (Object.keys(env).length === 0
    ? 'defaults'
    : Object.entries(env)
        .map(([k, v]) => `${k}=${v}`)
        .join(' '));

/**
 * An A/B of the HTTP single-append route under service settings, alternating the variants in
 * every round (so that a machine growing busier or quieter meets them all alike). Each run starts
 * the built service on a new database with one variant, warms up for 3 s, and puts autocannon
 * on it; the CPU of the service, of its Postgres backends and of autocannon is read from /proc
 * in the middle of the run. Each round also runs pgbench on the same SQL one append runs, as
 * append-single does, so every rate has a raw-Postgres ratio from its own round.
 *
 * With `--rate N`, autocannon sends N requests per second in all instead of as many as the
 * service answers, and the figure to compare is the CPU per event: on this shared machine it moves
 * less from run to run at a fixed load than the maximum rate does.
 *
 * With `--builds A|B` (each a built bundle's main.js), the variants are those builds instead, all
 * under the one set of `--settings`: an A/B of a change to the code.
 *
 * `npm run bench -- append-ab --settings 'GROUP_COMMIT_IN_FLIGHT=1|GROUP_COMMIT_IN_FLIGHT=4'
 *  --connections 16 --duration 12 --rounds 2 [--rate 1200]`
 * `npm run bench -- append-ab --builds 'dist/src/bundle/main.js|/tmp/b/dist/src/bundle/main.js'`
 */
export async function appendAb(args: Map<string, string>): Promise<void> {
  const started = new Date();
  const seconds = intArg(args, 'duration', 12);
  const connections = intArg(args, 'connections', 16);
  const rounds = intArg(args, 'rounds', 2);
  const rate = args.has('rate') ? intArg(args, 'rate', 0) : undefined;
  if (rate !== undefined && rate < 1) throw new Error('--rate: requests per second, at least 1');
  const settings = parseVariants(args.get('settings') ?? '');
  const builds = parseBuilds(args.get('builds'));
  // Hashed before the runs: the file a figure was measured on, even if it is rebuilt meanwhile.
  const buildIds = builds.map((m) => (m ? `${path.relative(process.cwd(), m)} (sha256 ${buildId(m)}…)` : ''));
  if (builds.length > 1 && settings.length > 1)
    throw new Error('--builds: compare builds under one set of --settings, or settings on one build');
  const variants = builds.flatMap((main) => settings.map((env) => ({ env, main })));
  const pgVersion = await serverVersion();
  const ours = 'bench_ab_ours';
  const raw = 'bench_ab_raw';
  const scenarios = loadScenarios(process.env.SCENARIOS_DIR ?? path.resolve('../shared/scenarios'));
  const body = JSON.stringify(scenarios[0]?.calls[0]?.body);
  const sample = rolloutEvents(rolloutTemplates(), 0, randomUUID()).events[0];
  if (!sample) throw new Error('no sample event');
  const script = appendFunctionScript(sample.data, sample.metadata);
  const rows: Row[] = [];
  const sums = variants.map(() => ({ rate: 0, ratio: 0, cpu: 0 }));
  try {
    await recreateDatabase(raw);
    await migrate(raw);
    for (let round = 1; round <= rounds; round++) {
      const base = await pgbench({ db: raw, script, clients: connections, seconds, name: NAME });
      // Each round starts one variant later than the last: the first run after pgbench was ahead
      // in all six rounds of two A/Bs of builds that did not differ at this scale (docs/benchmarks.md,
      // "Ids in time order (session 20)"), so a fixed order would favour the first variant.
      const order = variants.map((_, k) => (k + round - 1) % variants.length);
      for (const i of order) {
        const { env, main } = variants[i] as (typeof variants)[number];
        await recreateDatabase(ours);
        await migrate(ours);
        const server = await startServer({
          databaseUrl: dbUrl(ours),
          env: { DB_POOL_MAX: '20', ...env },
          main,
        });
        try {
          const post = rolloutPost(server.url, body);
          await autocannon({ ...post, connections, seconds: 3 }); // warm-up, not counted
          const counted = await commitCounters(server.url);
          const w = await cpuDuring(
            seconds,
            {
              node: processOf(server.pid),
              postgres: backendsOf(ours),
              autocannon: (cmdline) => cmdline.includes('autocannon'),
            },
            autocannon({ ...post, connections, seconds, rate }),
          );
          const r = w.result;
          const breakdown = commitBreakdown(counted, await commitCounters(server.url));
          const events = r.okPerSec * w.seconds;
          const per = (part: string) => Math.round(((w.ms[part] ?? 0) * 1000) / events);
          const sum = sums[i] as { rate: number; ratio: number; cpu: number };
          sum.rate += r.okPerSec;
          sum.ratio += r.okPerSec / base.tps;
          sum.cpu += per('node') + per('postgres');
          rows.push({
            figure: `round ${round}, ${label(env, main)}`,
            value: r.okPerSec,
            unit: 'events/s',
            better: 'higher',
            baseline: { label: 'pgbench, same SQL (append_events), this round', value: base.tps },
            // The port differs per run; without it the command is one line for all runs.
            command: `npm run bench -- ${NAME} … : ${r.command.replace(/127\.0\.0\.1:\d+/, '127.0.0.1:<port>')}`,
            note: `CPU per event: ${per('node')} µs service + ${per('postgres')} µs its Postgres backends + ${per('autocannon')} µs autocannon; p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms; ${r.non2xx} non-2xx${breakdown}`,
          });
        } finally {
          await server.stop();
        }
      }
    }
  } finally {
    await dropDatabase(ours);
    await dropDatabase(raw);
  }
  const means = variants.map(
    ({ env, main }, i) =>
      `${label(env, main)}: mean ${count((sums[i]?.rate ?? 0) / rounds)} events/s, mean ratio to pgbench ${((sums[i]?.ratio ?? 0) / rounds).toFixed(2)}, mean CPU per event ${Math.round((sums[i]?.cpu ?? 0) / rounds)} µs (service + its backends)`,
  );
  publish(
    NAME,
    started,
    pgVersion,
    {
      seconds,
      connections,
      rounds,
      settings: args.get('settings') ?? '',
      ...(args.has('builds') ? { builds: buildIds.join(' | ') } : {}),
      ...(rate ? { rate } : {}),
    },
    rows,
    [
      ...means,
      `each run: a new database, the built service (or the variant's build) with the variant's settings (DB_POOL_MAX=20), 3 s of warm-up, then autocannon -c ${connections}${rate ? ` -R ${rate}` : ''} for ${seconds} s; each round's pgbench ran first, then the variants, starting one later each round`,
      'the machine has 2 cores shared with the load generator, Postgres and other users: compare the variants within a round, and the mean ratios',
    ],
  );
}
