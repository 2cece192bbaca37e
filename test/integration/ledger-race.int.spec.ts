import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConcurrencyConflict } from '../../src/common/errors.js';
import type { DatabaseHandle } from '../../src/database/database.js';
import { EventStore } from '../../src/event-store/event-store.repository.js';
import { eventHash } from '../../src/ledger/hashing.js';
import { LedgerRepository } from '../../src/ledger/ledger.repository.js';
import { LedgerService } from '../../src/ledger/ledger.service.js';
import type { LedgerEntry } from '../../src/ledger/ledger.types.js';
import { SequencerService } from '../../src/ledger/sequencer.service.js';
import { AUTH, startTestApp, type TestApp } from '../support/app.js';
import { onPostgres } from '../support/database.js';
import { waitFor as waitUntil } from '../support/wait.js';

/**
 * The acceptance test. Many connections append concurrently, with expected-version
 * conflicts, transactions rolled back on purpose and transactions that commit late, while the
 * sequencer runs in the background and a reader tails the ledger. The reader must see every
 * committed event exactly once, at positions 1..N with no gap, in each stream's own order, and
 * never an event that was rolled back.
 *
 * Real Postgres gets the full size; PGlite (one session, so everything is serialised) a smaller one.
 * Reproduce a run with RACE_SEED=<seed printed in the failure message>.
 */
const SIZE = onPostgres
  ? { events: 20_000, streams: 200, writers: 16, chaosWorkers: 3, rollbackHoldMs: 150, lateHoldMs: 800 }
  : { events: 2_000, streams: 200, writers: 16, chaosWorkers: 2, rollbackHoldMs: 10, lateHoldMs: 40 };
const SEED = Number(process.env.RACE_SEED ?? 0x5eed_2026);
const READ_PAGE = 1000;
const DEADLINE_MS = 60_000;

