import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../test/support/free-port.js';

export const ADMIN_TOKEN = 'bench-admin-token-0123456789';
/** What `npm start` runs: the bundle `npm run build` writes (src/build/bundle.ts). */
export const SERVICE_MAIN = path.resolve('dist/src/bundle/main.js');

export interface Server {
  readonly url: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Milliseconds from spawn to the first 200 of /health/ready. */
  readonly readyMs: number;
  /** Peak resident set (VmHWM) of the server process so far, in MB. */
  peakMb(): number;
  /** Resident set now (VmRSS), in MB. */
  rssMb(): number;
  stop(): Promise<void>;
}

function statusKb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]);
}

/**
 * The service's tuning settings, passed through from the bench's own environment when set, so an
 * A/B of one (`PROJECTIONS_MIN_CYCLE_MS=20 npm run bench -- query …`) needs no change of code.
 * Everything else the service sees is set here, so that a stray variable cannot skew a figure.
 */
const TUNING_SETTINGS = [
  'GROUP_COMMIT_IN_FLIGHT',
  'SEQUENCER_BATCH',
  'SEQUENCER_MIN_CYCLE_MS',
  'SEQUENCER_POLL_MS',
  'PROJECTIONS_MIN_CYCLE_MS',
] as const;

function tuningFromEnvironment(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of TUNING_SETTINGS) {
    const value = process.env[name];
    if (value) out[name] = value;
  }
  const given = Object.entries(out).map(([k, v]) => `${k}=${v}`);
  if (given.length > 0) console.log(`  the service runs with ${given.join(' ')} from the environment`);
  return out;
}

/**
 * Starts the built service (dist/src/bundle/main.js: run `npm run build` first) as a child process and
 * waits for /health/ready. Without `databaseUrl` it runs on embedded PGlite in a temporary DATA_DIR.
 */
export async function startServer(opts: {
  databaseUrl?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  nodeArgs?: string[];
  /** Another build's bundle main to run instead of dist/src/bundle/main.js (an A/B of two builds). */
  main?: string;
  /** Embedded mode: a DATA_DIR to keep (default: a temporary one, removed on stop). */
  dataDir?: string;
}): Promise<Server> {
  const main = opts.main ?? SERVICE_MAIN;
  if (!existsSync(main))
    throw new Error(
      main === SERVICE_MAIN ? `${main} is missing: run \`npm run build\` first` : `${main} is missing`,
    );
  const port = await freePort();
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'ul-bench-'));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'production',
    PORT: String(port),
    HOST: '127.0.0.1',
    ADMIN_TOKEN,
    LOG_LEVEL: 'warn',
    DATA_DIR: dataDir,
    RATE_LIMIT_MAX: '10000000',
    ...tuningFromEnvironment(),
    ...(opts.databaseUrl ? { DATABASE_URL: opts.databaseUrl } : {}),
    ...opts.env,
  };
  const started = performance.now();
  // BENCH_CPU_PROF=<dir>: every service a bench starts writes a V8 CPU profile there on exit.
  const profile = process.env.BENCH_CPU_PROF
    ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`]
    : [];
  const child = spawn(process.execPath, [...profile, ...(opts.nodeArgs ?? []), main], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  // pino logs to stdout: keep the tail of both for a failed start.
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding('utf8').on('data', (d: string) => {
      stderr = (stderr + d).slice(-8000);
    });
  }
  let exited: number | null | undefined;
  const exit = new Promise<void>((resolve) =>
    child.on('exit', (code) => {
      exited = code;
      resolve();
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let readyMs = -1;
  while (Date.now() < deadline) {
    if (exited !== undefined) throw new Error(`the service exited (${exited}) before ready:\n${stderr}`);
    try {
      const res = await fetch(`${url}/health/ready`);
      if (res.status === 200) {
        readyMs = performance.now() - started;
        break;
      }
    } catch {
      // not listening yet
    }
    await sleep(20);
  }
  if (readyMs < 0) {
    child.kill('SIGKILL');
    throw new Error(`the service was not ready within ${opts.timeoutMs ?? 60_000} ms:\n${stderr}`);
  }
  const pid = child.pid as number;
  return {
    url,
    pid,
    child,
    readyMs,
    peakMb: () => statusKb(pid, 'VmHWM') / 1024,
    rssMb: () => statusKb(pid, 'VmRSS') / 1024,
    async stop() {
      if (exited === undefined) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exit;
        clearTimeout(t);
      }
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export const authHeaders = { authorization: `Bearer ${ADMIN_TOKEN}` };
