import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Json } from '../../src/database/schema.js';
import type { LedgerEntry } from '../../src/ledger/ledger.types.js';
import { ProjectionsRepository } from '../../src/projections/projections.repository.js';
import { RolloutsRepository } from '../../src/rollouts/rollouts.repository.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

let tdb: TestDatabase;
let repo: RolloutsRepository;

beforeAll(async () => {
  tdb = await createTestDatabase();
  repo = new RolloutsRepository(tdb.handle, new ProjectionsRepository(tdb.handle));
});
afterAll(() => tdb.drop());

const LATER_EVENTS = [
  'PlanRevised',
  'RolloutStarted',
  'StepCompleted',
  'RollbackStarted',
  'RollbackCompleted',
  'RolloutCompleted',
  'RolloutAborted',
  'ReadbackRecorded',
] as const;

const plan = (n: number, revision: number) => ({
  title: `rollout ${n} r${revision}`,
  scope: revision % 2 ? 'stack-wide' : null,
  environment: ['production', 'staging', null][(n + revision) % 3] ?? null,
  products: [{ product: `p${revision % 3}` }, { product: 'shared' }, { product: `p${revision % 3}` }],
  sequence: Array.from({ length: (n + revision) % 4 }, (_, i) => ({ stepId: `s${i}` })),
});

/**
 * Ledger entries of `rollouts` rollouts, each planned first and then given a random run of later
 * events, the streams interleaved in a random order, with positions and stream versions in order.
 */
function entriesOf(runs: { events: number[]; at: number }[]): LedgerEntry[] {
  const streams = runs.map((r, n) => {
    const id = randomUUID();
    let revision = 1;
    const events: { type: string; data: Json }[] = [
      { type: 'RolloutPlanned', data: { rolloutId: id, plan: plan(n, revision) } as unknown as Json },
      ...r.events.map((k) => {
        const type = LATER_EVENTS[k % LATER_EVENTS.length] as string;
        if (type === 'PlanRevised') revision++;
        return { type, data: (type === 'PlanRevised' ? { plan: plan(n, revision) } : {}) as unknown as Json };
      }),
    ];
    return { id, events, next: 0 };
  });
  // Interleave: each step takes the next event of the stream the schedule names.
  const order = runs.flatMap((r, n) => Array.from({ length: r.events.length + 1 }, () => ({ n, at: r.at })));
  order.sort((a, b) => a.at - b.at || a.n - b.n);
  const entries: LedgerEntry[] = [];
  let position = 0;
  const t0 = Date.parse('2026-01-01T00:00:00.000Z');
  for (let i = 0; i < order.length; i++) {
    // Round-robin over the streams that still have events, starting where the schedule says.
    const live = streams.filter((s) => s.next < s.events.length);
    const s = live[(order[i]?.n ?? 0) % live.length];
    if (!s) break;
    const e = s.events[s.next++] as { type: string; data: Json };
    position++;
    entries.push({
      position,
      hash: 'h'.repeat(64),
      prevHash: 'p'.repeat(64),
      streamId: `rollout-${s.id}`,
      streamVersion: s.next,
      eventId: randomUUID(),
      type: e.type,
      schemaVersion: 1,
      data: e.data,
      metadata: { actor: { id: 'k', name: `actor-${position % 3}` } },
      recordedAt: new Date(t0 + position * 1000).toISOString(),
      eventHash: 'e'.repeat(64),
      eventPrevHash: 'p'.repeat(64),
    });
  }
  return entries;
}

async function freshTable(): Promise<string> {
  const name = `summary_test_${randomUUID().replaceAll('-', '')}`;
  await sql`create table ${sql.table(name)} (like rollout_summary_v1 including all)`.execute(tdb.handle.db);
  return name;
}

async function rowsOf(table: string): Promise<unknown[]> {
  const { rows } = await sql`select * from ${sql.table(table)} order by rollout_id`.execute(tdb.handle.db);
  return rows;
}

async function applyInChunks(table: string, entries: LedgerEntry[], sizes: number[]): Promise<void> {
  let at = 0;
  for (let i = 0; at < entries.length; i++) {
    const size = Math.max(1, sizes[i % sizes.length] ?? 1);
    const chunk = entries.slice(at, at + size);
    at += size;
    await tdb.handle.db.transaction().execute((trx) => repo.applyToSummary(trx, table, chunk));
  }
}

describe('the rollout summary projection, folded per batch', () => {
  it('gives the same rows however the entries are cut into batches', async () => {
    // One entry per call exercises only the UPDATE of earlier rollouts after each INSERT; one
    // call for everything folds whole rollouts into their INSERT; random cuts mix both.
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ events: fc.array(fc.nat(20), { maxLength: 12 }), at: fc.nat(5) }), {
          minLength: 1,
          maxLength: 8,
        }),
        fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 5 }),
        async (runs, sizes) => {
          const entries = entriesOf(runs);
          const [one, all, cut] = [await freshTable(), await freshTable(), await freshTable()];
          await applyInChunks(one, entries, [1]);
          await applyInChunks(all, entries, [entries.length]);
          await applyInChunks(cut, entries, sizes);
          const expected = await rowsOf(one);
          expect(expected).toHaveLength(runs.length);
          expect(await rowsOf(all)).toEqual(expected);
          expect(await rowsOf(cut)).toEqual(expected);
          for (const t of [one, all, cut]) await sql`drop table ${sql.table(t)}`.execute(tdb.handle.db);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('holds what each event says: counts, times, status, and the latest plan', async () => {
    const table = await freshTable();
    const runs = [{ events: [1, 2, 2, 0, 2, 3, 4, 2, 5], at: 0 }];
    const entries = entriesOf(runs);
    // Planned and started in one batch; the rest one by one, against the stored row.
    await applyInChunks(table, entries, [2, 1]);
    const [row] = (await rowsOf(table)) as Record<string, unknown>[];
    const at = (position: number) => new Date(Date.parse('2026-01-01T00:00:00.000Z') + position * 1000);
    expect(row).toMatchObject({
      title: 'rollout 0 r2',
      scope: null,
      environment: null,
      products: ['p2', 'shared'],
      steps_planned: 2,
      plan_revision: 2,
      // Two steps before the revision, which resets the count, then two after it.
      steps_completed: 2,
      rollbacks: 1,
      status: 'completed',
      created_by: 'actor-1',
      created_at: at(1),
      started_at: at(2),
      completed_at: at(10),
      aborted_at: null,
      updated_at: at(10),
    });
    expect(Number(row?.version)).toBe(10);
    expect(Number(row?.last_position)).toBe(10);
  });
});
