import { Inject, Injectable } from '@nestjs/common';
import { type Kysely, type Selectable, sql } from 'kysely';
import type { DatabaseHandle } from '../database/database.js';
import { DATABASE } from '../database/database.module.js';
import { isoText } from '../database/iso-text.js';
import type { Database, Json } from '../database/schema.js';
import { canonicalJson, GENESIS_HASH, ledgerHashFromText } from './hashing.js';
import type {
  Checkpoint,
  LedgerEntry,
  LedgerEntryText,
  ProjectedEntry,
  PublicKeyInfo,
} from './ledger.types.js';

export interface SequencedBatch {
  /** Each entry's position, and its event's `recorded_at` in milliseconds since the epoch. */
  entries: { position: number; recordedMs: number }[];
  head: { position: number; hash: string };
}

const LEDGER_COLUMNS = [
  'l.position',
  'l.hash',
  'l.prev_hash',
  'e.stream_id',
  'e.stream_version',
  'e.event_id',
  'e.type',
  'e.schema_version',
  'e.data',
  'e.metadata',
  'e.recorded_at',
  'e.hash as event_hash',
  'e.prev_hash as event_prev_hash',
] as const;

/** The ledger entries after a position, joined to their events, in order: each reader selects its columns. */
function entriesAfter(db: Kysely<Database>, after: number, limit: number) {
  return db
    .selectFrom('ledger as l')
    .innerJoin('event as e', 'e.id', 'l.event_row_id')
    .where('l.position', '>', after)
    .orderBy('l.position')
    .limit(limit);
}

/**
 * Whether an event's stored canonical text still says what its `jsonb` says, and holds no line
 * break: null (so false in a `case`) when it has no text. Canonical text never holds a raw line
 * break; one, written behind the triggers, would split the export's line. The cast raises a data
 * exception (SQLSTATE class 22) for a text that is no longer JSON: the export then reads the
 * window again without the text (`readText(from, to, false)`).
 */
const TEXT_AGREES = sql<boolean>`(strpos(e.data_jcs, E'\n') = 0 and strpos(e.data_jcs, E'\r') = 0
  and strpos(e.metadata_jcs, E'\n') = 0 and strpos(e.metadata_jcs, E'\r') = 0
  and e.data_jcs::jsonb = e.data and e.metadata_jcs::jsonb = e.metadata)`;

/** The columns of a ledger entry's row besides its payload and time, as the readers select them. */
interface EnvelopeRow {
  position: number;
  hash: string;
  prev_hash: string;
  stream_id: string;
  stream_version: number;
  event_id: string;
  type: string;
  schema_version: number;
  event_hash: string;
  event_prev_hash: string;
}

/** A ledger row's fields that every reader of whole entries gives alike: all but payload and time. */
function envelopeOf(r: EnvelopeRow): Omit<LedgerEntry, 'data' | 'metadata' | 'recordedAt'> {
  return {
    position: r.position,
    hash: r.hash,
    prevHash: r.prev_hash,
    streamId: r.stream_id,
    streamVersion: r.stream_version,
    eventId: r.event_id,
    type: r.type,
    schemaVersion: r.schema_version,
    eventHash: r.event_hash,
    eventPrevHash: r.event_prev_hash,
  };
}

/** Where the sequencer's next read starts: after this (tx_id, event row id), in commit order. */
export interface SequencerCursor {
  tx_id: string;
  event_row_id: number;
}

/**
 * The sequencer's read: the next `limit` committed events after the cursor, in (tx_id, id) order,
 * a range scan of `event_tx_order_idx` from the cursor whatever the size of the table. Only events
 * of transactions below the snapshot's xmin (unless `ignoreSnapshot`). Built apart so that the
 * benchmark explains and times it (bench/sequencer-scale.ts). `sequence_ledger` (migrations 001100
 * and 001200) runs the same read, planned with each call's cursor (`EXECUTE`).
 */
export function unsequencedEvents(
  db: Kysely<Database>,
  cursor: SequencerCursor,
  limit: number,
  ignoreSnapshot = false,
) {
  // The stored canonical text, not the jsonb: parsing and re-canonicalising every payload was
  // most of the sequencer's CPU. The jsonb is read only for events that have no text.
  let query = db
    .selectFrom('event as e')
    .select([
      'e.id',
      'e.tx_id',
      'e.event_id',
      'e.stream_id',
      'e.stream_version',
      'e.type',
      'e.schema_version',
      // As the hash needs it (Date#toISOString's form), rendered by Postgres: no Date per event.
      isoText('e.recorded_at').as('recorded_at_iso'),
      'e.hash',
      'e.data_jcs',
      'e.metadata_jcs',
      sql<Json | null>`case when e.data_jcs is null then e.data end`.as('data'),
      sql<Json | null>`case when e.metadata_jcs is null then e.metadata end`.as('metadata'),
    ])
    .where(sql<boolean>`(e.tx_id, e.id) > (${cursor.tx_id}::xid8, ${cursor.event_row_id}::bigint)`);
  if (!ignoreSnapshot) query = query.where(sql<boolean>`e.tx_id < pg_snapshot_xmin(pg_current_snapshot())`);
  return query.orderBy('e.tx_id').orderBy('e.id').limit(limit);
}

