import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { intArg } from './lib/args.js';
import { serverVersion } from './lib/pg.js';
import { startServer } from './lib/server.js';
import { percentile, publish, type Row } from './lib/table.js';

const NAME = 'cold-start';

/** The baseline's script (bench/lib/raw-pglite.ts): Node and PGlite, nothing else loaded. */
const RAW_PGLITE = path.resolve('dist-bench/bench/lib/raw-pglite.js');

/** Spawn → the child's one line of output (its ready signal), with the time it took. */
function rawChild(dir: string): Promise<{ ms: number; rssMb: number }> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const child = spawn(process.execPath, [RAW_PGLITE, dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('\n')) {
        const ms = performance.now() - t;
        resolve({ ms, ...(JSON.parse(out.trim()) as { rssMb: number }) });
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`_pglite exited ${code}`));
    });
  });
}

/**
 * Embedded mode (PGlite): process start to the first 200 of /health/ready, and the resident set
 * then, on a new data directory (init + migrations) and on reopening it; against a bare Node
 * process opening PGlite on a directory and answering `select 1`.
 */
export async function coldStart(args: Map<string, string>): Promise<void> {
  const started = new Date();
  const runs = intArg(args, 'runs', 3);
  const pgVersion = await serverVersion();
  const first: { ms: number; mb: number }[] = [];
  const reopen: { ms: number; mb: number }[] = [];
  const rawFirst: { ms: number; mb: number }[] = [];
  const rawReopen: { ms: number; mb: number }[] = [];
  for (let i = 0; i < runs; i++) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ul-cold-'));
    const rawDir = mkdtempSync(path.join(os.tmpdir(), 'ul-cold-raw-'));
    try {
      for (const list of [first, reopen]) {
        const s = await startServer({ dataDir: dir, timeoutMs: 120_000 });
        list.push({ ms: s.readyMs, mb: s.rssMb() });
        await s.stop();
      }
      for (const list of [rawFirst, rawReopen]) {
        const r = await rawChild(rawDir);
        list.push({ ms: r.ms, mb: r.rssMb });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(rawDir, { recursive: true, force: true });
    }
  }
  const med = (xs: { ms: number; mb: number }[], k: 'ms' | 'mb') =>
    percentile(
      xs.map((x) => x[k]),
      50,
    );
  const cmd = `npm run bench -- ${NAME} --runs ${runs}  (node dist/src/bundle/main.js without DATABASE_URL)`;
  const rows: Row[] = [
    {
      figure: 'start → /health/ready, new data directory',
      value: med(first, 'ms'),
      unit: 'ms',
      better: 'lower',
      baseline: { label: 'node + PGlite.create + select 1, new directory', value: med(rawFirst, 'ms') },
      command: cmd,
      note: `median of ${runs}: ${first.map((x) => x.ms.toFixed(0)).join(', ')} ms (includes migrations)`,
    },
    {
      figure: 'start → /health/ready, reopened data directory',
      value: med(reopen, 'ms'),
      unit: 'ms',
      better: 'lower',
      baseline: { label: 'node + PGlite.create + select 1, reopened', value: med(rawReopen, 'ms') },
      command: cmd,
      note: `median of ${runs}: ${reopen.map((x) => x.ms.toFixed(0)).join(', ')} ms; target ≤ 2,000 ms`,
    },
    {
      figure: 'RSS at ready, reopened',
      value: med(reopen, 'mb'),
      unit: 'MB',
      better: 'lower',
      baseline: { label: 'node + PGlite after select 1', value: med(rawReopen, 'mb') },
      command: cmd,
    },
  ];
  publish(NAME, started, pgVersion, { runs }, rows, [
    'times from spawn of the process to its ready signal (the first 200 of /health/ready, polled every 20 ms; the raw child prints a line), measured by the parent',
    'the raw child is `node dist-bench/bench/lib/raw-pglite.js <dir>`: Node and PGlite, nothing else loaded (until session 12 it loaded every bench first, which added about 1.1 s on a slow machine)',
    'the machine has 2 cores shared with other users: start-up times vary by a factor of 2 with load',
  ]);
}
