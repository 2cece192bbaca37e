import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { CompiledQuery, type Kysely, sql, type Transaction } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConcurrencyConflict,
  type ExpectedVersion,
  IdempotencyConflict,
  InvalidInput,
} from '../../src/common/errors.js';
import { sqlState } from '../../src/database/pg-errors.js';
import type { Database, Json } from '../../src/database/schema.js';
import { EventStore } from '../../src/event-store/event-store.repository.js';
import type { NewEvent, StoredEvent } from '../../src/event-store/event-store.types.js';
import { GroupCommitter } from '../../src/event-store/group-commit.js';
import { GroupReader } from '../../src/event-store/group-read.js';
import {
  canonicalJson,
  checkpointPayload,
  eventHash,
  GENESIS_HASH,
  ledgerHash,
} from '../../src/ledger/hashing.js';
import { LedgerRepository } from '../../src/ledger/ledger.repository.js';
import { createTestDatabase, onPostgres, type TestDatabase } from '../support/database.js';

let tdb: TestDatabase;
let store: EventStore;

beforeAll(async () => {
  tdb = await createTestDatabase();
  store = new EventStore(tdb.handle);
});
afterAll(() => tdb.drop());

/** A stream id no other test uses. */
const newStream = (prefix = 'rollout') => `${prefix}-${randomUUID()}`;

const event = (n: number | string = 1, extra: Partial<NewEvent> = {}): NewEvent => ({
  type: 'StepCompleted',
  data: { step: n },
  ...extra,
});

/** The error `promise` rejects with; fails the test when it resolves. */
async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection, but it resolved');
}

/** Runs `work` in a transaction that is then rolled back, so that nothing it wrote stays. */
async function rolledBack(db: Kysely<Database>, work: (trx: Transaction<Database>) => Promise<void>) {
  const rollback = new Error('rollback');
  await db
    .transaction()
    .execute(async (trx) => {
      await work(trx);
      throw rollback;
    })
    .catch((err: unknown) => {
      if (err !== rollback) throw err;
    });
}

async function eventRows(streamId?: string): Promise<number> {
  let q = tdb.handle.db.selectFrom('event').select((eb) => eb.fn.countAll<number>().as('n'));
  if (streamId) q = q.where('stream_id', '=', streamId);
  return Number((await q.executeTakeFirstOrThrow()).n);
}

async function streamRow(streamId: string) {
  return tdb.handle.db
    .selectFrom('stream')
    .select(['version', 'head_hash'])
    .where('stream_id', '=', streamId)
    .executeTakeFirst();
}

/** Checks a stream as an auditor would: versions 1..n, each hash recomputed and linked, head matches. */
async function expectIntactStream(streamId: string, length: number): Promise<StoredEvent[]> {
  const events = await store.readStream(streamId);
  expect(events.map((e) => e.streamVersion)).toEqual(Array.from({ length }, (_, i) => i + 1));
  let prevHash = GENESIS_HASH;
  for (const e of events) {
    expect(e.prevHash).toBe(prevHash);
    expect(eventHash(prevHash, e)).toBe(e.hash);
    prevHash = e.hash;
  }
  expect(await streamRow(streamId)).toEqual({ version: length, head_hash: prevHash });
  return events;
}

/** Event content that passes validation: no NUL, no lone surrogates, no reserved keys. */
const storableString = fc.string({ unit: 'grapheme', maxLength: 12 }).map((s) => s.replaceAll('\u0000', ''));
const storableKey = storableString.filter((k) => !['__proto__', 'constructor', 'prototype'].includes(k));
const storableJson: fc.Arbitrary<Json> = fc.letrec<{ value: Json }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    storableString,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(storableKey, tie('value'), { maxKeys: 4 }),
  ),
})).value;
const storableEvent: fc.Arbitrary<NewEvent> = fc.record({
  type: fc.constantFrom('RolloutPlanned', 'StepStarted', 'StepCompleted'),
  data: storableJson,
  metadata: fc.dictionary(storableKey, storableJson, { maxKeys: 3 }),
});

describe('append with an expected version', () => {
  it("'no_stream' creates a stream once; a second time is a conflict at the actual version", async () => {
    const s = newStream();
    expect(await store.append(s, [event(1), event(2)], { expectedVersion: 'no_stream' })).toMatchObject({
      streamVersion: 2,
      duplicate: false,
    });
    const err = await rejectionOf(store.append(s, [event(3)], { expectedVersion: 'no_stream' }));
    expect(err).toBeInstanceOf(ConcurrencyConflict);
    expect(err).toMatchObject({ code: 'ConcurrencyConflict', streamId: s, expected: 'no_stream', actual: 2 });
    expect(await eventRows(s)).toBe(2);
  });

  it("'exists' needs a stream: on a missing one the conflict says no_stream and nothing is left behind", async () => {
    const s = newStream();
    const err = await rejectionOf(store.append(s, [event()], { expectedVersion: 'exists' }));
    expect(err).toBeInstanceOf(ConcurrencyConflict);
    expect(err).toMatchObject({ streamId: s, expected: 'exists', actual: 'no_stream' });
    expect(await streamRow(s)).toBeUndefined();
    expect(await store.streamVersion(s)).toBeUndefined();

    await store.append(s, [event(1)]);
    expect(await store.append(s, [event(2)], { expectedVersion: 'exists' })).toMatchObject({
      streamVersion: 2,
    });
  });

  it('an exact number must be the current version', async () => {
    const s = newStream();
    expect((await store.append(s, [event(1)], { expectedVersion: 0 })).streamVersion).toBe(1);
    expect((await store.append(s, [event(2), event(3)], { expectedVersion: 1 })).streamVersion).toBe(3);
    for (const stale of [0, 1, 2, 4, 99]) {
      const err = await rejectionOf(store.append(s, [event('late')], { expectedVersion: stale }));
      expect(err).toBeInstanceOf(ConcurrencyConflict);
      expect(err).toMatchObject({ streamId: s, expected: stale, actual: 3 });
    }
    expect((await store.append(s, [event(4)], { expectedVersion: 3 })).streamVersion).toBe(4);
    await expectIntactStream(s, 4);
  });

  it('an exact number other than 0 on a missing stream is a conflict with actual no_stream', async () => {
    const s = newStream();
    const err = await rejectionOf(store.append(s, [event()], { expectedVersion: 5 }));
    expect(err).toBeInstanceOf(ConcurrencyConflict);
    expect(err).toMatchObject({ expected: 5, actual: 'no_stream' });
    expect(await streamRow(s)).toBeUndefined();
  });

  it("'any' appends to a missing or an existing stream", async () => {
    const s = newStream();
    expect((await store.append(s, [event(1)], { expectedVersion: 'any' })).streamVersion).toBe(1);
    expect((await store.append(s, [event(2)])).streamVersion).toBe(2);
    expect(await store.streamVersion(s)).toBe(2);
  });

  it.each<ExpectedVersion>([-1, 1.5, Number.NaN, 2 ** 53])(
    'refuses the expected version %s as input',
    async (v) => {
      const err = await rejectionOf(store.append(newStream(), [event()], { expectedVersion: v }));
      expect(err).toBeInstanceOf(InvalidInput);
      expect(err).toMatchObject({ field: 'expectedVersion' });
    },
  );
});

