import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventStore } from '../../src/event-store/event-store.repository.js';
import { snapshotIdFor, snapshotStreamId } from '../../src/snapshots/snapshot.events.js';
import { SnapshotsRepository } from '../../src/snapshots/snapshots.repository.js';
import { SnapshotsService } from '../../src/snapshots/snapshots.service.js';
import { type SamplePlatform, startSamplePlatform } from '../fixtures/sample-platform.js';
import { startTestApp, type TestApp } from '../support/app.js';

// The database, not luck, keeps a tick to one snapshot: a second claim of the same (target,
// tick) loses, a replayed append of the tick's event records nothing, and a claim whose replica
// died is recorded as an abandoned SnapshotFailed by whoever runs the next tick.

/** 03:00:00 UTC on 29 February: a schedule that never fires while the tests run. */
const LEAP_DAY_CRON = '0 0 3 29 2 *';

let t: TestApp;
let platform: SamplePlatform;
let service: SnapshotsService;
let repo: SnapshotsRepository;

beforeAll(async () => {
  platform = await startSamplePlatform({ versions: { gateway: '1.4.2' } });
  t = await startTestApp({
    env: {
      SNAPSHOT_TARGETS: `production=${platform.url}`,
      SNAPSHOT_CRON: LEAP_DAY_CRON,
      SNAPSHOT_RETRIES: '0',
    },
  });
  service = t.app.get(SnapshotsService);
  repo = t.app.get(SnapshotsRepository);
});
afterAll(async () => {
  await t?.close();
  await platform?.close();
});

const snapshotEvents = async () => {
  const { rows } = await sql<{ event_id: string; type: string; tick_at: string; reason: string | null }>`
    select event_id, type, data->>'tickAt' as tick_at, data->>'reason' as reason
    from event where stream_id = ${snapshotStreamId('production')} order by stream_version`.execute(
    t.handle.db,
  );
  return rows;
};

describe('tick claims', () => {
  it('gives each (target, tick) to one claimant', async () => {
    const tick = new Date('2026-01-01T00:00:00.000Z');
    expect(await repo.claimTick('claims', tick, 'schedule', 'replica-a')).toBe(true);
    expect(await repo.claimTick('claims', tick, 'schedule', 'replica-b')).toBe(false);
    expect(
      await repo.claimTick('claims', new Date('2026-01-01T00:00:01.000Z'), 'schedule', 'replica-b'),
    ).toBe(true);
  });

  it('runs a tick once, however often it fires, and a replayed append records nothing', async () => {
    const now = new Date('2028-02-29T03:00:00.120Z');
    const [first] = await service.scheduledTick(now);
    const [again] = await service.scheduledTick(new Date('2028-02-29T02:59:59.950Z'));
    expect(first).toMatchObject({ status: 'taken', tickAt: '2028-02-29T03:00:00.000Z' });
    expect(again).toMatchObject({ status: 'skipped', tickAt: '2028-02-29T03:00:00.000Z', snapshotId: null });

    const events = await snapshotEvents();
    expect(events.filter((e) => e.tick_at === '2028-02-29T03:00:00.000Z')).toHaveLength(1);
    const id = snapshotIdFor('production', '2028-02-29T03:00:00.000Z');
    expect(first?.snapshotId).toBe(id);

    // A retry of the append (same derived id, same content) is answered as the original.
    const store = t.app.get(EventStore);
    const original = await store.findEvent(id);
    const replay = await store.append(snapshotStreamId('production'), [
      { eventId: id, type: original!.type, data: original!.data },
    ]);
    expect(replay.duplicate).toBe(true);
    expect(await snapshotEvents()).toHaveLength(events.length);
  });

  it('records a tick whose claimant died as an abandoned SnapshotFailed, once', async () => {
    await sql`insert into snapshot_tick (target, tick_at, trigger, claimed_by, claimed_at)
              values ('production', '2026-11-26T06:00:00Z', 'schedule', 'dead-replica', now() - interval '1 hour')`.execute(
      t.handle.db,
    );
    await service.scheduledTick(new Date('2026-11-26T08:15:00.000Z'));
    const abandoned = (await snapshotEvents()).filter((e) => e.tick_at === '2026-11-26T06:00:00.000Z');
    expect(abandoned).toEqual([
      expect.objectContaining({
        type: 'SnapshotFailed',
        reason: expect.stringMatching(
          /^abandoned: the replica dead-replica claimed this tick at .* and stopped before recording it$/,
        ),
      }),
    ]);
    const { rows } = await sql<{ outcome: string }>`
      select outcome from snapshot_tick where tick_at = '2026-11-26T06:00:00Z'`.execute(t.handle.db);
    expect(rows).toEqual([{ outcome: 'abandoned' }]);
    // The next tick finds nothing left to reap.
    await service.scheduledTick(new Date('2026-11-26T08:30:00.000Z'));
    expect((await snapshotEvents()).filter((e) => e.tick_at === '2026-11-26T06:00:00.000Z')).toHaveLength(1);
  });
});
