import {
  createHash,
  createPublicKey,
  generateKeyPairSync,
  randomUUID,
  verify as verifySignature,
} from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { type RawBuilder, sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import type { DatabaseHandle } from '../../src/database/database.js';
import { isoText } from '../../src/database/iso-text.js';
import { EventStore } from '../../src/event-store/event-store.repository.js';
import { canonicalJson, eventHash, GENESIS_HASH, ledgerHashFromText } from '../../src/ledger/hashing.js';
import { LedgerRepository } from '../../src/ledger/ledger.repository.js';
import { LedgerService } from '../../src/ledger/ledger.service.js';
import type { Checkpoint, LedgerEntry } from '../../src/ledger/ledger.types.js';
import { RestoredDatabaseError, SequencerService } from '../../src/ledger/sequencer.service.js';
import { startTestApp, type TestApp, testConfig } from '../support/app.js';
import { createTestDatabase, onPostgres, type TestDatabase } from '../support/database.js';

/**
 * What an auditor relies on: any edit of the log breaks verification at exactly the edited
 * position (and undoing the edit makes it pass again), checkpoints are real Ed25519 signatures
 * over the chain head, key rotation keeps old checkpoints verifiable, and a logically restored
 * database is refused until it is rebased.
 *
 * Sequencing is manual (`drain()`), so positions and checkpoints are exactly predictable. Each
 * case works on the positions it appended itself, so cases share a database (an embedded one
 * costs seconds to create).
 */
const BACKEND = onPostgres ? 'postgres' : 'pglite';
const MANUAL = { SEQUENCER_ENABLED: 'false' };

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'ledger-integrity-'));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

/**
 * A handle for one app instance on `db`; closing the app closes only this handle. On Postgres a
 * pool of its own; on PGlite (one session) the same instance, its closing left to db.drop().
 */
async function instanceHandle(db: TestDatabase): Promise<DatabaseHandle> {
  if (onPostgres) return db.reopen(4);
  return { ...db.handle, close: async () => {} };
}

/** Appends `n` single-event appends over three streams, sequences them; returns the positions. */
async function appendAndSequence(t: TestApp, n: number, tag: string): Promise<{ from: number; to: number }> {
  const ledger = t.app.get(LedgerService);
  const from = (await ledger.head()).position + 1;
  const store = t.app.get(EventStore);
  for (let i = 0; i < n; i++) {
    await store.append(`integrity-${tag}-${i % 3}`, [
      { type: 'Recorded', data: { tag, i }, metadata: { i } },
    ]);
  }
  expect(await t.app.get(SequencerService).drain()).toBe(n);
  const to = (await ledger.head()).position;
  expect(to).toBe(from + n - 1);
  return { from, to };
}

/** Runs SQL as the superuser with every trigger off (immutability and foreign keys): an attacker. */
async function asAttacker(handle: DatabaseHandle, statement: RawBuilder<unknown>): Promise<void> {
  await handle.db.transaction().execute(async (trx) => {
    await sql`set local session_replication_role = replica`.execute(trx);
    await statement.execute(trx);
  });
}

async function entryAt(t: TestApp, position: number): Promise<LedgerEntry> {
  const { events } = await t.app.get(LedgerService).page(position - 1, 1);
  expect(events[0]?.position).toBe(position);
  return events[0]!;
}

async function writeKeyFile(name: string): Promise<{ file: string; keyId: string }> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const file = path.join(tmp, `${name}-${randomUUID()}.pem`);
  await writeFile(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return { file, keyId: createHash('sha256').update(der).digest('hex').slice(0, 32) };
}

/**
 * The auditor's check, written from the checkpoint format (not with the service's helpers):
 * RFC 8785 JSON of the fields, keys in code-point order, signed with Ed25519.
 */
function signatureValid(c: Checkpoint, publicKeyPem: string): boolean {
  const payload = JSON.stringify({
    createdAt: c.createdAt,
    headHash: c.headHash,
    keyId: c.keyId,
    position: c.position,
    type: 'upgrade-ledger/checkpoint/v1',
  });
  return verifySignature(
    null,
    Buffer.from(payload, 'utf8'),
    createPublicKey(publicKeyPem),
    Buffer.from(c.signature, 'base64'),
  );
}

