import { randomUUID } from 'node:crypto';
import { STREAM_DOES_NOT_EXIST } from '@event-driven-io/emmett';
import { getPostgreSQLEventStore } from '@event-driven-io/emmett-postgresql';
import pg from 'pg';
import { dbUrl } from './pg.js';
import { rolloutEvents, rolloutTemplates } from './seed.js';
import { percentile } from './table.js';

export interface PeerResult {
  events: number;
  appends: number;
  seconds: number;
  eventsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Per append: stream id and the epoch ms its commit was acknowledged (only when asked). */
  acks?: [string, number][];
}

/**
 * The peer: Emmett's PostgreSQL event store appending in-process (no HTTP) to its own database,
 * `concurrency` appends in flight, each to a new stream with "stream does not exist" expected,
 * `batch` events per append (the first rollout's plan as the payload). Run in a child process:
 * `node dist-bench/bench/index.js _emmett <db> <concurrency> <seconds> <batch>`.
 */
export async function emmettAppends(
  db: string,
  concurrency: number,
  seconds: number,
  batch: number,
  poolMax: number,
): Promise<PeerResult> {
  // The same pool size as the service's (DB_POOL_MAX); Emmett's own default would be pg's 10.
  const pool = new pg.Pool({ connectionString: dbUrl(db), max: poolMax });
  const store = getPostgreSQLEventStore(dbUrl(db), { connectionOptions: { pool } });
  const templates = rolloutTemplates();
  const payload = rolloutEvents(templates, 0, randomUUID()).events[0];
  if (!payload) throw new Error('no template event');
  const makeEvents = () =>
    Array.from({ length: batch }, () => ({
      type: payload.type,
      data: payload.data as Record<string, unknown>,
      metadata: payload.metadata as Record<string, unknown>,
    }));
  try {
    // Creates Emmett's schema (first append) outside the timed window.
    await store.appendToStream(`warmup-${randomUUID()}`, makeEvents(), {
      expectedStreamVersion: STREAM_DOES_NOT_EXIST,
    });
    const latencies: number[] = [];
    let events = 0;
    const started = performance.now();
    const until = started + seconds * 1000;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < until) {
          const t = performance.now();
          await store.appendToStream(`rollout-${randomUUID()}`, makeEvents(), {
            expectedStreamVersion: STREAM_DOES_NOT_EXIST,
          });
          latencies.push(performance.now() - t);
          events += batch;
        }
      }),
    );
    const elapsed = (performance.now() - started) / 1000;
    const result: PeerResult = {
      events,
      appends: latencies.length,
      seconds: elapsed,
      eventsPerSec: events / elapsed,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
    };
    return result;
  } finally {
    await store.close();
    await pool.end().catch(() => {});
  }
}
