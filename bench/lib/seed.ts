import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { uuidv7 } from '../../src/common/ids.js';
import { openDatabase } from '../../src/database/database.js';
import { migrateToLatest } from '../../src/database/migrator.js';
import type { Json } from '../../src/database/schema.js';
import { EventStore } from '../../src/event-store/event-store.repository.js';
import type { NewEvent } from '../../src/event-store/event-store.types.js';
import { REPLAY_ROLLOUT_ID, scenarioEvents } from '../../test/support/scenario-events.js';
import { loadScenarios } from '../../test/support/scenarios.js';
import { adminQuery, dbUrl } from './pg.js';
import { startServer } from './server.js';

/** One rollout's events as the API records them: a scenario replayed through decide(). */
interface RolloutTemplate {
  scenario: string;
  /** JSON of each event's data with the replay id as a placeholder. */
  events: { type: string; dataJson: string }[];
}

/** The 13 conformance scenarios as event templates (realistic plans, readbacks, steps, rollbacks). */
export function rolloutTemplates(): RolloutTemplate[] {
  // Compiled into dist-bench/, the helper's own default path is one level off: resolve from the project.
  const dir = process.env.SCENARIOS_DIR ?? path.resolve('../shared/scenarios');
  return loadScenarios(dir).map((s) => ({
    scenario: s.scenario,
    events: scenarioEvents(s).map((e) => ({ type: e.type, dataJson: JSON.stringify(e.data) })),
  }));
}

/** The events of rollout number `i` (cycling through the scenarios) with a fresh rollout id. */
export function rolloutEvents(
  templates: readonly RolloutTemplate[],
  i: number,
  rolloutId: string,
): { streamId: string; events: NewEvent[] } {
  const t = templates[i % templates.length] as RolloutTemplate;
  const requestId = randomUUID();
  return {
    streamId: `rollout-${rolloutId}`,
    events: t.events.map((e) => ({
      type: e.type,
      data: JSON.parse(e.dataJson.replaceAll(REPLAY_ROLLOUT_ID, rolloutId)) as Json,
      metadata: {
        actor: { id: 'key-bench', name: 'bench-pipeline', role: 'engineer' },
        requestId,
        source: 'rest',
        requestDigest: '0'.repeat(64),
      },
    })),
  };
}

export const avgEventsPerRollout = (templates: readonly RolloutTemplate[]): number =>
  templates.reduce((n, t) => n + t.events.length, 0) / templates.length;

export async function migrate(dbName: string): Promise<void> {
  const handle = await openDatabase({ database: { kind: 'postgres', url: dbUrl(dbName), poolMax: 2 } });
  try {
    await migrateToLatest(handle.db);
  } finally {
    await handle.close();
  }
}

/**
 * Appends `rollouts` rollouts through the service's own EventStore.append (same validation,
 * hashing and SQL as the API), one append per rollout, `workers` at a time. Durability is relaxed
 * (synchronous_commit off for this database, then a CHECKPOINT) only while seeding: nothing timed
 * later depends on it.
 */
export async function seedRollouts(dbName: string, rollouts: number, workers = 8): Promise<number> {
  const templates = rolloutTemplates();
  await adminQuery(`alter database ${dbName} set synchronous_commit = off`);
  const handle = await openDatabase({
    database: { kind: 'postgres', url: dbUrl(dbName), poolMax: workers },
  });
  const store = new EventStore(handle);
  let next = 0;
  let events = 0;
  const started = performance.now();
  let last = { at: started, events: 0 };
  const progress = setInterval(() => {
    const now = performance.now();
    const s = (now - started) / 1000;
    // The rate since the last line, beside the average: a slowdown shows at once.
    const recent = (events - last.events) / ((now - last.at) / 1000);
    last = { at: now, events };
    console.log(
      `  seeding: ${next.toLocaleString('en-US')}/${rollouts.toLocaleString('en-US')} rollouts, ` +
        `${events.toLocaleString('en-US')} events, ${Math.round(recent).toLocaleString('en-US')} events/s ` +
        `(average ${Math.round(events / s).toLocaleString('en-US')})`,
    );
  }, 5000);
  try {
    await Promise.all(
      Array.from({ length: workers }, async () => {
        for (let i = next++; i < rollouts; i = next++) {
          const { streamId, events: batch } = rolloutEvents(templates, i, uuidv7());
          await store.append(streamId, batch, { expectedVersion: 'no_stream', streamType: 'rollout' });
          events += batch.length;
        }
      }),
    );
  } finally {
    clearInterval(progress);
    await handle.close();
    await adminQuery(`alter database ${dbName} reset synchronous_commit`);
  }
  await adminQuery('checkpoint');
  console.log(
    `  seeded ${rollouts.toLocaleString('en-US')} rollouts = ${events.toLocaleString('en-US')} events in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  return events;
}

export interface LedgerState {
  events: number;
  head: number;
  projection: number;
}

export async function ledgerState(dbName: string): Promise<LedgerState> {
  const client = new pg.Client({ connectionString: dbUrl(dbName) });
  await client.connect();
  try {
    const { rows } = await client.query<{ events: string; head: string; projection: string | null }>(
      `select (select count(*) from event) as events,
              (select position from sequencer_state where id = 1) as head,
              (select min(position) from projection_checkpoint where active) as projection`,
    );
    const r = rows[0];
    return { events: Number(r?.events), head: Number(r?.head), projection: Number(r?.projection ?? 0) };
  } finally {
    await client.end();
  }
}

/**
 * Runs the built service until every event has a ledger position (and, unless told not to, the
 * projections caught up), printing progress, then stops it. Returns the time it took.
 */
export async function sequenceAll(
  dbName: string,
  waitForProjections = true,
): Promise<{ seconds: number; events: number }> {
  const server = await startServer({
    databaseUrl: dbUrl(dbName),
    env: { SEQUENCER_POLL_MS: '50', DB_POOL_MAX: '4' },
    timeoutMs: 120_000,
  });
  const started = performance.now();
  try {
    for (let last = performance.now(); ; ) {
      const s = await ledgerState(dbName);
      if (s.head >= s.events && (!waitForProjections || s.projection >= s.head)) {
        const seconds = (performance.now() - started) / 1000;
        console.log(`  sequenced ${s.head.toLocaleString('en-US')} events in ${seconds.toFixed(1)} s`);
        return { seconds, events: s.events };
      }
      if (performance.now() - last > 5000) {
        last = performance.now();
        console.log(
          `  sequencing: head ${s.head.toLocaleString('en-US')}/${s.events.toLocaleString('en-US')}, projections at ${s.projection.toLocaleString('en-US')}`,
        );
      }
      await sleep(500);
    }
  } finally {
    await server.stop();
  }
}