describe(`ledger tampering and checkpoints (${BACKEND})`, () => {
  let t: TestApp;
  let ledger: LedgerService;
  beforeAll(async () => {
    // A checkpoint every 10 positions: every case appends a multiple of 10, so they stay aligned.
    t = await startTestApp({ env: { ...MANUAL, CHECKPOINT_EVERY: '10', SEQUENCER_BATCH: '10' } });
    ledger = t.app.get(LedgerService);
  });
  afterAll(() => t?.close());
  beforeEach(async () => {
    expect(await ledger.verify()).toMatchObject({ ok: true });
  });

  it('gives projectors each entry as the ledger serves it, less the hashes', async () => {
    const { from, to } = await appendAndSequence(t, 10, 'projected');
    const repo = t.app.get(LedgerRepository);
    const full = await repo.read(from - 1, to - from + 1);
    const lean = await repo.readForProjection(from - 1, to - from + 1);
    expect(lean).toHaveLength(10);
    expect(lean).toEqual(
      full.map((e) => ({
        position: e.position,
        streamId: e.streamId,
        streamVersion: e.streamVersion,
        eventId: e.eventId,
        type: e.type,
        data: e.data,
        metadata: e.metadata,
        recordedAt: e.recordedAt,
      })),
    );
  });

  it('renders recorded_at in Postgres exactly as Date#toISOString of the value node-postgres reads', async () => {
    // The sequencer hashes Postgres's rendering; verification and the exports use the Date. Any
    // difference (rounding of microseconds, a time zone) would break every chain at once.
    const rows = await t.handle.db.transaction().execute(async (trx) => {
      await sql`set local time zone 'America/St_Johns'`.execute(trx);
      const { rows } = await sql<{ d: Date; iso: string }>`
        select x as d, ${isoText('x')} as iso
        from unnest(array[timestamptz '2026-11-26 18:40:29.123999+00', '2026-01-01 00:00:00+00',
                          '1999-12-31 23:59:59.999+05:30', '2026-06-30 12:00:00.0005-03']) as x`.execute(trx);
      return rows;
    });
    expect(rows).toHaveLength(4);
    for (const r of rows) expect(r.iso).toBe(r.d.toISOString());
  });

  it('chains in Postgres the very bytes the service and the verifier hash, whatever the strings hold', async () => {
    // sequence_ledger joins each entry's canonical form in SQL (to_json for the strings), where the
    // service joined it in JSON.stringify's form and the verifier rebuilds it from the values. The
    // store only takes plain stream ids and types, so these rows go in as a replica or a restore
    // could have written them: characters JSON escapes, ones it leaves as they are, and generated
    // ones, in the stream id, the type and the payload.
    const fixed = ['"', '\\', '\n\r\t\b\f', '\u0001\u001f', '\u007f', 'é€😀', '\u2028\u2029', '</script>'];
    const generated = fc.sample(
      fc
        .string({ unit: 'binary', minLength: 1, maxLength: 12 })
        .filter((x) => x.isWellFormed() && !x.includes('\0')),
      { numRuns: 12, seed: 20261128 },
    );
    const strings = [...fixed, ...generated];
    expect(strings).toHaveLength(20);
    const recordedAt = '2026-11-28T04:30:00.123Z';
    const from = (await ledger.head()).position + 1;
    for (const [i, x] of strings.entries()) {
      const e = {
        eventId: randomUUID(),
        streamId: `odd ${x} ${i} ${randomUUID()}`,
        streamVersion: 1,
        type: `Odd${x}`,
        schemaVersion: 1 + i,
        data: { x, i },
        metadata: { [x]: [x] },
        recordedAt,
      };
      const hash = eventHash(GENESIS_HASH, e);
      await sql`insert into stream (stream_id, stream_type, version, head_hash)
                values (${e.streamId}, 'odd', 1, ${hash})`.execute(t.handle.db);
      await sql`insert into event (event_id, stream_id, stream_version, type, schema_version, data,
                                   metadata, recorded_at, prev_hash, hash, data_jcs, metadata_jcs)
                values (${e.eventId}::uuid, ${e.streamId}, 1, ${e.type}, ${e.schemaVersion},
                        ${canonicalJson(e.data)}::jsonb, ${canonicalJson(e.metadata)}::jsonb, ${recordedAt},
                        ${GENESIS_HASH}, ${hash}, ${canonicalJson(e.data)}, ${canonicalJson(e.metadata)})`.execute(
        t.handle.db,
      );
    }
    expect(await t.app.get(SequencerService).drain()).toBe(strings.length);
    const entries = await t.app.get(LedgerRepository).read(from - 1, strings.length);
    expect(entries.map((e) => e.type)).toEqual(strings.map((x) => `Odd${x}`));
    let prev = await t.app.get(LedgerRepository).hashAt(from - 1);
    for (const e of entries) {
      expect(e.prevHash).toBe(prev);
      const payload = { dataJcs: canonicalJson(e.data), metadataJcs: canonicalJson(e.metadata) };
      expect(e.hash).toBe(ledgerHashFromText(e.prevHash, e.position, { ...e, hash: e.eventHash }, payload));
      prev = e.hash;
    }
    expect(await ledger.verify()).toMatchObject({ ok: true });
  });

  it('detects an event whose data was changed behind the triggers, at exactly its position', async () => {
    const { from, to } = await appendAndSequence(t, 30, 'data');
    expect(await ledger.verify()).toMatchObject({ ok: true, verifiedThrough: to });

    const target = await entryAt(t, from + 16);
    const edit = sql`update event set data = '{"tampered":true}'::jsonb where event_id = ${target.eventId}`;
    // The log refuses the edit by itself…
    await expect(edit.execute(t.handle.db)).rejects.toThrow(/append-only/);
    expect(await ledger.verify()).toMatchObject({ ok: true, verifiedThrough: to });
    // …so the attacker goes around the trigger.
    await asAttacker(t.handle, edit);

    const result = await ledger.verify();
    expect(result).toMatchObject({ ok: false, brokenAt: from + 16, verifiedThrough: from + 15 });
    expect(result.ok || result.reason).toMatch(/content was changed/);

    await asAttacker(
      t.handle,
      sql`update event set data = ${JSON.stringify(target.data)}::jsonb where event_id = ${target.eventId}`,
    );
    expect(await ledger.verify()).toMatchObject({ ok: true, verifiedThrough: to });
  });

  it('detects an event rewritten together with its own hash, by the ledger hash', async () => {
    const { from } = await appendAndSequence(t, 10, 'rehash');
    const entry = await entryAt(t, from + 7);
    const data = { tag: 'forged', i: 99 };
    const forgedHash = eventHash(entry.eventPrevHash, { ...entry, data });
    await asAttacker(
      t.handle,
      sql`update event set data = ${JSON.stringify(data)}::jsonb, hash = ${forgedHash}
          where event_id = ${entry.eventId}`,
    );

    const result = await ledger.verify();
    expect(result).toMatchObject({ ok: false, brokenAt: from + 7, verifiedThrough: from + 6 });
    expect(result.ok || result.reason).toMatch(/entry hash does not match/);

    await asAttacker(
      t.handle,
      sql`update event set data = ${JSON.stringify(entry.data)}::jsonb, hash = ${entry.eventHash}
          where event_id = ${entry.eventId}`,
    );
    expect(await ledger.verify()).toMatchObject({ ok: true });
  });

  it('detects a ledger row deleted from the middle, at exactly its position', async () => {
    const { from, to } = await appendAndSequence(t, 30, 'gap');
    const position = from + 12;
    const { rows } = await sql<
      Record<string, unknown>
    >`select * from ledger where position = ${position}`.execute(t.handle.db);
    const row = rows[0]!;
    const remove = sql`delete from ledger where position = ${position}`;
    await expect(remove.execute(t.handle.db)).rejects.toThrow(/append-only/);
    await asAttacker(t.handle, remove);

    const result = await ledger.verify();
    expect(result).toMatchObject({ ok: false, brokenAt: position, verifiedThrough: position - 1 });
    expect(result.ok || result.reason).toMatch(new RegExp(`position ${position} is missing`));

    await sql`insert into ledger (position, event_row_id, prev_hash, hash, sequenced_at)
              values (${row.position}, ${row.event_row_id}, ${row.prev_hash}, ${row.hash}, ${row.sequenced_at})`.execute(
      t.handle.db,
    );
    expect(await ledger.verify()).toMatchObject({ ok: true, verifiedThrough: to });
  });

  it('detects the tail cut off below a signed checkpoint', async () => {
    const { from, to } = await appendAndSequence(t, 30, 'tail');
    expect((await ledger.latestCheckpoint())?.position).toBe(to);
    const { rows } = await sql<Record<string, unknown>>`
      select * from ledger where position > ${to - 5} order by position`.execute(t.handle.db);
    await asAttacker(t.handle, sql`delete from ledger where position > ${to - 5}`);

    const result = await ledger.verify();
    expect(result).toMatchObject({ ok: false, brokenAt: to - 4, verifiedThrough: to - 5 });
    expect(result.ok || result.reason).toMatch(new RegExp(`checkpoint signed position ${to},`));
    expect(from).toBeLessThan(to - 4);

    for (const row of rows) {
      await sql`insert into ledger (position, event_row_id, prev_hash, hash, sequenced_at)
                values (${row.position}, ${row.event_row_id}, ${row.prev_hash}, ${row.hash}, ${row.sequenced_at})`.execute(
        t.handle.db,
      );
    }
    expect(await ledger.verify()).toMatchObject({ ok: true, verifiedThrough: to });
  });

  it('writes signed checkpoints that verify with node:crypto and are counted by verify()', async () => {
    const { from, to } = await appendAndSequence(t, 23, 'checkpoints');
    // Batches of 10 from a multiple of 10: checkpoints at the first two tens, not at the tail.
    const mine = await ledger.checkpoints(from - 1, 100);
    expect(mine.map((c) => c.position)).toEqual([from + 9, from + 19]);

    const keys = await ledger.publicKeys();
    const current = ledger.currentPublicKey();
    expect(keys.map((k) => k.keyId)).toEqual([current.keyId]);
    const pem = keys[0]!.publicKeyPem;
    const der = createPublicKey(pem).export({ type: 'spki', format: 'der' });
    expect(createHash('sha256').update(der).digest('hex').slice(0, 32)).toBe(current.keyId);

    const all = await ledger.checkpoints(0, 1000);
    expect(all.length).toBeGreaterThanOrEqual(2);
    for (const c of all) {
      expect(c.keyId).toBe(current.keyId);
      expect(c.headHash).toBe((await entryAt(t, c.position)).hash);
      expect(signatureValid(c, pem)).toBe(true);
      // The signature covers the position: the same signature over another position is invalid.
      expect(signatureValid({ ...c, position: c.position + 1 }, pem)).toBe(false);
    }
    expect(await ledger.verify()).toEqual({ ok: true, verifiedThrough: to, checkpointsVerified: all.length });

    // A forged signature is caught at its checkpoint's position.
    const target = mine[0]!;
    const forged = Buffer.from(target.signature, 'base64');
    forged[0] = (forged[0] ?? 0) ^ 0xff;
    const setSignature = (signature: string) =>
      asAttacker(
        t.handle,
        sql`update checkpoint set signature = ${signature} where position = ${target.position}`,
      );
    await setSignature(forged.toString('base64'));
    const result = await ledger.verify();
    expect(result).toMatchObject({
      ok: false,
      brokenAt: target.position,
      verifiedThrough: target.position - 1,
    });
    expect(result.ok || result.reason).toMatch(/invalid signature/);

    await setSignature(target.signature);
    expect(await ledger.verify()).toMatchObject({ ok: true, checkpointsVerified: all.length });
  });
});