/** All SQL of the ledger: sequencing, reading, checkpoints and keys. */
@Injectable()
export class LedgerRepository {
  private readonly db: Kysely<Database>;

  constructor(@Inject(DATABASE) handle: DatabaseHandle) {
    this.db = handle.db;
  }

  /**
   * Gives the next committed events their ledger positions, in commit order: one call of
   * `sequence_ledger` (migrations 001100 and 001200), which reads the events, chains their hashes
   * and writes the entries and the cursor in one statement, the payloads never leaving Postgres.
   *
   * Only events of transactions below the snapshot's xmin are read: every transaction below it
   * has ended, so no event can commit later with a smaller (tx_id, id) than one already read. The
   * cursor moves by compare-and-set on the whole of it, and the entries are written only if it
   * moved: a batch raced by another sequencer writes nothing and is read again from the new
   * cursor; with `ledger.position` the primary key, there can be no gap and no duplicate either
   * way. Events without stored canonical text (appended before migration 000700, or by an older
   * replica during a rolling upgrade) end the function's batch; the rest of the batch, from the
   * first of them, is sequenced here instead, from their jsonb (`sequenceBatchInNode`).
   *
   * @param ignoreSnapshot only for `rebase-after-restore`, with the service stopped.
   */
  async sequenceBatch(limit: number, ignoreSnapshot = false): Promise<SequencedBatch> {
    for (;;) {
      const { rows } = await sql<{
        sequenced: number;
        head_position: number;
        head_hash: string;
        recorded_ms: number[];
        moved: boolean;
        needs_text: boolean;
      }>`select sequenced, head_position, head_hash, recorded_ms, moved, needs_text
           from sequence_ledger(${limit}::integer, ${ignoreSnapshot})`.execute(this.db);
      const r = rows[0];
      if (!r) throw new Error('sequence_ledger answered nothing');
      if (r.moved) continue; // another sequencer moved the cursor first: read again from it
      const first = Number(r.head_position) - r.sequenced + 1;
      const done: SequencedBatch = {
        entries: r.recorded_ms.map((ms, i) => ({ position: first + i, recordedMs: ms })),
        head: { position: Number(r.head_position), hash: r.head_hash },
      };
      if (!r.needs_text) return done;
      // Stopped at an event without text: the rest of the batch from it, here. A batch comes back
      // short only when nothing more is ready, which the loops of a rebase and a transfer rely on.
      const rest = await this.sequenceBatchInNode(limit - r.sequenced, ignoreSnapshot);
      // rest.head is the state after it, even when another sequencer moved the cursor in between.
      return { entries: [...done.entries, ...rest.entries], head: rest.head };
    }
  }

