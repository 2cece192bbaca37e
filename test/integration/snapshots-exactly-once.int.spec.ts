import { SchedulerRegistry } from '@nestjs/schedule';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../../src/database/database.js';
import { MetricsService } from '../../src/metrics/metrics.service.js';
import { SNAPSHOT_JOB } from '../../src/snapshots/snapshots.service.js';
import { type SamplePlatform, startSamplePlatform } from '../fixtures/sample-platform.js';
import { settleLedger, startTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, onPostgres, type TestDatabase } from '../support/database.js';
import { waitFor } from '../support/wait.js';

/**
 * Two replicas on one Postgres, both scheduling every second for ten seconds: each tick of each
 * target is snapshotted exactly once, counted in the ledger itself. PGlite is one process and one
 * session, so this only means something on Postgres.
 */
const RUN_MS = 10_000;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe.runIf(onPostgres)('one snapshot per target per tick across two replicas (postgres)', () => {
  let db: TestDatabase;
  let admin: DatabaseHandle;
  const platforms: SamplePlatform[] = [];
  const replicas: TestApp[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    admin = await db.reopen(2);
    platforms.push(await startSamplePlatform({ versions: { gateway: '1.0.0' } }));
    platforms.push(await startSamplePlatform({ versions: { identity: '3.2.0' } }));
  });
  afterAll(async () => {
    for (const r of replicas) await r.close().catch(() => {});
    for (const p of platforms) await p.close();
    await db?.drop();
  });

  it('records exactly one snapshot per target per tick, whoever claims it', async () => {
    const env = {
      SNAPSHOT_TARGETS: `alpha=${platforms[0]!.url},beta=${platforms[1]!.url}`,
      SNAPSHOT_CRON: '* * * * * *',
      SNAPSHOT_TIMEOUT_MS: '800',
      SNAPSHOT_RETRIES: '0',
    };
    for (let i = 0; i < 2; i++) {
      replicas.push(await startTestApp({ db: { ...db, handle: await db.reopen(5) }, env }));
    }
    await sleep(RUN_MS);

    // Stop scheduling on both, let every claimed tick finish, then sequence everything.
    for (const r of replicas) await r.app.get(SchedulerRegistry).getCronJob(SNAPSHOT_JOB).stop();
    await waitFor('every claimed tick to be recorded', async () => {
      const { rows } = await sql<{ n: number }>`
        select count(*)::int as n from snapshot_tick where completed_at is null`.execute(admin.db);
      return Number(rows[0]?.n) === 0;
    });
    await settleLedger(replicas[0]!);

    // Counted in the ledger: per target and tick, one SnapshotTaken or SnapshotFailed.
    const { rows } = await sql<{ stream_id: string; tick_at: string; n: number }>`
      select e.stream_id, e.data->>'tickAt' as tick_at, count(*)::int as n
      from ledger l join event e on e.id = l.event_row_id
      where e.type in ('SnapshotTaken', 'SnapshotFailed')
      group by 1, 2 order by 1, 2`.execute(admin.db);
    const perTarget = (stream: string) => rows.filter((r) => r.stream_id === stream);
    expect(
      rows.every((r) => Number(r.n) === 1),
      JSON.stringify(rows.filter((r) => Number(r.n) !== 1)),
    ).toBe(true);
    // A busy machine may let a tick pass on both replicas (cron skips a late timer), never double it.
    expect(perTarget('snapshots-alpha').length).toBeGreaterThanOrEqual(RUN_MS / 1000 / 2);
    expect(perTarget('snapshots-beta').length).toBeGreaterThanOrEqual(RUN_MS / 1000 / 2);
    // Every tick is a whole second of the schedule.
    expect(rows.every((r) => r.tick_at.endsWith(':00.000Z') || /\d\d\.000Z$/.test(r.tick_at))).toBe(true);

    // Every claim became exactly one event, and the losing replica saw the tick as taken.
    const { rows: claims } = await sql<{ n: number; replicas: number }>`
      select count(*)::int as n, count(distinct claimed_by)::int as replicas from snapshot_tick`.execute(
      admin.db,
    );
    expect(Number(claims[0]?.n)).toBe(rows.length);
    const attempts = await Promise.all(
      replicas.map(async (r) => {
        const metric = await r.app
          .get(MetricsService)
          .registry.getSingleMetric('snapshot_ticks_total')
          ?.get();
        const sum = (outcome: string) =>
          (metric?.values ?? []).filter((v) => v.labels.outcome === outcome).reduce((s, v) => s + v.value, 0);
        return { recorded: sum('taken') + sum('failed'), skipped: sum('skipped') };
      }),
    );
    console.info(
      `exactly once: ${rows.length} snapshots for ${perTarget('snapshots-alpha').length} + ${perTarget('snapshots-beta').length} ` +
        `target ticks; per replica recorded/skipped: ${attempts.map((a) => `${a.recorded}/${a.skipped}`).join(', ')}; ` +
        `claims won by ${claims[0]?.replicas} replica(s)`,
    );
    expect(attempts.reduce((s, a) => s + a.recorded, 0)).toBe(rows.length);
    // Both replicas ran the schedule: each either recorded ticks or found them claimed.
    for (const a of attempts) expect(a.recorded + a.skipped).toBeGreaterThanOrEqual(RUN_MS / 1000 / 2);
    expect(attempts.reduce((s, a) => s + a.skipped, 0)).toBeGreaterThan(0);
  });
});
