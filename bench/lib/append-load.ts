import { pathToFileURL } from 'node:url';
import { uuidv7 } from '../../src/common/ids.js';
import { openDatabase } from '../../src/database/database.js';
import { EventStore } from '../../src/event-store/event-store.repository.js';
import { dbUrl } from './pg.js';
import { rolloutEvents, rolloutTemplates } from './seed.js';
import { percentile } from './table.js';

export interface AppendLoadResult {
  appends: number;
  events: number;
  seconds: number;
  appendsPerSec: number;
  eventsPerSec: number;
  /** Appends due but not started because `maxInFlight` were already running. */
  skipped: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * A background write load at a fixed rate: `rate` new rollouts per second, each one
 * EventStore.append of a whole scenario (as the seed, ~11.8 events), at most `maxInFlight` at a
 * time, until SIGTERM; then prints one line of JSON. In a process of its own:
 * `node dist-bench/bench/lib/append-load.js <db> <rate> [maxInFlight]`.
 */
async function main(db: string, rate: number, maxInFlight: number): Promise<void> {
  const handle = await openDatabase({ database: { kind: 'postgres', url: dbUrl(db), poolMax: maxInFlight } });
  const store = new EventStore(handle);
  const templates = rolloutTemplates();
  let i = 0;
  let inFlight = 0;
  let events = 0;
  let skipped = 0;
  const times: number[] = [];
  const running = new Set<Promise<void>>();
  const started = performance.now();
  const tick = () => {
    if (inFlight >= maxInFlight) {
      skipped++;
      return;
    }
    inFlight++;
    const { streamId, events: batch } = rolloutEvents(templates, i++, uuidv7());
    const t = performance.now();
    const p = store
      .append(streamId, batch, { expectedVersion: 'no_stream', streamType: 'rollout' })
      .then(() => {
        times.push(performance.now() - t);
        events += batch.length;
      })
      .catch((err: unknown) => console.error(err))
      .finally(() => {
        inFlight--;
        running.delete(p);
      });
    running.add(p);
  };
  const timer = setInterval(tick, 1000 / rate);
  console.error(`append-load: ${rate} rollouts/s on ${db}`);
  await new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()));
  clearInterval(timer);
  await Promise.all(running);
  const seconds = (performance.now() - started) / 1000;
  await handle.close();
  const out: AppendLoadResult = {
    appends: times.length,
    events,
    seconds,
    appendsPerSec: times.length / seconds,
    eventsPerSec: events / seconds,
    skipped,
    p50Ms: percentile(times, 50),
    p99Ms: percentile(times, 99),
  };
  console.log(JSON.stringify(out));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv[2] ?? '', Number(process.argv[3] ?? 10), Number(process.argv[4] ?? 4)).catch(
    (err: unknown) => {
      console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
      process.exit(1);
    },
  );
}