/** mulberry32: a small, seeded PRNG, so each worker's choices are the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const waitFor = (what: string, check: () => Promise<boolean> | boolean) =>
  waitUntil(what, check, { deadlineMs: DEADLINE_MS });

class DeliberateRollback extends Error {}

describe(`ledger under concurrent appends (${onPostgres ? 'postgres' : 'pglite'}, seed ${SEED})`, () => {
  let t: TestApp;
  let writeHandle: DatabaseHandle;
  let chaosHandle: DatabaseHandle;

  beforeAll(async () => {
    // The app runs its normal background sequencer loop on its own pool.
    t = await startTestApp({
      env: { SEQUENCER_POLL_MS: '50', SEQUENCER_BATCH: '1000', CHECKPOINT_EVERY: '500' },
    });
    // Writers get 16 connections of their own; the rollback/late-commit transactions a few more.
    writeHandle = onPostgres ? await t.db.reopen(SIZE.writers) : t.handle;
    chaosHandle = onPostgres ? await t.db.reopen(SIZE.chaosWorkers) : t.handle;
  });
  afterAll(() => t?.close());

  it('keeps each stream in its own order when many appends create it at once', async () => {
    // Sixteen appends to one new stream, all at the same moment, round after round. Whichever
    // order they win the stream in, the ledger must list them as versions 1..16.
    const store = new EventStore(writeHandle);
    const ledger = t.app.get(LedgerService);
    const repo = t.app.get(LedgerRepository);
    const from = (await ledger.head()).position;
    const rounds = onPostgres ? 24 : 5;
    for (let r = 0; r < rounds; r++) {
      await Promise.all(
        Array.from({ length: SIZE.writers }, (_, w) =>
          store.append(`burst-${r}`, [{ type: 'Burst', data: { r, w } }], { expectedVersion: 'any' }),
        ),
      );
    }
    await waitFor('the sequencer to catch up', async () => (await repo.pendingCount()) === 0);
    const entries: LedgerEntry[] = [];
    for (let after = from; ; ) {
      const { events, next } = await ledger.page(after, READ_PAGE);
      entries.push(...events);
      if (next === null) break;
      after = next;
    }
    const burst = entries.filter((e) => e.streamId.startsWith('burst-'));
    expect(burst).toHaveLength(rounds * SIZE.writers);
    const at = new Map<string, number>();
    const outOfOrder: string[] = [];
    for (const e of burst) {
      const expected = (at.get(e.streamId) ?? 0) + 1;
      if (e.streamVersion !== expected)
        outOfOrder.push(`${e.streamId} v${e.streamVersion} at ${e.position}, expected v${expected}`);
      at.set(e.streamId, e.streamVersion);
    }
    expect(outOfOrder).toEqual([]);
  });

  it('gives every committed event exactly one gapless position, and never a rolled-back one', async () => {
    const store = new EventStore(writeHandle);
    const ledger = t.app.get(LedgerService);
    const sequencer = t.app.get(SequencerService);
    const seedNote = `(RACE_SEED=${SEED})`;
    // Whatever an earlier case of this file left is already sequenced; this case starts after it.
    const repo = t.app.get(LedgerRepository);
    await waitFor('earlier events to be sequenced', async () => (await repo.pendingCount()) === 0);
    const base = (await ledger.head()).position;
    const { rows: before } = await sql<{ event_id: string }>`select event_id from event`.execute(t.handle.db);
    const preexisting = new Set(before.map((r) => r.event_id));
    expect(preexisting.size).toBe(base);

    // ---- what the writers did ----
    const committed = new Set<string>(); // appended through the store and acknowledged
    const refused = new Set<string>(); // refused with a ConcurrencyConflict
    const rolledBack = new Set<string>(); // inserted, then rolled back on purpose
    const lateCommitted = new Set<string>(); // inserted, held uncommitted for a while, then committed
    /** For each late event: the last position the reader had seen just before its commit. */
    const seenBeforeLateCommit = new Map<string, number>();
    const stats = { appends: 0, conflicts: 0, staleOnPurpose: 0, retries: 0, rollbacks: 0, lateCommits: 0 };

    // ---- the reader, tailing the ledger the whole time ----
    const seen: LedgerEntry[] = [];
    const seenIds = new Set<string>();
    const readerProblems: string[] = [];
    let readerLast = base;
    let readerStop = false;
    const reader = (async () => {
      while (!readerStop) {
        const { events } = await ledger.page(readerLast, READ_PAGE);
        for (const e of events) {
          if (e.position !== readerLast + 1)
            readerProblems.push(`after ${readerLast} came position ${e.position}`);
          if (seenIds.has(e.eventId)) readerProblems.push(`event ${e.eventId} seen twice`);
          if (rolledBack.has(e.eventId)) readerProblems.push(`rolled-back event ${e.eventId} was sequenced`);
          if (refused.has(e.eventId)) readerProblems.push(`refused event ${e.eventId} was sequenced`);
          seenIds.add(e.eventId);
          seen.push(e);
          readerLast = e.position;
        }
        if (events.length < READ_PAGE) await sleep(10);
      }
    })();

    // ---- 16 writers through the EventStore ----
    let reserved = 0;
    const writer = async (w: number) => {
      const rand = prng(SEED + 7919 * (w + 1));
      const known = new Map<string, number>(); // this writer's (often stale) view of stream versions
      while (reserved < SIZE.events) {
        const k = Math.min(1 + Math.floor(rand() * 8), SIZE.events - reserved);
        reserved += k;
        const streamId = `race-${Math.floor(rand() * SIZE.streams)}`;
        const events = Array.from({ length: k }, (_, i) => ({
          eventId: randomUUID(),
          type: 'RaceEvent',
          data: { writer: w, i, n: Math.floor(rand() * 1e9) },
          metadata: { source: 'race' },
        }));
        const mode = rand();
        const knownVersion = known.get(streamId) ?? 0;
        let expectedVersion: 'any' | number = 'any';
        if (mode < 0.25) {
          expectedVersion = knownVersion; // exact, from a view that other writers make stale
        } else if (mode < 0.3) {
          expectedVersion = Math.max(0, knownVersion - 1 - Math.floor(rand() * 3)); // stale on purpose
          stats.staleOnPurpose++;
        }
        try {
          const res = await store.append(streamId, events, { expectedVersion });
          stats.appends++;
          known.set(streamId, res.streamVersion);
          for (const id of res.eventIds) committed.add(id);
          if (rand() < 0.03) {
            // A client retry of the same append: the original result, never a second copy.
            const again = await store.append(streamId, events, { expectedVersion });
            stats.retries++;
            if (!again.duplicate || again.streamVersion !== res.streamVersion)
              throw new Error(`retry of ${streamId} was not answered as a duplicate ${seedNote}`);
          }
        } catch (err) {
          if (!(err instanceof ConcurrencyConflict)) throw err;
          stats.conflicts++;
          reserved -= k;
          for (const e of events) refused.add(e.eventId);
          known.set(streamId, err.actual === 'no_stream' ? 0 : err.actual);
        }
      }
    };

    // ---- chaos: transactions that insert like the store does, then roll back or commit late ----
    let writersDone = false;
    const rawAppend = async (
      rand: () => number,
      streamId: string,
      outcome: 'rollback' | 'late',
      holdMs: number,
    ) => {
      const ids = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => randomUUID());
      try {
        await chaosHandle.db.transaction().execute(async (trx) => {
          // Exactly the store's steps: stream lock, stream row, compare-and-set row lock, events.
          await sql`select pg_advisory_xact_lock(hashtextextended(${streamId}, 0))`.execute(trx);
          await sql`insert into stream (stream_id, stream_type, version, head_hash)
                    values (${streamId}, 'chaos', 0, ${'0'.repeat(64)})
                    on conflict (stream_id) do nothing`.execute(trx);
          const { rows } = await sql<{ version: number; head_hash: string }>`
            select version, head_hash from stream where stream_id = ${streamId} for update`.execute(trx);
          const stream = rows[0]!;
          const recordedAt = new Date().toISOString();
          let prevHash = stream.head_hash;
          for (const [i, eventId] of ids.entries()) {
            const e = {
              eventId,
              streamId,
              streamVersion: Number(stream.version) + i + 1,
              type: outcome === 'late' ? 'LateEvent' : 'DoomedEvent',
              schemaVersion: 1,
              data: { outcome, i },
              metadata: { source: 'chaos' },
              recordedAt,
            };
            const hash = eventHash(prevHash, e);
            await sql`insert into event (event_id, stream_id, stream_version, type, schema_version, data,
                                         metadata, recorded_at, prev_hash, hash)
                      values (${e.eventId}, ${streamId}, ${e.streamVersion}, ${e.type}, 1,
                              ${JSON.stringify(e.data)}::jsonb, ${JSON.stringify(e.metadata)}::jsonb,
                              ${recordedAt}::timestamptz, ${prevHash}, ${hash})`.execute(trx);
            prevHash = hash;
          }
          await sql`update stream set version = ${Number(stream.version) + ids.length}, head_hash = ${prevHash}
                    where stream_id = ${streamId}`.execute(trx);
          if (outcome === 'rollback') for (const id of ids) rolledBack.add(id);
          await sleep(holdMs); // uncommitted, while everybody else keeps committing
          if (outcome === 'rollback') throw new DeliberateRollback();
          for (const id of ids) seenBeforeLateCommit.set(id, readerLast);
        });
        for (const id of ids) lateCommitted.add(id);
        stats.lateCommits++;
      } catch (err) {
        if (!(err instanceof DeliberateRollback)) throw err;
        stats.rollbacks++;
      }
    };
    const chaos = async (c: number) => {
      const rand = prng(SEED ^ (0x9e37_79b9 * (c + 1)));
      // Runs as long as the writers do, and at least a few rounds of each kind.
      for (let i = 0; !writersDone || i < 6; i++) {
        // Half of them take the row lock of a stream the writers use, as a real append would.
        const streamId =
          rand() < 0.5 ? `race-${Math.floor(rand() * SIZE.streams)}` : `chaos-${c}-${i}-${rand() < 0.5}`;
        const late = i % 3 === 1;
        const hold = Math.floor(rand() * (late ? SIZE.lateHoldMs : SIZE.rollbackHoldMs));
        await rawAppend(rand, streamId, late ? 'late' : 'rollback', hold);
        await sleep(5 + Math.floor(rand() * 20));
      }
    };

    const started = Date.now();
    const chaosDone = Promise.all(Array.from({ length: SIZE.chaosWorkers }, (_, c) => chaos(c)));
    try {
      await Promise.all(Array.from({ length: SIZE.writers }, (_, w) => writer(w)));
    } finally {
      writersDone = true;
      await chaosDone;
    }
    const writeMs = Date.now() - started;

    // Every transaction has ended: the reader must reach every committed event.
    const { rows: afterRows } = await sql<{ event_id: string }>`select event_id from event`.execute(
      t.handle.db,
    );
    const storedIds = new Set(afterRows.map((r) => r.event_id).filter((id) => !preexisting.has(id)));
    const total = storedIds.size;
    // Wait until the sequencer has nothing pending and the reader has reached its head; whether
    // that is every event is what the assertions below check.
    try {
      await waitFor(`the sequencer and the reader to catch up ${seedNote}`, async () => {
        if ((await repo.pendingCount()) > 0) return false;
        return readerLast >= (await repo.head()).position;
      });
    } finally {
      readerStop = true;
      await reader;
    }
    expect(await sequencer.drain()).toBe(0); // the background loop had already sequenced everything
    const { events: beyond } = await ledger.page(readerLast, 10);
    expect(beyond, `entries after the reader's last position ${seedNote}`).toEqual([]);

    // The scenario really happened.
    expect(committed.size, seedNote).toBe(SIZE.events);
    expect(stats.conflicts, seedNote).toBeGreaterThan(0);
    expect(stats.staleOnPurpose, seedNote).toBeGreaterThan(0);
    expect(stats.retries, seedNote).toBeGreaterThan(0);
    expect(stats.rollbacks, seedNote).toBeGreaterThan(0);
    expect(stats.lateCommits, seedNote).toBeGreaterThan(0);

    // Exactly once, positions base+1..base+N without a gap, nothing rolled back or refused.
    expect(readerProblems, seedNote).toEqual([]);
    expect(seen.length, seedNote).toBe(total);
    expect(seenIds.size, seedNote).toBe(total);
    expect(
      seen.every((e, i) => e.position === base + i + 1),
      seedNote,
    ).toBe(true);
    expect(
      [...storedIds].filter((id) => !seenIds.has(id)),
      `stored but never seen ${seedNote}`,
    ).toEqual([]);
    expect(
      [...seenIds].filter((id) => !committed.has(id) && !lateCommitted.has(id)),
      `seen but never acknowledged ${seedNote}`,
    ).toEqual([]);
    expect([...committed, ...lateCommitted].filter((id) => !seenIds.has(id))).toEqual([]);
    expect(total).toBe(committed.size + lateCommitted.size);
    expect([...rolledBack].filter((id) => seenIds.has(id) || storedIds.has(id))).toEqual([]);
    expect([...refused].filter((id) => seenIds.has(id) || storedIds.has(id))).toEqual([]);

    // A late commit lands after whatever the reader had already seen (never behind its cursor).
    const positionOf = new Map(seen.map((e) => [e.eventId, e.position]));
    const lateBehind = [...seenBeforeLateCommit].filter(
      ([id, before]) => (positionOf.get(id) ?? 0) <= before,
    );
    expect(lateBehind, `late events placed behind the reader ${seedNote}`).toEqual([]);

    // Each stream appears in the ledger in its own version order: 1, 2, 3, …
    const streamAt = new Map<string, number>();
    const outOfOrder: string[] = [];
    for (const e of seen) {
      const expected = (streamAt.get(e.streamId) ?? 0) + 1;
      if (e.streamVersion !== expected)
        outOfOrder.push(`${e.streamId} v${e.streamVersion} at ${e.position}, expected v${expected}`);
      streamAt.set(e.streamId, e.streamVersion);
    }
    expect(outOfOrder, seedNote).toEqual([]);

    // And the whole chain, with its signed checkpoints, verifies over HTTP.
    const verify = await request(t.server).get('/api/v1/ledger/verify').set(AUTH).expect(200);
    const { rows: cp } = await sql<{ n: number }>`select count(*)::int as n from checkpoint`.execute(
      t.handle.db,
    );
    expect(verify.body).toEqual({
      ok: true,
      verifiedThrough: base + total,
      checkpointsVerified: Number(cp[0]?.n),
    });
    expect(Number(cp[0]?.n)).toBeGreaterThan(0);

    console.info(
      `race ${onPostgres ? 'postgres' : 'pglite'}: ${total} events (${SIZE.events} appended, ` +
        `${lateCommitted.size} late) in ${writeMs} ms; ${JSON.stringify(stats)}`,
    );
  });
});
