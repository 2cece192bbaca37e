import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../../src/auth/principal.js';
import type { DatabaseHandle } from '../../src/database/database.js';
import { EventStore } from '../../src/event-store/event-store.repository.js';
import { LedgerRepository } from '../../src/ledger/ledger.repository.js';
import { MetricsService } from '../../src/metrics/metrics.service.js';
import { ProjectionsRepository } from '../../src/projections/projections.repository.js';
import { RolloutsRepository } from '../../src/rollouts/rollouts.repository.js';
import { RolloutsService, type WriteContext } from '../../src/rollouts/rollouts.service.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { plan } from '../support/rollout-events.js';
import { waitFor } from '../support/wait.js';

// GET /api/v1/rollouts/:id keeps each rollout's folded state per process and reads only the events
// after it. These tests append through other replicas (their own services and, on Postgres,
// their own connection pools) and check that a replica never answers a rollout it has cached as
// it was, only as it is.

let tdb: TestDatabase;
let otherHandle: DatabaseHandle;

beforeAll(async () => {
  tdb = await createTestDatabase();
  // On Postgres another replica has a pool of its own; PGlite is one session for everybody.
  otherHandle = tdb.url ? await tdb.reopen(2) : tdb.handle;
});
afterAll(() => tdb.drop());

/** A replica: a service with its own caches (of folds, of stream heads, of the served version). */
function replica(handle: DatabaseHandle = tdb.handle): RolloutsService {
  const projections = new ProjectionsRepository(handle);
  return new RolloutsService(
    new EventStore(handle),
    new RolloutsRepository(handle, projections),
    new MetricsService(),
  );
}

/**
 * Gives every committed event its ledger position, as the sequencer would. On Postgres an event
 * waits until no older transaction of the whole server is still open (the xmin rule).
 */
async function sequenceAll(): Promise<void> {
  const ledger = new LedgerRepository(tdb.handle);
  await waitFor('every event sequenced', async () => {
    await ledger.sequenceBatch(1000);
    return (await ledger.pendingCount()) === 0;
  });
}

const principal: Principal = { id: 'key:test', name: 'tester', role: 'engineer' };
const ctx = (requestId: string): WriteContext => ({ principal, requestId });

describe('GET /:id with folded rollouts cached', () => {
  it('answers what another replica appended after the rollout was cached', async () => {
    const here = replica();
    const there = replica(otherHandle);
    const { id } = await here.create(plan, ctx('create'));
    const before = await here.get(id);
    expect(before).toMatchObject({ version: 1, status: 'planned' });

    await there.execute(id, { type: 'ApprovePlan', approver: 'alice', comment: 'ok' }, ctx('approve'));
    await there.execute(id, { type: 'StartRollout' }, ctx('start'));
    const after = await here.get(id);
    expect(after).toMatchObject({ version: 3, status: 'in_progress' });
    expect(after.approvals).toEqual([expect.objectContaining({ approver: 'alice', comment: 'ok' })]);
    // Exactly what a replica that never read it answers.
    expect(after).toEqual(await replica().get(id));
    // And the cached answer it had is untouched: states are shared, never changed in place.
    expect(before).toMatchObject({ version: 1, status: 'planned', approvals: [] });
  });

  it('answers the same rollout again, unchanged, when nothing was appended', async () => {
    const here = replica();
    const { id } = await here.create(plan, ctx('create-2'));
    await here.execute(id, { type: 'StartRollout' }, ctx('start-2'));
    const first = await here.get(id);
    const second = await here.get(id);
    expect(second).toEqual(first);
    expect(second).toEqual(await replica().get(id));
  });

  it('gives the ledger position once the last event is sequenced, though its version did not move', async () => {
    const here = replica();
    const { id } = await here.create(plan, ctx('create-3'));
    const unsequenced = await here.get(id);
    await sequenceAll();
    const sequenced = await here.get(id);
    expect(sequenced.version).toBe(unsequenced.version);
    expect(unsequenced.lastPosition).toBeNull();
    expect(sequenced.lastPosition).toEqual(expect.any(Number));
    expect(sequenced).toEqual(await replica().get(id));
  });

  it('still says 404 for a rollout that does not exist, and as it was for asOf', async () => {
    const here = replica();
    await expect(here.get('00000000-0000-4000-8000-000000000001')).rejects.toMatchObject({
      code: 'NotFound',
    });
    const { id } = await here.create(plan, ctx('create-4'));
    await here.get(id);
    await here.execute(id, { type: 'StartRollout' }, ctx('start-4'));
    await sequenceAll();
    const now = await here.get(id);
    const first = await here.get(id, { position: (now.lastPosition as number) - 1 });
    expect(first).toMatchObject({ version: 1, status: 'planned' });
    expect(await here.get(id)).toMatchObject({ version: 2, status: 'in_progress' });
  });

  it('reads each event with the size of its stored data, which bounds the cache', async () => {
    const here = replica();
    const { id } = await here.create(plan, ctx('sized'));
    const store = new EventStore(tdb.handle);
    const [planned] = await store.readStreamFrom(`rollout-${id}`, 0);
    const stored = await tdb.handle.db
      .selectFrom('event')
      .select(['data_jcs'])
      .where('stream_id', '=', `rollout-${id}`)
      .executeTakeFirstOrThrow();
    expect(planned?.dataBytes).toBe(Buffer.byteLength(stored.data_jcs ?? ''));
    expect(planned?.dataBytes).toBeGreaterThan(100);
    // The event a read starts at is only checked by its hash: no data, no size.
    const [head] = await store.readStreamFrom(`rollout-${id}`, 1);
    expect(head).toMatchObject({ streamVersion: 1, data: null, dataBytes: 0 });
  });
});