  /**
   * `sequenceBatch` done in Node, for events without stored canonical text: their jsonb is
   * canonicalised here. The same rules, and the same hashes, as `sequence_ledger`.
   *
   * Read, hash, then one statement that moves the cursor only if it is still where it was read
   * (compare-and-set on the whole cursor) and inserts the entries only if it did. The read and the
   * hashing hold no transaction open, so a batch is three statements instead of a six-statement
   * transaction, and its transaction id exists for the write alone. A cursor moved meanwhile
   * (two sequencers at once) writes nothing and the batch is read again from the new cursor;
   * with `ledger.position` the primary key, there can be no gap and no duplicate either way.
   *
   * @param ignoreSnapshot only for `rebase-after-restore`, with the service stopped.
   */
  async sequenceBatchInNode(limit: number, ignoreSnapshot = false): Promise<SequencedBatch> {
    for (;;) {
      const state = await this.db
        .selectFrom('sequencer_state')
        .select(['position', 'head_hash', 'tx_id', 'event_row_id'])
        .where('id', '=', 1)
        .executeTakeFirstOrThrow();
      const events = await unsequencedEvents(this.db, state, limit, ignoreSnapshot).execute();
      if (events.length === 0) {
        return { entries: [], head: { position: state.position, hash: state.head_hash } };
      }
      const n = events.length;
      const positions = new Array<number>(n);
      const rowIds = new Array<number>(n);
      const prevHashes = new Array<string>(n);
      const hashes = new Array<string>(n);
      let prevHash = state.head_hash;
      for (let i = 0; i < n; i++) {
        const e = events[i] as (typeof events)[number];
        const position = state.position + i + 1;
        const envelope = {
          eventId: e.event_id,
          streamId: e.stream_id,
          streamVersion: e.stream_version,
          type: e.type,
          schemaVersion: e.schema_version,
          recordedAt: e.recorded_at_iso,
          hash: e.hash,
        };
        const payload = {
          dataJcs: e.data_jcs ?? canonicalJson(e.data),
          metadataJcs: e.metadata_jcs ?? canonicalJson(e.metadata),
        };
        const hash = ledgerHashFromText(prevHash, position, envelope, payload);
        positions[i] = position;
        rowIds[i] = e.id;
        prevHashes[i] = prevHash;
        hashes[i] = hash;
        prevHash = hash;
      }
      const last = events[n - 1] as (typeof events)[number];
      const head = { position: state.position + n, hash: prevHash };
      // Four array parameters instead of four per row: one small statement to build and parse.
      const { rows } = await sql<{ inserted: string }>`
        with moved as (
          update sequencer_state
          set position = ${head.position}, head_hash = ${head.hash},
              tx_id = ${last.tx_id}::xid8, event_row_id = ${last.id}
          -- The whole cursor, not the position alone: a rebase after a restore moves tx_id and
          -- event_row_id without the position, and a batch read before it must not undo that.
          where id = 1 and position = ${state.position} and head_hash = ${state.head_hash}
            and tx_id = ${state.tx_id}::xid8 and event_row_id = ${state.event_row_id}
          returning 1
        ), inserted as (
          insert into ledger (position, event_row_id, prev_hash, hash)
          select * from unnest(${positions}::bigint[], ${rowIds}::bigint[],
                               ${prevHashes}::text[], ${hashes}::text[])
          where exists (select 1 from moved)
          returning 1
        )
        select count(*)::text as inserted from inserted`.execute(this.db);
      if (Number(rows[0]?.inserted) !== n) continue; // the cursor moved under us: read again
      return {
        entries: events.map((e, i) => ({
          position: state.position + i + 1,
          recordedMs: Date.parse(e.recorded_at_iso),
        })),
        head,
      };
    }
  }

  async head(): Promise<{ position: number; hash: string }> {
    const s = await this.db
      .selectFrom('sequencer_state')
      .select(['position', 'head_hash'])
      .where('id', '=', 1)
      .executeTakeFirstOrThrow();
    return { position: s.position, hash: s.head_hash };
  }

  /** The chain hash at a position (undefined beyond the head). */
  async hashAt(position: number): Promise<string | undefined> {
    if (position === 0) return GENESIS_HASH;
    const row = await this.db
      .selectFrom('ledger')
      .select('hash')
      .where('position', '=', position)
      .executeTakeFirst();
    return row?.hash;
  }

