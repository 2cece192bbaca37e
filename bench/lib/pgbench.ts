import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { psqlArgs } from './pg.js';
import { runOk, shellLine } from './proc.js';
import { percentile } from './table.js';

export interface PgbenchResult {
  tps: number;
  transactions: number;
  p50Ms: number;
  p99Ms: number;
  command: string;
}

/**
 * Runs pgbench with a custom script (no vacuum, extended protocol like node-postgres), logging
 * every transaction so that p50/p99 come from the same samples as the rate.
 */
export async function pgbench(opts: {
  db: string;
  script: string;
  clients: number;
  seconds: number;
  name: string;
  /** `extended` (like node-postgres) unless the statement has more than 255 variables. */
  protocol?: 'extended' | 'simple';
}): Promise<PgbenchResult> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ul-pgbench-'));
  try {
    const file = path.join(dir, `${opts.name}.sql`);
    writeFileSync(file, opts.script);
    // The same script where the printed command says it is, so the baseline can be re-run by hand.
    mkdirSync('bench-output', { recursive: true });
    writeFileSync(path.join('bench-output', `${opts.name}.sql`), opts.script);
    const threads = Math.min(opts.clients, os.cpus().length);
    const args = [
      ...psqlArgs(opts.db).filter((a) => a !== '-d'),
      '-n',
      '-M',
      opts.protocol ?? 'extended',
      '-c',
      String(opts.clients),
      '-j',
      String(threads),
      '-T',
      String(opts.seconds),
      '-f',
      file,
      '-l',
      `--log-prefix=${path.join(dir, 'log')}`,
    ];
    // psqlArgs gives `-d db`; pgbench takes the database name last.
    const dbIndex = args.indexOf(opts.db);
    args.splice(dbIndex, 1);
    args.push(opts.db);
    const r = await runOk('pgbench', args);
    const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(r.stdout)?.[1]);
    const transactions = Number(/number of transactions actually processed: (\d+)/.exec(r.stdout)?.[1]);
    const failed = Number(/number of failed transactions: (\d+)/.exec(r.stdout)?.[1] ?? 0);
    if (!Number.isFinite(tps) || failed > 0) throw new Error(`pgbench: ${r.stdout}\n${r.stderr}`);
    const latencies: number[] = [];
    for (const f of readdirSync(dir).filter((n) => n.startsWith('log'))) {
      for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) {
        const us = Number(line.split(' ')[2]);
        if (line && Number.isFinite(us)) latencies.push(us / 1000);
      }
    }
    const printable = args.map((a) => (a === file ? `bench-output/${opts.name}.sql` : a));
    printable.splice(printable.indexOf('-l'), 2);
    return {
      tps,
      transactions,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      command: shellLine('pgbench', printable),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A SQL string literal. */
export const literal = (s: string): string => `'${s.replaceAll("'", "''")}'`;
