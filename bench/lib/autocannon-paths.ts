import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { percentile } from './table.js';

/** What `autocannon-paths.js <spec.json>` loads: GETs cycling through `paths`, one after another. */
export interface PathsSpec {
  url: string;
  paths: string[];
  connections: number;
  seconds: number;
  headers: Record<string, string>;
}

export interface PathsResult {
  ok: number;
  non2xx: number;
  errors: number;
  seconds: number;
  okPerSec: number;
  /** From every response's own time (autocannon's 'response' event, ms with decimals). */
  p50Ms: number;
  p99Ms: number;
  /** autocannon's own histogram (whole ms), for comparison. */
  autocannonP50Ms: number;
  autocannonP99Ms: number;
}

interface AutocannonResult {
  '2xx': number;
  non2xx: number;
  errors: number;
  duration: number;
  latency: { p50: number; p99: number };
}
interface Instance {
  on(event: 'response', fn: (client: unknown, status: number, bytes: number, ms: number) => void): void;
  then: Promise<AutocannonResult>['then'];
}
type Autocannon = (opts: Record<string, unknown>) => Instance;

/**
 * autocannon (programmatic API, so that each request can take the next path: the CLI has one URL)
 * in a process of its own: `node dist-bench/bench/lib/autocannon-paths.js <spec.json>`. Prints
 * one line of JSON (PathsResult).
 */
async function main(file: string): Promise<void> {
  const spec = JSON.parse(readFileSync(file, 'utf8')) as PathsSpec;
  const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;
  let next = 0;
  const times: number[] = [];
  const instance = autocannon({
    url: spec.url,
    connections: spec.connections,
    duration: spec.seconds,
    headers: spec.headers,
    requests: [
      {
        method: 'GET',
        setupRequest: (req: Record<string, unknown>) => ({
          ...req,
          path: spec.paths[next++ % spec.paths.length],
        }),
      },
    ],
  });
  instance.on('response', (_c, status, _b, ms) => {
    if (status >= 200 && status < 300) times.push(ms);
  });
  const r = await instance;
  const out: PathsResult = {
    ok: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors,
    seconds: r.duration,
    okPerSec: r['2xx'] / r.duration,
    p50Ms: percentile(times, 50),
    p99Ms: percentile(times, 99),
    autocannonP50Ms: r.latency.p50,
    autocannonP99Ms: r.latency.p99,
  };
  console.log(JSON.stringify(out));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv[2] ?? '').catch((err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  });
}