describe('idempotent retries', () => {
  it('return the original result for the same event ids, even with an expected version now stale', async () => {
    const s = newStream();
    const ids = [randomUUID(), randomUUID()];
    const first = await store.append(s, [event(1, { eventId: ids[0] }), event(2, { eventId: ids[1] })], {
      expectedVersion: 'no_stream',
    });
    expect(first).toEqual({ streamVersion: 2, eventIds: ids, duplicate: false });
    await store.append(s, [event(3)]);

    for (const expectedVersion of ['no_stream', 0, 'any', 'exists', 3] as ExpectedVersion[]) {
      const retry = await store.append(s, [event(1, { eventId: ids[0] }), event(2, { eventId: ids[1] })], {
        expectedVersion,
      });
      expect(retry).toEqual({ streamVersion: 2, eventIds: ids, duplicate: true });
    }
    // Event ids are UUIDs: the same id in capitals is the same id.
    const upper = await store.append(s, [
      event(1, { eventId: ids[0]?.toUpperCase() }),
      event(2, { eventId: ids[1]?.toUpperCase() }),
    ]);
    expect(upper).toEqual({ streamVersion: 2, eventIds: ids, duplicate: true });
    expect(await eventRows(s)).toBe(3);
    await expectIntactStream(s, 3);
  });

  it('leave exactly one copy when five identical appends race', async () => {
    const s = newStream();
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    const batch = ids.map((eventId, i) => event(i, { eventId }));
    const results = await Promise.all(
      Array.from({ length: 5 }, () => store.append(s, batch, { expectedVersion: 'no_stream' })),
    );
    expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
    for (const r of results) expect(r).toMatchObject({ streamVersion: 3, eventIds: ids });
    expect(await eventRows(s)).toBe(3);
    await expectIntactStream(s, 3);
  });

  it('refuse an event id reused in another stream, adding nothing there', async () => {
    const a = newStream();
    const b = newStream();
    const id = randomUUID();
    await store.append(a, [event(1, { eventId: id })]);
    const err = await rejectionOf(store.append(b, [event(1, { eventId: id })]));
    expect(err).toBeInstanceOf(IdempotencyConflict);
    expect(err).toMatchObject({ code: 'IdempotencyConflict', eventIds: [id] });
    expect(await streamRow(b)).toBeUndefined();
    expect(await eventRows(a)).toBe(1);
  });

  it('refuse a batch that mixes a recorded id with new ones', async () => {
    const s = newStream();
    const id = randomUUID();
    await store.append(s, [event(1, { eventId: id })]);
    const err = await rejectionOf(store.append(s, [event(1, { eventId: id }), event(2)]));
    expect(err).toBeInstanceOf(IdempotencyConflict);
    expect(await eventRows(s)).toBe(1);
  });

  it('let exactly one of several streams have an event id they all try to record at once', async () => {
    for (let round = 0; round < 5; round++) {
      const streams = Array.from({ length: 10 }, () => newStream());
      const id = randomUUID();
      const outcomes = await Promise.allSettled(
        streams.map((s) => store.append(s, [event(1, { eventId: id })])),
      );
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      for (const o of outcomes.filter((x) => x.status === 'rejected')) {
        expect((o as PromiseRejectedResult).reason).toBeInstanceOf(IdempotencyConflict);
      }
      const rows = await tdb.handle.db
        .selectFrom('event')
        .select('stream_id')
        .where('event_id', '=', id)
        .execute();
      expect(rows).toHaveLength(1);
    }
  });
});

