import { randomUUID } from 'node:crypto';
import { uuidv7 } from '../../src/common/ids.js';
import { loadConfig } from '../../src/config/config.js';
import { openDatabase } from '../../src/database/database.js';
import { EventStore } from '../../src/event-store/event-store.repository.js';
import type { PeerResult } from './emmett.js';
import { dbUrl } from './pg.js';
import { rolloutEvents, rolloutTemplates } from './seed.js';
import { percentile } from './table.js';

/**
 * The service's own EventStore.append, in-process (no HTTP, no Nest), `concurrency` appends in
 * flight, each of `batch` events (the first rollout's plan as the payload) to a new stream with
 * expectedVersion no_stream. Run in a child process:
 * `node dist-bench/bench/index.js _store <db> <concurrency> <seconds> <batch> <poolMax> [acks]`.
 * With `acks` = 1 it also returns, for every append, its stream and the wall-clock time (epoch ms)
 * at which the commit was acknowledged: the sequencer bench measures lag from there.
 */
export async function storeAppends(
  db: string,
  concurrency: number,
  seconds: number,
  batch: number,
  poolMax: number,
  acks = 0,
): Promise<PeerResult> {
  const handle = await openDatabase({ database: { kind: 'postgres', url: dbUrl(db), poolMax } });
  // The service's own setting, from the environment as the service reads it.
  const store = new EventStore(handle, undefined, loadConfig(process.env));
  const payload = rolloutEvents(rolloutTemplates(), 0, randomUUID()).events[0];
  if (!payload) throw new Error('no template event');
  const makeEvents = () =>
    Array.from({ length: batch }, () => ({
      type: payload.type,
      data: payload.data,
      metadata: payload.metadata,
    }));
  try {
    await store.append(`warmup-${randomUUID()}`, makeEvents(), { expectedVersion: 'no_stream' });
    const latencies: number[] = [];
    const acked: [string, number][] = [];
    let events = 0;
    const started = performance.now();
    const until = started + seconds * 1000;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < until) {
          const t = performance.now();
          const streamId = `rollout-${uuidv7()}`;
          await store.append(streamId, makeEvents(), { expectedVersion: 'no_stream', streamType: 'rollout' });
          latencies.push(performance.now() - t);
          if (acks) acked.push([streamId, Date.now()]);
          events += batch;
        }
      }),
    );
    const elapsed = (performance.now() - started) / 1000;
    return {
      events,
      appends: latencies.length,
      seconds: elapsed,
      eventsPerSec: events / elapsed,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      ...(acks ? { acks: acked } : {}),
    };
  } finally {
    await handle.close();
  }
}
