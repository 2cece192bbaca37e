import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { percentile } from './table.js';

/** One request's SQL: statements run one after the other on the pool, as the route runs them. */
export type RawRequest = { sql: string; params: unknown[] }[];

/** What `raw-query.js <spec.json>` runs: `requests` cycled, `concurrency` in flight, `seconds` long. */
export interface RawQuerySpec {
  url: string;
  requests: RawRequest[];
  concurrency: number;
  seconds: number;
  poolMax: number;
}

export interface RawQueryResult {
  requests: number;
  rows: number;
  seconds: number;
  perSec: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * The raw baseline of a read route: the same statements with the same parameters via a plain
 * node-postgres pool (rows parsed by node-postgres, nothing else done with them), in a process of
 * its own: `node dist-bench/bench/lib/raw-query.js <spec.json>`. Prints one line of JSON.
 */
async function main(file: string): Promise<void> {
  const spec = JSON.parse(readFileSync(file, 'utf8')) as RawQuerySpec;
  // bigint as number, as the service's pool does.
  pg.types.setTypeParser(20, (v: string) => Number(v));
  const pool = new pg.Pool({ connectionString: spec.url, max: spec.poolMax });
  let next = 0;
  let rows = 0;
  const runOne = async () => {
    const req = spec.requests[next++ % spec.requests.length] as RawRequest;
    for (const s of req) rows += (await pool.query(s.sql, s.params)).rowCount ?? 0;
  };
  try {
    // Warm-up: open the pool's connections and run each request once, untimed.
    await Promise.all(Array.from({ length: spec.concurrency }, runOne));
    next = 0;
    rows = 0;
    const times: number[] = [];
    const started = performance.now();
    const until = started + spec.seconds * 1000;
    await Promise.all(
      Array.from({ length: spec.concurrency }, async () => {
        while (performance.now() < until) {
          const t = performance.now();
          await runOne();
          times.push(performance.now() - t);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const out: RawQueryResult = {
      requests: times.length,
      rows,
      seconds,
      perSec: times.length / seconds,
      p50Ms: percentile(times, 50),
      p99Ms: percentile(times, 99),
    };
    console.log(JSON.stringify(out));
  } finally {
    await pool.end();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv[2] ?? '').catch((err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  });
}