describe(`signing key rotation and logical restore (${BACKEND})`, () => {
  let db: TestDatabase;
  const running: TestApp[] = [];
  const env = { ...MANUAL, CHECKPOINT_EVERY: '5', SEQUENCER_BATCH: '5' };

  /** Starts the app on the shared database, as a restart of the service would. */
  const start = async (extra: Record<string, string> = {}): Promise<TestApp> => {
    const app = await startTestApp({
      db: { ...db, handle: await instanceHandle(db) },
      env: { ...env, ...extra },
    });
    running.push(app);
    return app;
  };
  const stop = async (app: TestApp) => {
    running.splice(running.indexOf(app), 1);
    await app.close();
  };

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    for (const app of running) await app.close().catch(() => {});
    await db?.drop();
  });

  it('keeps old checkpoints verifiable after the signing key is rotated', async () => {
    const oldKey = await writeKeyFile('old');
    const newKey = await writeKeyFile('new');

    const before = await start({ SIGNING_KEY_FILE: oldKey.file });
    expect(before.app.get(LedgerService).currentPublicKey().keyId).toBe(oldKey.keyId);
    await appendAndSequence(before, 10, 'old');
    await stop(before);

    const after = await start({ SIGNING_KEY_FILE: newKey.file });
    const ledger = after.app.get(LedgerService);
    expect(ledger.currentPublicKey().keyId).toBe(newKey.keyId);
    await appendAndSequence(after, 10, 'new');

    const keys = await ledger.publicKeys();
    expect(keys.map((k) => k.keyId).sort()).toEqual([oldKey.keyId, newKey.keyId].sort());
    const pemOf = new Map(keys.map((k) => [k.keyId, k.publicKeyPem]));
    const checkpoints = await ledger.checkpoints(0, 100);
    expect(checkpoints.map((c) => [c.position, c.keyId])).toEqual([
      [5, oldKey.keyId],
      [10, oldKey.keyId],
      [15, newKey.keyId],
      [20, newKey.keyId],
    ]);
    for (const c of checkpoints) expect(signatureValid(c, pemOf.get(c.keyId)!)).toBe(true);
    expect(await ledger.verify()).toEqual({ ok: true, verifiedThrough: 20, checkpointsVerified: 4 });
    await stop(after);
  });

  it('refuses to start on a logically restored database until it is rebased, then carries on', async () => {
    const first = await start();
    const { to: before } = await appendAndSequence(first, 5, 'pre-restore');
    await stop(first);
    const repo = new LedgerRepository(db.handle);
    const { rows: countRows } = await sql<{ n: number }>`select count(*)::int as n from event`.execute(
      db.handle.db,
    );
    const eventsBefore = Number(countRows[0]?.n);
    const keysBefore = (await repo.publicKeys()).length;

    // A restored event: valid hashes, but a transaction id from a cluster far ahead of this one.
    const streamId = 'restored-1';
    const restored = {
      eventId: randomUUID(),
      streamId,
      streamVersion: 1,
      type: 'RestoredEvent',
      schemaVersion: 1,
      data: { from: 'the old cluster' },
      metadata: { source: 'pg_dump' },
      recordedAt: new Date().toISOString(),
    };
    const hash = eventHash(GENESIS_HASH, restored);
    await sql`insert into stream (stream_id, stream_type, version, head_hash)
              values (${streamId}, 'restored', 1, ${hash})`.execute(db.handle.db);
    await sql`insert into event (event_id, stream_id, stream_version, type, schema_version, data, metadata,
                                 recorded_at, tx_id, prev_hash, hash)
              values (${restored.eventId}, ${streamId}, 1, ${restored.type}, 1,
                      ${JSON.stringify(restored.data)}::jsonb, ${JSON.stringify(restored.metadata)}::jsonb,
                      ${restored.recordedAt}::timestamptz, '9999999999'::xid8, ${GENESIS_HASH}, ${hash})`.execute(
      db.handle.db,
    );

    // Starting the service is refused, with the fix in the message, and nothing is written.
    const dataDir = await mkdtemp(path.join(tmp, 'restored-'));
    const refused = await createApp({
      config: testConfig(dataDir, { ...env, SIGNING_KEY_FILE: (await writeKeyFile('restored')).file }),
      database: await instanceHandle(db),
    }).then(
      async (app) => {
        await app.close();
        return undefined;
      },
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(RestoredDatabaseError);
    expect((refused as Error).message).toContain('npx upgrade-ledger rebase-after-restore');
    expect((refused as Error).message).toContain('9999999999');
    expect(await repo.head()).toMatchObject({ position: before });
    expect(await repo.publicKeys()).toHaveLength(keysBefore);

    // The fix, as the CLI runs it: sequence what was restored, then rebase the transaction ids.
    expect(await repo.rebaseAfterRestore(1000)).toEqual({ sequenced: 1, rebased: eventsBefore + 1 });

    const t = await start();
    const ledger = t.app.get(LedgerService);
    expect(await ledger.verify()).toMatchObject({ ok: true, verifiedThrough: before + 1 });
    const restoredAt = await entryAt(t, before + 1);
    expect(restoredAt.eventId).toBe(restored.eventId);

    const { eventIds } = await t.app
      .get(EventStore)
      .append('after-restore', [{ type: 'Recorded', data: {} }]);
    expect(await t.app.get(SequencerService).drain()).toBe(1);
    const { events } = await ledger.page(before + 1, 10);
    expect(events.map((e) => [e.position, e.eventId])).toEqual([[before + 2, eventIds[0]]]);
    expect(await ledger.verify()).toMatchObject({ ok: true, verifiedThrough: before + 2 });
  });
});