  /** Events appended but not yet given a ledger position. */
  async pendingCount(): Promise<number> {
    const s = await this.db
      .selectFrom('sequencer_state')
      .select(['tx_id', 'event_row_id'])
      .where('id', '=', 1)
      .executeTakeFirstOrThrow();
    const row = await this.db
      .selectFrom('event as e')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where(sql<boolean>`(e.tx_id, e.id) > (${s.tx_id}::xid8, ${s.event_row_id}::bigint)`)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Entries with position > after, in order. Pass `executor` to read inside a transaction. */
  async read(after: number, limit: number, executor: Kysely<Database> = this.db): Promise<LedgerEntry[]> {
    const rows = await entriesAfter(executor, after, limit).select(LEDGER_COLUMNS).execute();
    return rows.map((r) => ({
      ...envelopeOf(r),
      data: r.data,
      metadata: r.metadata as { [key: string]: Json },
      recordedAt: r.recorded_at.toISOString(),
    }));
  }

  /**
   * The entries at positions from..to, in order, as `read` gives them but with each payload as
   * RFC 8785 text, and `recorded_at` rendered by Postgres: what the CSV export writes. The text is
   * the one the append stored (`event.data_jcs`/`metadata_jcs`) where it still says what the
   * `jsonb` says, which is then not parsed; otherwise, and for every entry when `storedText` is
   * false, the `jsonb` is read and canonicalised, as `read` would (see `readLines` for why).
   */
  async readText(from: number, to: number, storedText = true): Promise<LedgerEntryText[]> {
    const agrees = storedText ? sql<boolean>`coalesce(${TEXT_AGREES}, false)` : sql<boolean>`false`;
    const { rows } = await sql<
      EnvelopeRow & {
        data_jcs: string | null;
        metadata_jcs: string | null;
        data: Json | null;
        metadata: Json | null;
        recorded_at_iso: string;
      }
    >`
      select l.position, l.hash, l.prev_hash, e.stream_id, e.stream_version, e.event_id, e.type,
        e.schema_version,
        case when c.agrees then e.data_jcs end as data_jcs,
        case when c.agrees then e.metadata_jcs end as metadata_jcs,
        case when c.agrees then null else e.data end as data,
        case when c.agrees then null else e.metadata end as metadata,
        ${isoText('e.recorded_at')} as recorded_at_iso,
        e.hash as event_hash, e.prev_hash as event_prev_hash
      from ledger l
      join event e on e.id = l.event_row_id
      -- offset 0 keeps the comparison in its own subquery: made once a row, not once a use.
      cross join lateral (select ${agrees} as agrees offset 0) c
      where l.position between ${from} and ${to}
      order by l.position`.execute(this.db);
    return rows.map((r) => ({
      ...envelopeOf(r),
      dataJcs: r.data_jcs ?? canonicalJson(r.data),
      metadataJcs: r.metadata_jcs ?? canonicalJson(r.metadata),
      recordedAt: r.recorded_at_iso,
    }));
  }

  /**
   * The export lines of the entries at positions from..to, in order, each built by Postgres from
   * the canonical text the append stored: `entryLine` of `readText`'s entry, the same bytes, with
   * nothing for Node to parse but one string a row. An entry has no line (`null`; `readText`
   * gives it) when its event has no stored text (appended before migration 000700), or when that
   * text no longer says what the `jsonb` says.
   *
   * Why the comparison: the `jsonb` is what everything served is built from, and what `verify`
   * hashes; the text is what the sequencer hashed. The append makes them agree, so they differ
   * only if someone edited one behind the triggers. An export that wrote the text regardless
   * would then verify offline while the reports said otherwise. Written from the `jsonb`, such an
   * entry fails offline verification at its position, as it fails `verify`. Equal `jsonb` values
   * are the same value (numbers compared exactly, so JavaScript reads the same doubles), so an
   * entry verifies offline exactly when it verifies online. The line holds the text as stored:
   * canonical as the append wrote it; an edit of the text alone that keeps its value (white
   * space, key order) is written as it is, and verifies, since the verifier hashes the values it
   * parses. The comparison parses the text as `jsonb`: 10,000 rows on bench_report_100000 took
   * 81 ms with it and 55 ms without (session 16).
   *
   * Why Postgres builds the line: joined in Node, the export was bound by the service's thread
   * (docs/benchmarks.md, session 16). The strings come out as `JSON.stringify` writes them, which
   * is RFC 8785's form: `to_json` of a text escapes `"` and `\\`, writes \b \f \n \r \t, and
   * every other character below U+0020 as \u00xx in lower case, leaving the rest as it is, as
   * `JSON.stringify` does. (Postgres text holds no lone surrogates and no U+0000, the only other
   * characters JSON.stringify escapes.) The integers are written as JavaScript writes a safe
   * integer. The integration tests hold the lines to `entryLine` on awkward payloads and names.
   */
  async readLines(from: number, to: number): Promise<{ position: number; line: string | null }[]> {
    const { rows } = await sql<{ position: number; line: string | null }>`
      select l.position,
        case when ${TEXT_AGREES} then
          '{"data":' || e.data_jcs
          || ',"eventHash":' || to_json(e.hash)::text
          || ',"eventId":' || to_json(e.event_id)::text
          || ',"eventPrevHash":' || to_json(e.prev_hash)::text
          || ',"hash":' || to_json(l.hash)::text
          || ',"kind":"entry","metadata":' || e.metadata_jcs
          || ',"position":' || l.position::text
          || ',"prevHash":' || to_json(l.prev_hash)::text
          || ',"recordedAt":' || to_json(${isoText('e.recorded_at')})::text
          || ',"schemaVersion":' || e.schema_version::text
          || ',"streamId":' || to_json(e.stream_id)::text
          || ',"streamVersion":' || e.stream_version::text
          || ',"type":' || to_json(e.type)::text
          || '}'
        end as line
      from ledger l
      join event e on e.id = l.event_row_id
      where l.position between ${from} and ${to}
      order by l.position`.execute(this.db);
    return rows;
  }

  /**
   * Entries with position > after, in order, as projectors read them: `read` without the four
   * hashes and the schema version, and `recorded_at` rendered by Postgres. Projections read every
   * entry once; a Date parsed and formatted again per entry, and hashes nobody looks at, were a
   * good part of their CPU (docs/benchmarks.md, session 7).
   */
  async readForProjection(after: number, limit: number): Promise<ProjectedEntry[]> {
    const rows = await entriesAfter(this.db, after, limit)
      .select([
        'l.position',
        'e.stream_id',
        'e.stream_version',
        'e.event_id',
        'e.type',
        'e.data',
        'e.metadata',
        isoText('e.recorded_at').as('recorded_at_iso'),
      ])
      .execute();
    return rows.map((r) => ({
      position: r.position,
      streamId: r.stream_id,
      streamVersion: r.stream_version,
      eventId: r.event_id,
      type: r.type,
      data: r.data,
      metadata: r.metadata as { [key: string]: Json },
      recordedAt: r.recorded_at_iso,
    }));
  }

  async insertCheckpoint(c: Checkpoint): Promise<void> {
    await this.db
      .insertInto('checkpoint')
      .values({
        position: c.position,
        head_hash: c.headHash,
        created_at: c.createdAt,
        key_id: c.keyId,
        signature: c.signature,
      })
      .onConflict((oc) => oc.column('position').doNothing())
      .execute();
  }

  async latestCheckpoint(): Promise<Checkpoint | undefined> {
    const row = await this.db
      .selectFrom('checkpoint')
      .selectAll()
      .orderBy('position', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ? toCheckpoint(row) : undefined;
  }

  async checkpoints(after: number, limit: number): Promise<Checkpoint[]> {
    const rows = await this.db
      .selectFrom('checkpoint')
      .selectAll()
      .where('position', '>', after)
      .orderBy('position')
      .limit(limit)
      .execute();
    return rows.map(toCheckpoint);
  }

  async registerKey(keyId: string, publicKeyPem: string): Promise<void> {
    await this.db
      .insertInto('signing_key')
      .values({ key_id: keyId, algorithm: 'ed25519', public_key_pem: publicKeyPem })
      .onConflict((oc) => oc.column('key_id').doNothing())
      .execute();
  }

  async publicKeys(): Promise<PublicKeyInfo[]> {
    const rows = await this.db
      .selectFrom('signing_key')
      .selectAll()
      .orderBy('created_at')
      .orderBy('key_id')
      .execute();
    return rows.map((r) => ({
      keyId: r.key_id,
      algorithm: r.algorithm,
      publicKeyPem: r.public_key_pem,
      createdAt: r.created_at.toISOString(),
    }));
  }

  /**
   * Largest stored tx_id and the next one the server will assign. After a logical restore
   * (pg_dump) into a fresh cluster, the first exceeds the second.
   */
  async transactionIdHorizon(): Promise<{ maxStored: bigint; next: bigint }> {
    const { rows } = await sql<{ max_stored: string | null; next: string }>`
      select (select tx_id from event order by tx_id desc limit 1)::text as max_stored,
             pg_snapshot_xmax(pg_current_snapshot())::text as next`.execute(this.db);
    const row = rows[0];
    return { maxStored: BigInt(row?.max_stored ?? 0), next: BigInt(row?.next ?? 0) };
  }

  /**
   * The fix after a logical restore: with the service stopped, sequence every restored event,
   * then move the stored transaction ids (an ordering hint, never hashed) below the new
   * cluster's counter so the sequencer's cursor works again. Needs the right to disable
   * triggers (table owner), as a maintenance step.
   */
  async rebaseAfterRestore(batch: number): Promise<{ sequenced: number; rebased: number }> {
    let sequenced = 0;
    for (;;) {
      const { entries } = await this.sequenceBatch(batch, true);
      sequenced += entries.length;
      if (entries.length < batch) break;
    }
    const rebased = await this.db.transaction().execute(async (trx) => {
      await sql`alter table event disable trigger event_no_update_delete`.execute(trx);
      const res = await sql`update event set tx_id = '0'::xid8 where tx_id <> '0'::xid8`.execute(trx);
      await sql`alter table event enable trigger event_no_update_delete`.execute(trx);
      await sql`update sequencer_state set tx_id = '0'::xid8,
                event_row_id = coalesce((select max(id) from event), 0) where id = 1`.execute(trx);
      return Number(res.numAffectedRows ?? 0);
    });
    return { sequenced, rebased };
  }
}

function toCheckpoint(row: Selectable<Database['checkpoint']>): Checkpoint {
  return {
    position: row.position,
    headHash: row.head_hash,
    createdAt: row.created_at.toISOString(),
    keyId: row.key_id,
    signature: row.signature,
  };
}