describe('readStream', () => {
  let s: string;
  beforeAll(async () => {
    s = newStream();
    await store.append(s, [event(1), event(2), event(3)]);
    await store.append(s, [event(4, { schemaVersion: 2, metadata: { actor: 'ops', correlationId: 'c-1' } })]);
    await store.append(s, [event(5)]);
  });

  it('reads every event in version order with what was appended', async () => {
    const events = await store.readStream(s);
    expect(events.map((e) => e.data)).toEqual([1, 2, 3, 4, 5].map((step) => ({ step })));
    expect(events[3]).toMatchObject({
      streamId: s,
      streamVersion: 4,
      type: 'StepCompleted',
      schemaVersion: 2,
      metadata: { actor: 'ops', correlationId: 'c-1' },
    });
    expect(events[0]).toMatchObject({ schemaVersion: 1, metadata: {} });
    for (const e of events) {
      expect(e.eventId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(e.recordedAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    }
  });

  it.each([
    [{ fromVersion: 2 }, [2, 3, 4, 5]],
    [{ toVersion: 3 }, [1, 2, 3]],
    [{ fromVersion: 2, toVersion: 4 }, [2, 3, 4]],
    [{ fromVersion: 3, toVersion: 3 }, [3]],
    [{ fromVersion: 6 }, []],
    [{ fromVersion: 4, toVersion: 2 }, []],
  ])('reads the range %o', async (range, versions) => {
    expect((await store.readStream(s, range)).map((e) => e.streamVersion)).toEqual(versions);
  });

  it('reads nothing from a stream that does not exist', async () => {
    expect(await store.readStream(newStream())).toEqual([]);
  });
});

describe('appends hashed against a guessed head', () => {
  // Each EventStore remembers the heads it has read or written, to append in one round trip.
  // Another replica's appends make that memory stale; the database must catch it every time.
  it('stay correct when another store appended meanwhile, under every expected version', async () => {
    const other = new EventStore(tdb.handle);
    const s = newStream();
    await store.append(s, [event(1)], { expectedVersion: 'no_stream' });
    await other.append(s, [event(2)], { expectedVersion: 1 }); // `other` has never seen s
    // `store` still believes s is at 1: a stale exact version is refused with the actual one…
    expect(await rejectionOf(store.append(s, [event('stale')], { expectedVersion: 1 }))).toMatchObject({
      code: 'ConcurrencyConflict',
      actual: 2,
    });
    // …and the right version, `exists` and `any` all append after other's event.
    await other.append(s, [event(3)], { expectedVersion: 2 });
    expect((await store.append(s, [event(4)], { expectedVersion: 3 })).streamVersion).toBe(4);
    await other.append(s, [event(5)], { expectedVersion: 'any' });
    expect((await store.append(s, [event(6)], { expectedVersion: 'exists' })).streamVersion).toBe(6);
    await other.append(s, [event(7)], { expectedVersion: 'any' });
    expect((await store.append(s, [event(8)], { expectedVersion: 'any' })).streamVersion).toBe(8);
    const events = await expectIntactStream(s, 8);
    expect(events.map((e) => e.data)).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((step) => ({ step })));
  });

  it('write nothing when the guess is wrong and the precondition fails', async () => {
    const other = new EventStore(tdb.handle);
    const s = newStream();
    await store.append(s, [event(1)]);
    await other.append(s, [event(2)], { expectedVersion: 1 });
    const before = await eventRows(s);
    expect(await rejectionOf(store.append(s, [event(3), event(4)], { expectedVersion: 1 }))).toBeInstanceOf(
      ConcurrencyConflict,
    );
    expect(await eventRows(s)).toBe(before);
    expect(await streamRow(s)).toMatchObject({ version: 2 });
  });
});

describe('group commit', () => {
  it('commits concurrent appends to different streams together, each with its own chain', async () => {
    const fresh = new EventStore(tdb.handle);
    const streams = Array.from({ length: 40 }, () => newStream('group'));
    const results = await Promise.all(
      streams.map((s, i) => fresh.append(s, [event(i), event(i + 100)], { expectedVersion: 'no_stream' })),
    );
    expect(results.map((r) => r.streamVersion)).toEqual(streams.map(() => 2));
    // Fewer calls than appends: some went to the database together, in one transaction.
    expect(fresh.commitStats.appends).toBe(40);
    expect(fresh.commitStats.calls).toBeLessThan(40);
    const { rows } = await sql<{ transactions: number }>`
      select count(distinct tx_id)::int as transactions from event where stream_id in (${sql.join(streams)})`.execute(
      tdb.handle.db,
    );
    expect(rows[0]?.transactions).toBeLessThan(40);
    for (const s of streams) await expectIntactStream(s, 2);
  });

  it('keeps each call to at most 250 events, so no transaction holds the sequencer back for long', async () => {
    const fresh = new EventStore(tdb.handle);
    const streams = Array.from({ length: 10 }, () => newStream('group'));
    const many = (n: number) => Array.from({ length: 100 }, (_, i) => event(`${n}-${i}`));
    await Promise.all(streams.map((s, n) => fresh.append(s, many(n), { expectedVersion: 'no_stream' })));
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from event where stream_id in (${sql.join(streams)}) group by tx_id`.execute(
      tdb.handle.db,
    );
    // Without the cap the appends queued behind the first would have gone as one call.
    expect(Math.max(...rows.map((r) => r.n))).toBeLessThanOrEqual(250);
    expect(rows.reduce((sum, r) => sum + r.n, 0)).toBe(1000);
    expect(fresh.commitStats).toMatchObject({ appends: 10, calls: rows.length });
    expect(rows.length).toBeLessThan(10);
  });

  it('sends small appends one call at a time, so that they wait for the call out and go together', async () => {
    const fresh = new EventStore(tdb.handle, undefined, { groupCommitInFlight: 4 });
    const streams = Array.from({ length: 10 }, () => newStream('group'));
    await Promise.all(
      streams.map((s, i) => fresh.append(s, [event(`small-${i}`)], { expectedVersion: 'no_stream' })),
    );
    const { rows } = await sql<{ n: number }>`
      select count(distinct tx_id)::int as n from event where stream_id in (${sql.join(streams)})`.execute(
      tdb.handle.db,
    );
    // The first alone, the nine that queued behind it as one call.
    expect(rows[0]?.n).toBe(2);
    expect(fresh.commitStats).toMatchObject({ appends: 10, calls: 2, peakInFlight: 1 });
  });

  it('lets full calls overlap, up to the configured number at once', async () => {
    for (const inFlight of [1, 3]) {
      const fresh = new EventStore(tdb.handle, undefined, { groupCommitInFlight: inFlight });
      const streams = Array.from({ length: 8 }, () => newStream('group'));
      const full = (n: number) => Array.from({ length: 250 }, (_, i) => event(`full-${inFlight}-${n}-${i}`));
      await Promise.all(streams.map((s, n) => fresh.append(s, full(n), { expectedVersion: 'no_stream' })));
      expect({ inFlight, ...fresh.commitStats }).toMatchObject({
        inFlight,
        appends: 8,
        calls: 8,
        peakInFlight: inFlight,
      });
      for (const s of streams) await expectIntactStream(s, 250);
    }
  });

  // Hashed as EventStore would, so the stored chains stay valid for the tests after these.
  const plainCall = (streamId: string, eventId: string) => {
    const recordedAt = new Date().toISOString();
    const e = {
      eventId,
      streamId,
      streamVersion: 1,
      type: 'T',
      schemaVersion: 1,
      data: {},
      metadata: {},
      recordedAt,
    };
    return {
      streamId,
      streamType: 'group',
      expectedVersion: 0,
      expectedHead: GENESIS_HASH,
      recordedAt,
      eventsJson: JSON.stringify([
        {
          event_id: eventId,
          type: e.type,
          schema_version: 1,
          data: {},
          metadata: {},
          prev_hash: GENESIS_HASH,
          hash: eventHash(GENESIS_HASH, e),
        },
      ]),
      eventCount: 1,
    };
  };

  it('retries each append alone when a call carrying several fails, so one bad append fails alone', async () => {
    const seen = { sent: [] as number[], answered: 0 };
    const committer = new GroupCommitter(tdb.handle.db, 4, {
      sent: (queued) => seen.sent.push(queued.length),
      answered: () => {
        seen.answered++;
      },
    });
    // Sent together: the first goes out alone, the other nine wait and go as one call, which
    // fails on the last one's id (not a UUID: what EventStore.prepare would never send).
    const streams = Array.from({ length: 10 }, () => newStream('group'));
    const outcomes = await Promise.allSettled(
      streams.map((s, i) => committer.append(plainCall(s, i === 9 ? 'not-a-uuid' : randomUUID()))),
    );
    expect(outcomes.slice(0, 9).map((o) => o.status === 'fulfilled' && o.value.outcome)).toEqual(
      Array(9).fill('appended'),
    );
    expect(sqlState((outcomes[9] as PromiseRejectedResult).reason)).toBe('22P02');
    expect(committer.stats).toMatchObject({ calls: 2, appends: 10, batchFallbacks: 1 });
    // The observer hears of the two calls, not of the nine appends tried again alone.
    expect(seen).toEqual({ sent: [1, 9], answered: 2 });
    expect(await eventRows(streams[9])).toBe(0);
  });

  it('appends as ever when the observer of its calls throws', async () => {
    let told = 0;
    const broken = () => {
      told++;
      throw new Error('a metric broke');
    };
    const committer = new GroupCommitter(tdb.handle.db, 4, { sent: broken, answered: broken });
    const streams = Array.from({ length: 5 }, () => newStream('group'));
    const outcomes = await Promise.all(streams.map((s) => committer.append(plainCall(s, randomUUID()))));
    expect(outcomes.map((o) => o.outcome)).toEqual(Array(5).fill('appended'));
    expect(committer.stats).toMatchObject({ calls: 2, appends: 5 });
    expect(told).toBe(4); // sent and answered, for each of the two calls
    for (const s of streams) expect(await eventRows(s)).toBe(1);
  });

  it('keeps each append to its own outcome when appends committed together conflict', async () => {
    const fresh = new EventStore(tdb.handle);
    const existing = newStream();
    await fresh.append(existing, [event(1)]);
    const shared = randomUUID();
    const calls: { stream: string; e: NewEvent; expected: ExpectedVersion }[] = [
      ...Array.from({ length: 8 }, (_, i) => ({
        stream: newStream('group'),
        e: event(i),
        expected: 'no_stream' as ExpectedVersion,
      })),
      { stream: existing, e: event('stale'), expected: 0 }, // moved: a conflict at 1
      { stream: newStream('group'), e: event('a', { eventId: shared }), expected: 'no_stream' },
      { stream: newStream('group'), e: event('b', { eventId: shared }), expected: 'no_stream' },
    ];
    const outcomes = await Promise.allSettled(
      calls.map((c) => fresh.append(c.stream, [c.e], { expectedVersion: c.expected })),
    );
    expect(outcomes.slice(0, 8).every((o) => o.status === 'fulfilled')).toBe(true);
    expect(outcomes[8]).toMatchObject({
      status: 'rejected',
      reason: { code: 'ConcurrencyConflict', actual: 1 },
    });
    // The same event id in two new streams: exactly one has it, the other is refused.
    const pair = outcomes.slice(9);
    expect(pair.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    expect(pair.find((o) => o.status === 'rejected')).toMatchObject({
      reason: expect.any(IdempotencyConflict),
    });
    const holders = await tdb.handle.db
      .selectFrom('event')
      .select('stream_id')
      .where('event_id', '=', shared)
      .execute();
    expect(holders).toHaveLength(1);
    for (const c of calls.slice(0, 8)) await expectIntactStream(c.stream, 1);
    await expectIntactStream(existing, 1);
  });
});

describe('group read (readStreamFrom)', () => {
  it('answers concurrent reads of many streams, from any version, as lone reads do, in fewer statements', async () => {
    const fresh = new EventStore(tdb.handle);
    const streams = Array.from({ length: 6 }, () => newStream('read'));
    for (const [i, s] of streams.entries()) {
      await fresh.append(
        s,
        Array.from({ length: i + 1 }, (_, k) => event(`${i}-${k}`)),
        { expectedVersion: 'no_stream' },
      );
      // Half of them in the ledger, so that positions are read too.
      if (i === 2) await new LedgerRepository(tdb.handle).sequenceBatch(1000);
    }
    const unknown = newStream('read');
    const reads = [...streams, unknown].flatMap((s, i) =>
      [0, 1, Math.ceil((i + 1) / 2), i + 1, i + 3].map((v) => [s, v] as const),
    );
    // One after the other, each read is a statement of its own.
    const lone = [];
    for (const [s, v] of reads) lone.push(await fresh.readStreamFrom(s, v));
    expect(fresh.readStats).toMatchObject({ statements: reads.length, reads: reads.length });
    expect(lone[0]).toEqual([
      expect.objectContaining({ streamVersion: 1, type: 'StepCompleted', data: { step: '0-0' } }),
    ]);
    // From a version on, the event at it comes without its data, the later ones with it.
    expect(lone[3 * 5 + 2]?.map((e) => [e.streamVersion, e.data])).toEqual([
      [2, null],
      [3, { step: '3-2' }],
      [4, { step: '3-3' }],
    ]);

    const together = await Promise.all(reads.map(([s, v]) => fresh.readStreamFrom(s, v)));
    expect(together).toEqual(lone);
    const statements = fresh.readStats.statements - reads.length;
    expect(fresh.readStats.reads).toBe(2 * reads.length);
    // The first alone (or queued too, if the last lone read's statement had not yet been counted
    // as returned), the rest queued behind it and sent together.
    expect(statements).toBeLessThanOrEqual(2);
    expect(fresh.readStats).toMatchObject({ batchFallbacks: 0, peakInFlight: 1 });
  });

  it('lets full statements overlap, up to four at once, when a burst queues', async () => {
    const fresh = new EventStore(tdb.handle);
    const streams = Array.from({ length: 4 }, () => newStream('read'));
    for (const s of streams) await fresh.append(s, [event(s)], { expectedVersion: 'no_stream' });
    const burst = Array.from({ length: 300 }, (_, i) => streams[i % streams.length] as string);
    const answers = await Promise.all(burst.map((s) => fresh.readStreamFrom(s, 0)));
    expect(answers.map((a) => a.map((e) => e.data))).toEqual(burst.map((s) => [{ step: s }]));
    // The first alone; beside it, full statements of 64 reads, up to four out at once.
    expect(fresh.readStats).toMatchObject({ reads: 300, peakInFlight: 4, batchFallbacks: 0 });
    expect(fresh.readStats.statements).toBeLessThanOrEqual(1 + Math.ceil(299 / 64));
  });

  it('gives every read each event committed before it was asked for, while reads and appends race', async () => {
    const fresh = new EventStore(tdb.handle);
    const writer = new EventStore(tdb.handle);
    const s = newStream('read');
    const others = Array.from({ length: 6 }, () => newStream('read'));
    for (const o of others) await writer.append(o, [event(o)], { expectedVersion: 'no_stream' });
    const seen: Promise<void>[] = [];
    for (let v = 1; v <= 25; v++) {
      await writer.append(s, [event(v)], { expectedVersion: v === 1 ? 'no_stream' : v - 1 });
      // Reads of other streams keep a statement out, so this one waits in the queue behind it.
      for (const o of others) seen.push(fresh.readStreamFrom(o, 0).then(() => undefined));
      seen.push(
        fresh.readStreamFrom(s, 0).then((events) => {
          const versions = events.map((e) => e.streamVersion);
          expect(versions.length).toBeGreaterThanOrEqual(v);
          expect(versions).toEqual(versions.map((_, i) => i + 1));
        }),
      );
    }
    await Promise.all(seen);
    expect(fresh.readStats.reads).toBe(25 * 7);
    expect(fresh.readStats.statements).toBeLessThan(25 * 7);
  });

  it.runIf(onPostgres)(
    'answers a read asked for while an older read of the same stream is out with a statement of its own, which sees what the older one cannot',
    async () => {
      const s = newStream('read');
      await store.append(s, [event(1)], { expectedVersion: 'no_stream' });
      // Outside the service's own keys (ADVISORY_LOCKS, 0x756c6564676572xx), so none can collide.
      const gate = 0x6c65_6467_6572n;
      const session = await tdb.handle.openSession();
      try {
        expect(await session.tryAdvisoryLock(gate)).toBe(true);
        // A lone read as EventStore's, but one that waits at the gate after its snapshot is taken.
        const reader = new GroupReader(tdb.handle.db, (streamId, fromVersion) =>
          CompiledQuery.raw(
            `select e.stream_version, e.type, e.hash, null::bigint as position, e.data, 0 as data_bytes,
                    '' as recorded_at_iso
               from event e, pg_advisory_xact_lock_shared(${gate}) g
              where e.stream_id = $1 and e.stream_version >= $2 order by e.stream_version`,
            [streamId, fromVersion],
          ),
        );
        const versions = (p: Promise<{ stream_version: number }[]>) =>
          p.then((rows) => rows.map((r) => Number(r.stream_version)));
        const older = versions(reader.read(s, 0));
        // Its statement has started (so its snapshot is taken) once it waits for the gate: the
        // one waiting for this key in this database (another run may use the same server).
        const waiting = async () =>
          (
            await sql<{ n: number }>`select count(*)::int as n from pg_locks
              where locktype = 'advisory' and not granted and objsubid = 1
                and database = (select oid from pg_database where datname = current_database())
                and classid = ${Number(gate >> 32n)}::oid and objid = ${Number(gate & 0xffff_ffffn)}::oid`.execute(
              tdb.handle.db,
            )
          ).rows[0]?.n;
        await expect.poll(waiting, { timeout: 5000, interval: 10 }).toBe(1);
        await store.append(s, [event(2)], { expectedVersion: 1 });
        const newer = versions(reader.read(s, 0));
        await session.advisoryUnlock(gate);
        // The older statement's snapshot predates the append; the newer read must not share it.
        expect(await older).toEqual([1]);
        expect(await newer).toEqual([1, 2]);
        expect(reader.stats).toMatchObject({ statements: 2, reads: 2 });
      } finally {
        await session.close();
      }
    },
  );

  it.runIf(onPostgres)('sends queued reads beside a slow statement once they have waited 10 ms', async () => {
    const streams = Array.from({ length: 3 }, () => newStream('read'));
    for (const s of streams) await store.append(s, [event(s)], { expectedVersion: 'no_stream' });
    // A lone read of 'slow' takes a second and finds nothing. A lone read of anything else finds
    // nothing either: only the statement of several reads the events.
    const reader = new GroupReader(tdb.handle.db, (streamId) =>
      streamId === 'slow'
        ? CompiledQuery.raw('select 1 as stream_version from pg_sleep(1) where random() < 0')
        : CompiledQuery.raw('select 1 where false'),
    );
    const done: string[] = [];
    const slow = reader.read('slow', 0).then(() => done.push('slow'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const fast = Promise.all(
      streams.map((s) =>
        reader.read(s, 0).then((rows) => {
          done.push(s);
          expect(rows.map((r) => r.data)).toEqual([{ step: s }]);
        }),
      ),
    );
    await Promise.all([slow, fast]);
    // Without the wait limit they would have queued behind the slow statement until it returned.
    expect(done).toEqual([...streams, 'slow']);
    expect(reader.stats).toMatchObject({ statements: 2, reads: 4, peakInFlight: 2 });
  });

  it('tries each read again alone when a statement of several fails, so one bad read fails alone', async () => {
    const fresh = new EventStore(tdb.handle);
    const streams = Array.from({ length: 8 }, () => newStream('read'));
    for (const s of streams) await fresh.append(s, [event(s)], { expectedVersion: 'no_stream' });
    const before = { ...fresh.readStats };
    // A NUL byte, which no Postgres text can hold: the statement carrying it fails as a whole.
    const bad = 'read-\u0000';
    const outcomes = await Promise.allSettled(
      [...streams, bad, ...streams].map((s) => fresh.readStreamFrom(s, 0)),
    );
    const badOutcome = outcomes[streams.length];
    expect(badOutcome?.status).toBe('rejected');
    const good = outcomes.filter((_, i) => i !== streams.length);
    expect(good.every((o) => o.status === 'fulfilled')).toBe(true);
    for (const [i, o] of good.entries()) {
      const s = streams[i % streams.length] as string;
      expect(o.status === 'fulfilled' && o.value.map((e) => e.data)).toEqual([{ step: s }]);
    }
    expect(fresh.readStats.batchFallbacks - before.batchFallbacks).toBeGreaterThanOrEqual(1);
  });
});

describe('per-stream hash chain', () => {
  it('links each event to the previous one in its stream, starting from 64 zeros, stream by stream', async () => {
    const a = newStream();
    const b = newStream();
    await store.append(a, [event(1), event(2)]);
    await store.append(b, [event(1)]);
    await store.append(a, [event(3)]);
    await store.append(b, [event(2), event(3), event(4)]);
    const eventsA = await expectIntactStream(a, 3);
    const eventsB = await expectIntactStream(b, 4);
    expect(eventsA[0]?.prevHash).toBe('0'.repeat(64));
    expect(eventsB[0]?.prevHash).toBe('0'.repeat(64));
    expect(new Set([...eventsA, ...eventsB].map((e) => e.hash)).size).toBe(7);
  });

  it('folding any appended stream reproduces its versions 1..n and head hash', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(storableEvent, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 4 }),
        async (batches) => {
          const s = newStream();
          for (const batch of batches) await store.append(s, batch);
          const events = await expectIntactStream(s, batches.flat().length);
          expect(events.map((e) => canonicalJson(e.data))).toEqual(
            batches.flat().map((e) => canonicalJson(e.data)),
          );
        },
      ),
      { numRuns: 15 },
    );
  });
});

describe('canonical text stored beside the jsonb (migration 000700)', () => {
  it('stores, for every event, the RFC 8785 text of exactly the data and metadata it holds', async () => {
    const s = newStream();
    const awkward = {
      z: [3, 2.5, -0, 1e21, 1e-7, 12345678901234567000],
      a: { é: 'ü', b: '\u2028 "quoted" \\ tab\t', '10': true, '9': null },
      '': 'empty key',
      emoji: '👩‍🚀',
    };
    await store.append(s, [event(1, { data: awkward, metadata: { actor: 'ci', b: 2, a: 1 } }), event(2)]);
    const rows = await tdb.handle.db
      .selectFrom('event')
      .select(['data', 'metadata', 'data_jcs', 'metadata_jcs'])
      .where('stream_id', '=', s)
      .orderBy('stream_version')
      .execute();
    expect(rows).toHaveLength(2);
    for (const r of rows) {
      expect(r.data_jcs).toBe(canonicalJson(r.data));
      expect(r.metadata_jcs).toBe(canonicalJson(r.metadata));
    }
    expect(rows[0]?.data_jcs).toBe(canonicalJson(awkward));
  });

  it('still takes an append from an older replica (payload as jsonb, no text), and sequences and verifies it', async () => {
    const ledger = new LedgerRepository(tdb.handle);
    // Sequenced without the xmin rule (as a rebase after a restore does): nothing else appends to
    // this database meanwhile, and a transaction of another test's database, on the same server,
    // could otherwise hold any of these events back and make a batch short for that reason.
    for (;;) {
      const { entries } = await ledger.sequenceBatch(1000, true);
      if (entries.length === 0) break;
    }
    // An event with text before it: one batch must not stop short at the one without.
    await store.append(newStream(), [event(1)]);
    const s = newStream();
    const recordedAt = new Date().toISOString();
    const e = {
      eventId: randomUUID(),
      streamId: s,
      streamVersion: 1,
      type: 'StepCompleted',
      schemaVersion: 1,
      data: { step: 'old', n: 1.5 },
      metadata: { actor: 'old-replica' },
      recordedAt,
    };
    const hash = eventHash(GENESIS_HASH, e);
    // What a replica running the code before migration 000700 sends.
    const old = [
      {
        event_id: e.eventId,
        type: e.type,
        schema_version: 1,
        data: e.data,
        metadata: e.metadata,
        prev_hash: GENESIS_HASH,
        hash,
      },
    ];
    const { rows } = await sql<{ outcome: string }>`
      select outcome from append_events(${s}, 'rollout', 0, ${GENESIS_HASH}, ${recordedAt},
                                        ${JSON.stringify(old)}::jsonb)`.execute(tdb.handle.db);
    expect(rows[0]?.outcome).toBe('appended');
    // Then a new-style append to the same stream.
    await store.append(s, [event(2)], { expectedVersion: 1 });
    const stored = await tdb.handle.db
      .selectFrom('event')
      .select(['stream_version', 'data_jcs'])
      .where('stream_id', '=', s)
      .orderBy('stream_version')
      .execute();
    expect(stored.map((r) => r.data_jcs === null)).toEqual([true, false]);
    await expectIntactStream(s, 2);

    // The sequencer hashes the one without text from its jsonb and the others from their text,
    // all in one batch (a shorter one would end a rebase's or a transfer's loop early): every
    // link must match what a verifier recomputes from the values.
    const batch = await ledger.sequenceBatch(1000, true);
    expect(batch.entries).toHaveLength(3);
    expect(batch.head.position).toBe(batch.entries.at(-1)?.position);
    expect((await ledger.sequenceBatch(1000, true)).entries).toHaveLength(0);
    const head = await ledger.head();
    const entries = await ledger.read(0, head.position + 1);
    const ours = entries.filter((x) => x.streamId === s);
    expect(ours).toHaveLength(2);
    let prev = GENESIS_HASH;
    for (const entry of entries) {
      expect(entry.prevHash).toBe(prev);
      expect(ledgerHash(entry.prevHash, entry.position, { ...entry, hash: entry.eventHash })).toBe(
        entry.hash,
      );
      prev = entry.hash;
    }
  });
});

describe('payload compression (migration 001000)', () => {
  /**
   * Whether this server can compress with LZ4 (Postgres on Debian can; PGlite cannot), found by
   * trying, not as the migration asks: a wrong answer there must not make these tests agree with it.
   */
  async function serverHasLz4(db: Kysely<Database>): Promise<boolean> {
    let lz4 = true;
    await rolledBack(db, async (trx) => {
      await sql`savepoint probe`.execute(trx);
      try {
        await sql`create temporary table lz4_probe (x text compression lz4)`.execute(trx);
      } catch (err) {
        if (sqlState(err) !== '0A000') throw err; // feature_not_supported: built without LZ4
        lz4 = false;
        await sql`rollback to savepoint probe`.execute(trx);
      }
    });
    return lz4;
  }

  /** The compression each payload column is set to ('l' LZ4, '' the server's default). */
  async function columnSettings(db: Kysely<Database>): Promise<Record<string, string>> {
    const { rows } = await sql<{ attname: string; attcompression: string }>`
      select attname, attcompression::text from pg_attribute
      where attrelid = 'event'::regclass
        and attname in ('data', 'data_jcs', 'metadata', 'metadata_jcs')`.execute(db);
    return Object.fromEntries(rows.map((r) => [r.attname, r.attcompression]));
  }

  it('compresses a large payload with LZ4 where the server has it, and reads it back unchanged', async () => {
    const lz4 = await serverHasLz4(tdb.handle.db);
    const s = newStream();
    // Large and repetitive, like a plan: over the 2 kB past which Postgres compresses a row.
    const data = {
      steps: Array.from({ length: 60 }, (_, i) => ({
        id: `step-${i}`,
        product: 'identity',
        verify: 'readback',
      })),
    };
    await store.append(s, [event(1, { data })]);
    const row = await tdb.handle.db
      .selectFrom('event')
      .select((eb) => [
        'data',
        'data_jcs',
        eb.fn<string | null>('pg_column_compression', ['data']).as('data_method'),
        eb.fn<string | null>('pg_column_compression', ['data_jcs']).as('text_method'),
      ])
      .where('stream_id', '=', s)
      .executeTakeFirstOrThrow();
    expect({ data: row.data_method, text: row.text_method }).toEqual(
      lz4 ? { data: 'lz4', text: 'lz4' } : { data: 'pglz', text: 'pglz' },
    );
    expect(row.data).toEqual(data);
    expect(row.data_jcs).toBe(canonicalJson(data));
  });

  it('is undone by its down migration and set again by its up, where the server has LZ4', async () => {
    const migration = await import('../../migrations/20261127001000_event_payload_lz4.js');
    const lz4 = await serverHasLz4(tdb.handle.db);
    const every = (method: string) => ({
      data: method,
      data_jcs: method,
      metadata: method,
      metadata_jcs: method,
    });
    expect(await columnSettings(tdb.handle.db)).toEqual(every(lz4 ? 'l' : ''));
    await rolledBack(tdb.handle.db, async (trx) => {
      await migration.down(trx);
      expect(await columnSettings(trx)).toEqual(every(''));
      await migration.up(trx);
      expect(await columnSettings(trx)).toEqual(every(lz4 ? 'l' : ''));
    });
  });
});

describe('input that cannot be stored is refused with the field that is wrong', () => {
  const refused = async (streamId: string, events: NewEvent[], field: string | RegExp) => {
    const err = await rejectionOf(store.append(streamId, events));
    expect(err).toBeInstanceOf(InvalidInput);
    const actual = (err as InvalidInput).field;
    if (field instanceof RegExp) expect(actual).toMatch(field);
    else expect(actual).toBe(field);
    expect(await streamRow(streamId)).toBeUndefined();
  };

  it.each<[string, NewEvent[], string]>([
    ['NUL in data', [event(1, { data: { note: 'a\u0000b' } })], 'events[0].data.note'],
    ['NUL in metadata', [event(1, { metadata: { actor: '\u0000' } })], 'events[0].metadata.actor'],
    ['NUL in a key', [event(1, { data: { 'k\u0000': 1 } })], 'events[0].data.k\u0000'],
    ['a lone high surrogate', [event(1), event(2, { data: { s: 'x\ud800' } })], 'events[1].data.s'],
    ['a lone low surrogate', [event(1, { data: ['\udc00'] })], 'events[0].data[0]'],
    ['NaN', [event(1, { data: { n: Number.NaN } })], 'events[0].data.n'],
    [
      'a __proto__ key',
      [event(1, { data: JSON.parse('{"__proto__": {"admin": true}}') })],
      'events[0].data.__proto__',
    ],
    [
      'a constructor key',
      [event(1, { data: JSON.parse('{"a": {"constructor": 1}}') })],
      'events[0].data.a.constructor',
    ],
    [
      'a __proto__ metadata key',
      [event(1, { metadata: JSON.parse('{"__proto__": 1}') })],
      'events[0].metadata.__proto__',
    ],
    ['a bad event type', [event(1, { type: 'Step Completed' })], 'events[0].type'],
    ['a bad event id', [event(1, { eventId: 'not-a-uuid' })], 'events[0].eventId'],
    ['a schema version of 0', [event(1, { schemaVersion: 0 })], 'events[0].schemaVersion'],
    ['a fractional schema version', [event(1, { schemaVersion: 1.5 })], 'events[0].schemaVersion'],
    ['no events', [], 'events'],
  ])('%s', async (_what, events, field) => {
    await refused(newStream(), events, field);
  });

  it('a hole in an array (stored as null, but hashed differently)', async () => {
    // biome-ignore lint/suspicious/noSparseArray: the hole is the point
    await refused(newStream(), [event(1, { data: { list: [1, , 3] as Json[] } })], 'events[0].data.list[1]');
  });

  it('nesting deeper than 64 levels; 64 is stored and round-trips', async () => {
    const nested = (depth: number): Json => {
      let v: Json = 'leaf';
      for (let i = 0; i < depth; i++) v = i % 2 ? { a: v } : [v];
      return v;
    };
    await refused(newStream(), [event(1, { data: nested(65) })], /^events\[0\]\.data(\.a|\[0\])+$/);
    const s = newStream();
    await store.append(s, [event(1, { data: nested(64) })]);
    const [stored] = await expectIntactStream(s, 1);
    expect(stored?.data).toEqual(nested(64));
  });

  it.each([
    '',
    '-leading-dash',
    'has space',
    'a/b',
    "rollout'; drop table event; --",
    'ünïcode',
    'x'.repeat(201),
    'tab\there',
  ])('a bad stream id %j', async (streamId) => {
    const err = await rejectionOf(store.append(streamId, [event()]));
    expect(err).toBeInstanceOf(InvalidInput);
    expect(err).toMatchObject({ field: 'streamId' });
  });

  it('accepts a stream id of 200 characters of the allowed alphabet', async () => {
    const s = `r${randomUUID()}.v1:a_b-`.padEnd(200, 'z');
    expect((await store.append(s, [event()])).streamVersion).toBe(1);
  });

  it.each(['', '1Step', 'Step Completed', 'Step/Completed', 'x'.repeat(101), 'Ünicode'])(
    'a bad event type %j',
    async (type) => {
      await refused(newStream(), [event(1, { type })], 'events[0].type');
    },
  );

  it('more than 1000 events in one append; exactly 1000 is fine', async () => {
    await refused(
      newStream(),
      Array.from({ length: 1001 }, (_, i) => event(i)),
      'events',
    );
    const s = newStream();
    expect(
      (
        await store.append(
          s,
          Array.from({ length: 1000 }, (_, i) => event(i)),
        )
      ).streamVersion,
    ).toBe(1000);
    await expectIntactStream(s, 1000);
  });

  it('the same event id twice in one append, even in different case', async () => {
    const id = randomUUID();
    await refused(newStream(), [event(1, { eventId: id }), event(2, { eventId: id })], 'events[1].eventId');
    await refused(
      newStream(),
      [event(1, { eventId: id }), event(2), event(3, { eventId: id.toUpperCase() })],
      'events[2].eventId',
    );
  });
});

describe('hostile but valid content', () => {
  it('round-trips byte-identical and still matches its hash', async () => {
    const strings = [
      "'); drop table event; --",
      '$1 $$ $tag$ :name ? %s',
      '\\u0000 is six characters here, \\x00 too',
      '"quoted" \\back\\slashes\\',
      '👩🏽‍💻🏳️‍🌈 \ud83d\ude00',
      '\u200f\u202eevil\u202c \u200e',
      'e\u0301 ñ ﬁ Ａ',
      '\ufeff\uffff\ufffd',
      '\u0001\u001f\u007f\u0085 \t\r\n',
      '\u2028\u2029',
      'null',
      '',
      'x'.repeat(100_000),
    ];
    const data: Json = {
      strings,
      keys: Object.fromEntries(strings.slice(0, 12).map((s, i) => [s, i])),
      numbers: [0, 1e21, 5e-324, 0.1, 1.7976931348623157e308, Number.MAX_SAFE_INTEGER, -1.5e-10, 123456.789],
      nested: { '': { 'a.b': { '[0]': [null, true, false] } } },
    };
    const metadata = { actor: strings[0] as string, note: strings[4] as string };
    const s = newStream();
    await store.append(s, [{ type: 'ReadbackRecorded', data, metadata }]);
    const [stored] = await expectIntactStream(s, 1);
    if (!stored) throw new Error('the event was not stored');
    expect(stored.data).toEqual(data);
    expect(stored.metadata).toEqual(metadata);
    expect(canonicalJson(stored.data)).toBe(canonicalJson(data));
    const back = (stored.data as { strings: string[] }).strings;
    back.forEach((str, i) => {
      expect(str === strings[i]).toBe(true);
    });
  });

  it('stores -0 as 0, which hashes the same', async () => {
    const s = newStream();
    await store.append(s, [event(1, { data: { z: -0 } })]);
    const [stored] = await expectIntactStream(s, 1);
    expect(canonicalJson(stored?.data)).toBe('{"z":0}');
  });
});

describe('the log is immutable in the database', () => {
  let signingKeyId: string;

  beforeAll(async () => {
    const s = newStream();
    await store.append(s, [event(1), event(2)]);
    const ledger = new LedgerRepository(tdb.handle);
    const batch = await ledger.sequenceBatch(10_000);
    expect(batch.entries.length).toBeGreaterThan(0);
    signingKeyId = `test-key-${randomUUID()}`;
    await ledger.registerKey(
      signingKeyId,
      '-----BEGIN PUBLIC KEY-----\nnot checked here\n-----END PUBLIC KEY-----\n',
    );
    const c = {
      position: batch.head.position,
      headHash: batch.head.hash,
      createdAt: new Date().toISOString(),
      keyId: signingKeyId,
    };
    await ledger.insertCheckpoint({ ...c, signature: Buffer.from(checkpointPayload(c)).toString('base64') });
  });

  const counts = async () => {
    const { rows } = await sql<{ event: number; ledger: number; checkpoint: number; signing_key: number }>`
      select (select count(*) from event)::int as event, (select count(*) from ledger)::int as ledger,
             (select count(*) from checkpoint)::int as checkpoint, (select count(*) from signing_key)::int as signing_key`.execute(
      tdb.handle.db,
    );
    return rows[0];
  };

  it.each([
    ['update event', sql`update event set data = '{"rewritten": true}'::jsonb`],
    ['update one event', sql`update event set type = 'Forged' where id = (select min(id) from event)`],
    ['delete from event', sql`delete from event`],
    ['truncate event', sql`truncate event cascade`],
    ['update ledger', sql`update ledger set hash = repeat('0', 64)`],
    ['delete from ledger', sql`delete from ledger`],
    ['truncate ledger', sql`truncate ledger cascade`],
    ['update checkpoint', sql`update checkpoint set signature = 'forged'`],
    ['delete from checkpoint', sql`delete from checkpoint`],
    ['truncate checkpoint', sql`truncate checkpoint`],
    ['update signing_key', sql`update signing_key set public_key_pem = 'attacker key'`],
    ['delete from signing_key', sql`delete from signing_key`],
    ['truncate signing_key', sql`truncate signing_key cascade`],
  ])('rejects %s', async (_what, statement) => {
    const before = await counts();
    expect(before?.event).toBeGreaterThan(0);
    expect(before?.ledger).toBeGreaterThan(0);
    expect(before?.checkpoint).toBeGreaterThan(0);
    expect(before?.signing_key).toBeGreaterThan(0);
    const err = await rejectionOf(statement.execute(tdb.handle.db));
    // Raised by the log's own trigger (P0001), not by a foreign key or a permission.
    expect(sqlState(err)).toBe('P0001');
    expect((err as Error).message).toMatch(/append-only/);
    expect(await counts()).toEqual(before);
  });

  it('leaves every event as it was appended', async () => {
    const streams = await tdb.handle.db
      .selectFrom('stream')
      .select('stream_id')
      .where('version', '>', 0)
      .execute();
    for (const { stream_id } of streams) {
      const events = await store.readStream(stream_id);
      let prev = GENESIS_HASH;
      for (const e of events) {
        expect(eventHash(prev, e)).toBe(e.hash);
        prev = e.hash;
      }
    }
  });
});

describe.runIf(onPostgres)('racing real connections (Postgres)', () => {
  let second: EventStore;
  beforeAll(async () => {
    // A second pool, as a second replica of the service would have.
    second = new EventStore(await tdb.reopen(10));
  });
  const storeFor = (i: number) => (i % 2 ? second : store);

  it.each<[string, ExpectedVersion]>([
    ['no_stream', 'no_stream'],
    ['0', 0],
  ])(
    '20 appends creating one stream with expectedVersion %s: exactly one wins',
    async (_name, expectedVersion) => {
      const s = newStream();
      const outcomes = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => storeFor(i).append(s, [event(i)], { expectedVersion })),
      );
      const won = outcomes.filter((o) => o.status === 'fulfilled');
      expect(won).toHaveLength(1);
      expect((won[0] as PromiseFulfilledResult<{ streamVersion: number }>).value.streamVersion).toBe(1);
      for (const o of outcomes.filter((x) => x.status === 'rejected')) {
        const reason = (o as PromiseRejectedResult).reason;
        expect(reason).toBeInstanceOf(ConcurrencyConflict);
        expect(reason).toMatchObject({ streamId: s, expected: expectedVersion, actual: 1 });
      }
      await expectIntactStream(s, 1);
    },
  );

  it('20 appends at the same exact version of an existing stream: exactly one wins', async () => {
    const s = newStream();
    await store.append(s, [event(1), event(2), event(3)]);
    const outcomes = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => storeFor(i).append(s, [event(i)], { expectedVersion: 3 })),
    );
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    for (const o of outcomes.filter((x) => x.status === 'rejected')) {
      expect((o as PromiseRejectedResult).reason).toMatchObject({ code: 'ConcurrencyConflict', actual: 4 });
    }
    await expectIntactStream(s, 4);
  });

  it('200 appends to 50 streams with any: versions 1..n per stream, no gap, chains intact', async () => {
    const streams = Array.from({ length: 50 }, () => newStream('race'));
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => {
        // A stream's four appends are issued back to back, so they really contend.
        const s = streams[Math.floor(i / 4)] as string;
        return storeFor(i)
          .append(s, [event(i)], { expectedVersion: 'any' })
          .then((r) => ({ s, ...r }));
      }),
    );
    for (const s of streams) {
      const versions = results.filter((r) => r.s === s).map((r) => r.streamVersion);
      expect(versions.sort((a, b) => a - b)).toEqual([1, 2, 3, 4]);
      await expectIntactStream(s, 4);
    }
    expect(results.every((r) => !r.duplicate)).toBe(true);
  });

  it('two replicas batching appends to the same streams in opposite orders never deadlock', async () => {
    // Each replica's group committer puts its queued appends to these streams in one batch; the
    // two replicas' batches share every stream, sent in opposite orders. A deadlock would fail a
    // batch (and its appends would then go one by one): none may fail, no append may be lost.
    const a = new EventStore(await tdb.reopen(4));
    const b = new EventStore(await tdb.reopen(4));
    const streams = Array.from({ length: 12 }, () => newStream('race'));
    for (const s of streams) await store.append(s, [event('first')], { expectedVersion: 'no_stream' });
    const rounds = 8;
    const outcomes = await Promise.allSettled(
      Array.from({ length: rounds }, (_, r) => [
        ...streams.map((s, i) => a.append(s, [event(`a-${r}-${i}`)])),
        ...streams.toReversed().map((s, i) => b.append(s, [event(`b-${r}-${i}`)])),
      ]).flat(),
    );
    expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);
    expect(a.commitStats.batchFallbacks + b.commitStats.batchFallbacks).toBe(0);
    // Batches carried several appends at once, from both replicas.
    expect(a.commitStats.calls).toBeLessThan(a.commitStats.appends);
    expect(b.commitStats.calls).toBeLessThan(b.commitStats.appends);
    for (const s of streams) await expectIntactStream(s, 1 + 2 * rounds);
  });

  it('five identical retries racing on two pools leave one copy', async () => {
    const s = newStream();
    const batch = [event(1, { eventId: randomUUID() }), event(2, { eventId: randomUUID() })];
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) => storeFor(i).append(s, batch, { expectedVersion: 'no_stream' })),
    );
    expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
    expect(new Set(results.map((r) => r.streamVersion))).toEqual(new Set([2]));
    await expectIntactStream(s, 2);
  });
});

describe('append_events probes the event_id index whatever plan its session cached (migration 000800)', () => {
  // PL/pgSQL caches a generic plan per session after five calls and keeps it until statistics
  // change (never, with autovacuum off or on PGlite). The idempotency check it had before, planned
  // on an `event` of a few hundred rows, cached a sequential scan of the table for every later
  // append (docs/benchmarks.md, session 4). Here one session, in one transaction (rolled back),
  // makes its first calls on 500 events, the table then grows tenfold, and the scans of `event` by
  // its further calls are counted; the old check, in a function of its own, is the control.
  const ZERO = '0'.repeat(64);
  const call = (stream: string) => sql`
    select * from append_events(${stream}::text, 'rollout', 0, ${ZERO}::text, now(), jsonb_build_array(
      jsonb_build_object('event_id', gen_random_uuid(), 'type', 'T', 'schema_version', 1, 'data_jcs', '{}',
        'metadata_jcs', '{}', 'prev_hash', ${ZERO}::text, 'hash', ${'a'.repeat(64)}::text)))`;
  const oldCheck = sql`
    select pg_temp.old_seen(jsonb_build_array(jsonb_build_object('event_id', gen_random_uuid())))`;
  const bulk = (prefix: string, n: number) => [
    sql`insert into stream (stream_id, stream_type, version, head_hash)
        select ${prefix}::text || g, 'rollout', 1, ${'a'.repeat(64)}::text from generate_series(1, ${n}::int) g`,
    sql`insert into event (event_id, stream_id, stream_version, type, schema_version, data, metadata,
                           recorded_at, prev_hash, hash)
        select gen_random_uuid(), ${prefix}::text || g, 1, 'T', 1, jsonb_build_object('pad', repeat('x', 200)),
               '{}', now(), ${ZERO}::text, ${'a'.repeat(64)}::text
          from generate_series(1, ${n}::int) g`,
  ];

  it('keeps probing the index after the table has grown under a cached plan', async () => {
    const fresh = await createTestDatabase();
    try {
      await rolledBack(fresh.handle.db, async (trx) => {
        const seqScans = async () => {
          const { rows } = await sql<{ n: string | number }>`
              select seq_scan as n from pg_stat_xact_user_tables where relname = 'event'`.execute(trx);
          return Number(rows[0]?.n ?? 0);
        };
        await sql`
            create function pg_temp.old_seen(p jsonb) returns boolean language plpgsql as $$
            begin
              return exists (select 1 from event e
                where e.event_id in (select (x ->> 'event_id')::uuid from jsonb_array_elements(p) x));
            end $$`.execute(trx);
        for (const q of bulk('small-', 500)) await q.execute(trx);
        for (let i = 0; i < 8; i++) {
          await call(`rollout-first-${i}`).execute(trx);
          await oldCheck.execute(trx);
        }
        for (const q of bulk('grown-', 5000)) await q.execute(trx);

        const before = await seqScans();
        for (let i = 0; i < 3; i++) await oldCheck.execute(trx);
        const afterControl = await seqScans();
        for (let i = 0; i < 3; i++) await call(`rollout-later-${i}`).execute(trx);
        const afterAppends = await seqScans();

        // The control: the old check's cached plan scans the grown table at every call.
        expect(afterControl - before).toBe(3);
        expect(afterAppends - afterControl).toBe(0);
      });
    } finally {
      await fresh.drop();
    }
  });
});

describe('append_events_batch, set-based (migration 000900)', () => {
  interface Outcome {
    n: number;
    outcome: string;
    version: number | null;
    head_hash: string | null;
  }
  /** One append as the group committer sends it, hashed as EventStore would (chains stay valid). */
  const appendOf = (streamId: string, at: { version: number; head: string }, eventIds: string[]) => {
    const recordedAt = new Date().toISOString();
    let prev = at.head;
    const events = eventIds.map((eventId, i) => {
      const e = {
        eventId,
        streamId,
        streamVersion: at.version + i + 1,
        type: 'StepCompleted',
        schemaVersion: 1,
        data: { step: eventId },
        metadata: {},
        recordedAt,
      };
      const hash = eventHash(prev, e);
      const stored = {
        event_id: eventId,
        type: e.type,
        schema_version: 1,
        data_jcs: canonicalJson(e.data),
        metadata_jcs: '{}',
        prev_hash: prev,
        hash,
      };
      prev = hash;
      return stored;
    });
    return {
      stream_id: streamId,
      stream_type: 'rollout',
      expected_version: at.version,
      expected_head: at.head,
      recorded_at: recordedAt,
      events,
    };
  };
  const fresh = { version: 0, head: GENESIS_HASH };
  const batch = (db: typeof tdb.handle.db, appends: unknown[]) =>
    sql<Outcome>`select n, outcome, version, head_hash from append_events_batch(${JSON.stringify(appends)}::jsonb)`
      .execute(db)
      .then((r) => r.rows);

  it('gives every append the outcome append_events gives it alone, and writes only the appended', async () => {
    const existing = newStream();
    const behind = newStream();
    await store.append(existing, [event(1)]);
    await store.append(behind, [event(1)]);
    const [stored] = await store.readStream(existing);
    const head = async (s: string) => {
      const row = await streamRow(s);
      return { version: Number(row?.version), head: String(row?.head_hash) };
    };
    const [two, next, seen, one] = [newStream(), existing, newStream(), newStream()];
    const appends = [
      appendOf(two, fresh, [randomUUID(), randomUUID()]), // a new stream, two events
      appendOf(next, await head(existing), [randomUUID()]), // an existing stream moves on
      appendOf(behind, fresh, [randomUUID()]), // expects a new stream: moved
      appendOf(seen, fresh, [randomUUID(), String(stored?.eventId)]), // holds a stored id: seen
      appendOf(one, fresh, [randomUUID()]),
    ];

    // What append_events answers for each, one after the other (rolled back).
    const alone: Outcome[] = [];
    await rolledBack(tdb.handle.db, async (trx) => {
      for (const [i, a] of appends.entries()) {
        const { rows } = await sql<Outcome>`
            select outcome, version, head_hash from append_events(${a.stream_id}, ${a.stream_type},
              ${a.expected_version}, ${a.expected_head}, ${a.recorded_at}, ${JSON.stringify(a.events)}::jsonb)`.execute(
          trx,
        );
        alone.push({ ...(rows[0] as Outcome), n: i + 1 });
      }
    });
    const together = await batch(tdb.handle.db, appends);
    expect(together).toEqual(alone);
    expect(together.map((o) => o.outcome)).toEqual(['appended', 'appended', 'moved', 'seen', 'appended']);
    expect(together[2]).toMatchObject({ version: 1, head_hash: (await streamRow(behind))?.head_hash });

    await expectIntactStream(two, 2);
    await expectIntactStream(existing, 2);
    await expectIntactStream(behind, 1);
    await expectIntactStream(one, 1);
    expect(await streamRow(seen)).toBeUndefined();
    expect(await eventRows(seen)).toBe(0);
  });

  it('refuses a batch with two appends to one stream, writing nothing, so that they go one by one', async () => {
    const s = newStream();
    const other = newStream();
    const err = await rejectionOf(
      batch(tdb.handle.db, [
        appendOf(other, fresh, [randomUUID()]),
        appendOf(s, fresh, [randomUUID()]),
        appendOf(s, fresh, [randomUUID()]),
      ]),
    );
    expect(sqlState(err)).toBe('22023');
    expect(await eventRows(s)).toBe(0);
    expect(await eventRows(other)).toBe(0);
  });

  it('keeps probing the indexes after the tables have grown under the plan cached on small ones', async () => {
    // The session's first batches run on small tables with statistics (300 streams, no events),
    // the tables then grow, and the reads of `stream` and `event` by its later batches are
    // counted. The control is the same function without its planner settings: what they prevent.
    const small = await createTestDatabase();
    try {
      await rolledBack(small.handle.db, async (trx) => {
        const { rows: def } = await sql<{ src: string }>`
            select pg_get_functiondef('append_events_batch(jsonb)'::regprocedure) as src`.execute(trx);
        const unguarded = String(def[0]?.src)
          .replace(/ SET enable_\w+ TO 'off'\n/g, '')
          .replace(/FUNCTION public\.append_events_batch\(/, 'FUNCTION pg_temp.batch_unguarded(');
        expect(unguarded).not.toContain('enable_');
        await sql.raw(unguarded).execute(trx);

        const reads = async () => {
          const { rows } = await sql<{ relname: string; seq: number; fetched: number }>`
              select relname, seq_scan::int as seq, coalesce(idx_tup_fetch, 0)::int as fetched
                from pg_stat_xact_user_tables where relname in ('event', 'stream')`.execute(trx);
          const of = (t: string) => rows.find((r) => r.relname === t) ?? { seq: 0, fetched: 0 };
          return {
            seq: of('event').seq + of('stream').seq,
            fetched: of('event').fetched + of('stream').fetched,
          };
        };
        const run = async (fn: 'append_events_batch' | 'pg_temp.batch_unguarded', tag: string) => {
          // Two new streams and one that exists, moved on: every lookup of the function.
          const known = `rollout-${tag}-known`;
          await sql`select * from ${sql.raw(fn)}(${JSON.stringify([appendOf(known, fresh, [randomUUID()])])}::jsonb)`.execute(
            trx,
          );
          const { rows } = await sql<{ head_hash: string }>`
              select head_hash from stream where stream_id = ${known}`.execute(trx);
          const appends = [
            appendOf(`rollout-${tag}-a`, fresh, [randomUUID()]),
            appendOf(`rollout-${tag}-b`, fresh, [randomUUID()]),
            appendOf(known, { version: 1, head: String(rows[0]?.head_hash) }, [randomUUID()]),
          ];
          const before = await reads();
          const { rows: out } = await sql<Outcome>`
              select * from ${sql.raw(fn)}(${JSON.stringify(appends)}::jsonb)`.execute(trx);
          expect(out.map((o) => o.outcome)).toEqual(['appended', 'appended', 'appended']);
          const after = await reads();
          return { seq: after.seq - before.seq, fetched: after.fetched - before.fetched };
        };

        await sql`insert into stream (stream_id, stream_type, version, head_hash)
            select 'small-' || g, 'rollout', 1, ${'a'.repeat(64)}::text from generate_series(1, 300) g`.execute(
          trx,
        );
        await sql`analyze stream`.execute(trx);
        await sql`analyze event`.execute(trx);
        for (let i = 0; i < 8; i++) {
          await run('append_events_batch', `first-${i}`);
          await run('pg_temp.batch_unguarded', `control-first-${i}`);
        }
        await sql`insert into stream (stream_id, stream_type, version, head_hash)
            select 'grown-' || g, 'rollout', 1, ${'a'.repeat(64)}::text from generate_series(1, 20000) g`.execute(
          trx,
        );
        await sql`insert into event (event_id, stream_id, stream_version, type, schema_version, data, metadata,
                                       recorded_at, prev_hash, hash)
            select gen_random_uuid(), 'grown-' || g, 1, 'T', 1, '{}', '{}', now(), ${GENESIS_HASH}::text,
                   ${'a'.repeat(64)}::text
              from generate_series(1, 20000) g`.execute(trx);

        const later = [];
        const control = [];
        for (let i = 0; i < 3; i++) {
          later.push(await run('append_events_batch', `later-${i}`));
          control.push(await run('pg_temp.batch_unguarded', `control-later-${i}`));
        }
        // Index probes only: a handful of rows fetched per batch, no table scanned.
        for (const r of later)
          expect(r).toMatchObject({ seq: 0, fetched: expect.toSatisfy((n: number) => n < 20) });
        // The control's plan, cached on the small tables, scans a table at every batch.
        for (const r of control) expect(r.seq).toBeGreaterThan(0);
      });
    } finally {
      await small.drop();
    }
  });
});