describe(`sequencers running at once (${BACKEND})`, () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db?.drop());

  it('give every event exactly one position, with no gap, however their batches interleave', async () => {
    // A leader that lost its lock while a batch was in flight, and whoever took over: each batch
    // moves the cursor only from where it read it, so an interleaved one writes nothing and
    // reads again.
    const handles = onPostgres ? await Promise.all([1, 2, 3].map(() => db.reopen(2))) : [db.handle];
    const sequencers = handles.map((h) => new LedgerRepository(h));
    const store = new EventStore(onPostgres ? await db.reopen(8) : db.handle);
    const total = 600;
    let appended = 0;
    const appending = Promise.all(
      Array.from({ length: 6 }, async (_, w) => {
        for (let i = 0; i < total / 6; i++) {
          await store.append(`seq-race-${w}-${i % 5}`, [
            { type: 'Recorded', data: { w, i }, metadata: {} },
            { type: 'Recorded', data: { w, i, second: true }, metadata: {} },
          ]);
          appended += 2;
        }
      }),
    );
    let done = false;
    void appending.finally(() => {
      done = true;
    });
    const positions: number[] = [];
    await Promise.all(
      [...sequencers, ...sequencers].map(async (repo, k) => {
        for (;;) {
          const finished = done;
          const { entries } = await repo.sequenceBatch(7 + k);
          positions.push(...entries.map((e) => e.position));
          if (finished && entries.length === 0) return;
        }
      }),
    );
    await appending;
    expect(appended).toBe(total * 2);
    expect(positions).toHaveLength(total * 2);
    expect(new Set(positions).size).toBe(total * 2);
    const { rows } = await sql<{ n: string; lo: string; hi: string; events: string }>`
      select count(*)::text as n, min(position)::text as lo, max(position)::text as hi,
             count(distinct event_row_id)::text as events from ledger`.execute(db.handle.db);
    expect(rows[0]).toEqual({
      n: String(total * 2),
      lo: '1',
      hi: String(total * 2),
      events: String(total * 2),
    });
    // And the chain links up across the interleaved batches.
    const entries = await sequencers[0]?.read(0, total * 2 + 1);
    let prev = GENESIS_HASH;
    for (const e of entries ?? []) {
      expect(e.prevHash).toBe(prev);
      prev = e.hash;
    }
    expect(entries).toHaveLength(total * 2);
  }, 60_000);
});
