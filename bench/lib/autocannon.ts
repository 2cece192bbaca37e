import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runOk, shellLine } from './proc.js';

export interface LoadResult {
  /** 2xx responses per second over the run. */
  okPerSec: number;
  ok: number;
  non2xx: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  command: string;
}

interface AutocannonJson {
  requests: { total: number };
  latency: { p50: number; p99: number };
  duration: number;
  errors: number;
  non2xx: number;
  '2xx': number;
}

/** autocannon as a separate process (the load generator must not share the service's event loop). */
export async function autocannon(opts: {
  url: string;
  connections: number;
  seconds: number;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  /** Requests per second in all (`-R`): a fixed load instead of as many as the service answers. */
  rate?: number;
}): Promise<LoadResult> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ul-ac-'));
  try {
    const args = ['node_modules/autocannon/autocannon.js', '-j', '-c', String(opts.connections)];
    args.push('-d', String(opts.seconds), '-m', opts.method ?? 'GET');
    if (opts.rate !== undefined) args.push('-R', String(opts.rate));
    for (const [k, v] of Object.entries(opts.headers ?? {})) args.push('-H', `${k}=${v}`);
    let printable = [...args];
    if (opts.body !== undefined) {
      const file = path.join(dir, 'body.json');
      writeFileSync(file, opts.body);
      args.push('-i', file);
      printable = [...printable, '-i', 'body.json'];
    }
    args.push(opts.url);
    printable.push(opts.url);
    const r = await runOk(process.execPath, args);
    const j = JSON.parse(r.stdout) as AutocannonJson;
    return {
      okPerSec: j['2xx'] / j.duration,
      ok: j['2xx'],
      non2xx: j.non2xx,
      errors: j.errors,
      p50Ms: j.latency.p50,
      p99Ms: j.latency.p99,
      command: shellLine('node', printable).replace(/Bearer [^' ]+/, 'Bearer …'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
