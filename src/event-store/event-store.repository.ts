import { Inject, Injectable, Optional } from '@nestjs/common';
import { type CompiledQuery, type Kysely, sql } from 'kysely';
import {
  ConcurrencyConflict,
  type ExpectedVersion,
  IdempotencyConflict,
  InvalidInput,
} from '../common/errors.js';
import { uuidv7 } from '../common/ids.js';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import type { DatabaseHandle } from '../database/database.js';
import { DATABASE } from '../database/database.module.js';
import { isoText } from '../database/iso-text.js';
import { isUniqueViolation } from '../database/pg-errors.js';
import type { Database, EventRow, Json } from '../database/schema.js';
import { StatementCache } from '../database/statement-cache.js';
import { canonicalJson, eventHashFromText, GENESIS_HASH } from '../ledger/hashing.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { AppendSignal } from './append-signal.js';
import type {
  AppendOptions,
  AppendResult,
  FoldEvent,
  NewEvent,
  ReadStreamOptions,
  StoredEvent,
} from './event-store.types.js';
import { callAppendEvents, GroupCommitter } from './group-commit.js';
import { GroupReader, type StreamFromRow } from './group-read.js';
import { assertStorableJson } from './storable-json.js';

/**
 * The event columns a reader needs: all but the canonical text of the payloads, which only the
 * sequencer reads (it would double what every read of a stream transfers).
 */
export const EVENT_COLUMNS = [
  'event_id',
  'stream_id',
  'stream_version',
  'type',
  'schema_version',
  'data',
  'metadata',
  'recorded_at',
  'prev_hash',
  'hash',
] as const;
/** `EVENT_COLUMNS` of `event as e`. */
export const EVENT_COLUMNS_E = EVENT_COLUMNS.map((c) => `e.${c}` as const);
type ReadEventRow = Pick<EventRow, (typeof EVENT_COLUMNS)[number]>;

/** NOTIFY channel that wakes the sequencer when events commit. */
export const EVENTS_CHANNEL = 'upgrade_ledger_events';
export const MAX_EVENTS_PER_APPEND = 1000;
/** Appends hashed against a guessed head before a busy stream is appended to under its lock. */
const OPTIMISTIC_ATTEMPTS = 2;
/** Stream heads remembered per process (a guess only: the database checks it). */
const HEAD_CACHE_SIZE = 10_000;

const STREAM_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/;
const EVENT_TYPE = /^[A-Za-z][A-Za-z0-9._-]{0,99}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface PreparedEvent {
  eventId: string;
  type: string;
  schemaVersion: number;
  /** RFC 8785 text of `data` and `metadata`: hashed, and stored beside the jsonb. */
  dataJcs: string;
  metadataJcs: string;
}

interface StreamHead {
  version: number;
  hash: string;
}

/**
 * The last known head of recently used streams, oldest dropped first. Only ever a guess that
 * saves a round trip: `append_events` checks it under the stream's lock, so a stale entry (another
 * replica appended) costs one more round trip, never a wrong write.
 */
class HeadCache {
  private readonly heads = new Map<string, StreamHead>();

  get(streamId: string): StreamHead | undefined {
    return this.heads.get(streamId);
  }

  remember(streamId: string, head: StreamHead): void {
    this.heads.delete(streamId);
    this.heads.set(streamId, head);
    if (this.heads.size > HEAD_CACHE_SIZE) {
      const oldest = this.heads.keys().next().value;
      if (oldest !== undefined) this.heads.delete(oldest);
    }
  }
}

/**
 * The append-only event store. Appends to different streams run concurrently: each takes only
 * its own stream's row lock (compare-and-set on `stream.version`), never a global one.
 */
@Injectable()
export class EventStore {
  private readonly db: Kysely<Database>;
  private notifying = false;
  private notifyAgain = false;
  private readonly heads = new HeadCache();
  private readonly committer: GroupCommitter;
  /** Concurrent `readStreamFrom`s, one statement for several (group read). */
  private readonly reader: GroupReader;
  /** `readStreamFrom`'s statement, compiled once: what a lone read sends. */
  private readonly streamFrom = new StatementCache((p: { streamId: string; fromVersion: number }) =>
    this.db
      .selectFrom('event as e')
      .leftJoin('ledger as l', 'l.event_row_id', 'e.id')
      .select(['e.stream_version', 'e.type', 'e.hash', 'l.position'])
      .select(sql<Json | null>`case when e.stream_version > ${p.fromVersion} then e.data end`.as('data'))
      // The canonical text's length (read from its header, never decompressed); jsonb's own
      // size for events stored before that text existed.
      .select(
        sql<number>`case when e.stream_version > ${p.fromVersion}
                    then coalesce(octet_length(e.data_jcs), octet_length(e.data::text)) else 0 end`.as(
          'data_bytes',
        ),
      )
      .select(isoText('e.recorded_at').as('recorded_at_iso'))
      .where('e.stream_id', '=', p.streamId)
      .where('e.stream_version', '>=', p.fromVersion)
      .orderBy('e.stream_version'),
  );

  constructor(
    @Inject(DATABASE) handle: DatabaseHandle,
    @Optional() private readonly signal?: AppendSignal,
    @Optional() @Inject(APP_CONFIG) config?: Pick<AppConfig, 'groupCommitInFlight'>,
    @Optional() metrics?: MetricsService,
  ) {
    this.db = handle.db;
    this.committer = new GroupCommitter(
      this.db,
      config?.groupCommitInFlight,
      metrics && {
        sent(queuedSeconds) {
          metrics.groupCommitCalls.inc();
          metrics.groupCommitAppends.inc(queuedSeconds.length);
          for (const s of queuedSeconds) metrics.groupCommitQueueWait.observe(s);
        },
        answered(seconds) {
          metrics.groupCommitCallDuration.observe(seconds);
        },
      },
    );
    this.reader = new GroupReader(
      this.db,
      (streamId, fromVersion) =>
        this.streamFrom.compile('', { streamId, fromVersion }) as CompiledQuery<StreamFromRow>,
    );
  }

  /** Group-commit counters: calls to the database and the appends they carried. */
  get commitStats(): Readonly<GroupCommitter['stats']> {
    return this.committer.stats;
  }

  /** Group-read counters: statements sent for `readStreamFrom` and the reads they carried. */
  get readStats(): Readonly<GroupReader['stats']> {
    return this.reader.stats;
  }

  /**
   * Wakes the sequencer after a commit: directly when it leads in this process, else by NOTIFY
   * to whichever replica leads. Not inside the append's
   * transaction: a NOTIFY there takes Postgres's database-wide notify lock through the commit and
   * its fsync, which would make concurrent appends commit one at a time. Coalesced: at most one
   * in flight per process. Only a wake-up call: the sequencer's polling is the truth.
   */
  private wakeSequencer(): void {
    if (this.signal?.wakeLocal()) return;
    if (this.notifying) {
      this.notifyAgain = true;
      return;
    }
    this.notifying = true;
    void sql`select pg_notify(${EVENTS_CHANNEL}, '')`
      .execute(this.db)
      .catch(() => {})
      .finally(() => {
        this.notifying = false;
        if (this.notifyAgain) {
          this.notifyAgain = false;
          this.wakeSequencer();
        }
      });
  }

  /**
   * Appends events to a stream if it is at the expected version.
   *
   * One round trip when the stream's head is known (a new stream, or one this process has just
   * read or written): the events are hashed here against that head and `append_events` checks it
   * under the stream's locks. When the guess is wrong, nothing is written and the function answers
   * with the actual head: a version precondition then fails, `any`/`exists` hash again and retry.
   *
   * @example
   * await store.append('rollout-42', [{ type: 'RolloutPlanned', data: plan }], { expectedVersion: 'no_stream' });
   * // → { streamVersion: 1, eventIds: ['…'], duplicate: false }
   */
  async append(streamId: string, events: NewEvent[], options: AppendOptions = {}): Promise<AppendResult> {
    const expected = options.expectedVersion ?? 'any';
    const prepared = this.prepare(streamId, events, expected);
    const streamType = options.streamType ?? streamId.split('-')[0] ?? streamId;
    let head = this.guessHead(streamId, expected);
    try {
      for (let attempt = 1; ; attempt++) {
        const outcome = await this.tryAppend(this.db, streamId, streamType, prepared, head);
        if (outcome.outcome === 'appended') {
          this.heads.remember(streamId, outcome.head);
          this.wakeSequencer();
          return {
            streamVersion: outcome.head.version,
            eventIds: prepared.map((e) => e.eventId),
            duplicate: false,
          };
        }
        if (outcome.outcome === 'seen') return await this.seen(streamId, prepared);
        // The stream is not where we hashed against.
        const actual = outcome.head;
        this.heads.remember(streamId, actual);
        if (!versionMatches(expected, actual.version)) {
          throw new ConcurrencyConflict(
            streamId,
            expected,
            actual.version === 0 ? 'no_stream' : actual.version,
          );
        }
        // Our guess was stale (or absent) and the precondition still holds: hash against the
        // actual head once more; if the stream moves again it is busy, so take its lock first.
        head = actual;
        if (attempt >= OPTIMISTIC_ATTEMPTS)
          return await this.appendLocked(streamId, streamType, prepared, expected);
      }
    } catch (err) {
      // A concurrent identical retry won the race to insert these event ids (or they were used in
      // another stream meanwhile): answer as the original did, or report the conflict.
      if (isUniqueViolation(err, 'event_event_id_key')) {
        const original = await this.originalResult(this.db, streamId, prepared);
        if (original) return original;
      }
      throw err;
    }
  }

  /**
   * The pessimistic path, for a stream that moved under two optimistic tries: its advisory lock
   * (the one `append_events` takes too, re-entrant in this session) is held while the head is read
   * and the events hashed, so the append cannot miss.
   */
  private async appendLocked(
    streamId: string,
    streamType: string,
    events: PreparedEvent[],
    expected: ExpectedVersion,
  ): Promise<AppendResult> {
    const outcome = await this.db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtextextended(${streamId}, 0))`.execute(trx);
      const row = await trx
        .selectFrom('stream')
        .select(['version', 'head_hash'])
        .where('stream_id', '=', streamId)
        .executeTakeFirst();
      const head = row ? { version: row.version, hash: row.head_hash } : { version: 0, hash: GENESIS_HASH };
      if (!versionMatches(expected, head.version)) return { outcome: 'moved' as const, head };
      return this.tryAppend(trx, streamId, streamType, events, head);
    });
    if (outcome.outcome === 'seen') return this.seen(streamId, events);
    this.heads.remember(streamId, outcome.head);
    if (outcome.outcome === 'moved') {
      const actual = outcome.head.version;
      throw new ConcurrencyConflict(streamId, expected, actual === 0 ? 'no_stream' : actual);
    }
    this.wakeSequencer();
    return { streamVersion: outcome.head.version, eventIds: events.map((e) => e.eventId), duplicate: false };
  }

  /** The head to hash against before asking the database: exact for a new stream, else cached. */
  private guessHead(streamId: string, expected: ExpectedVersion): StreamHead {
    if (expected === 'no_stream') return { version: 0, hash: GENESIS_HASH };
    const cached = this.heads.get(streamId);
    if (cached && (typeof expected !== 'number' || cached.version === expected)) return cached;
    // Unknown: a head no stream has, so the first call only reads the actual one.
    return { version: -1, hash: GENESIS_HASH };
  }

  private async tryAppend(
    db: Kysely<Database>,
    streamId: string,
    streamType: string,
    events: PreparedEvent[],
    head: StreamHead,
  ): Promise<{ outcome: 'appended' | 'moved'; head: StreamHead } | { outcome: 'seen' }> {
    const recordedAt = new Date().toISOString();
    let prevHash = head.hash;
    const j = JSON.stringify;
    // The JSON append_events reads, written directly: each payload goes as its canonical text,
    // stored as it is (what the hash covers) and parsed once by the function for the jsonb column.
    const rows = events.map((e, i) => {
      const envelope = {
        eventId: e.eventId,
        streamId,
        streamVersion: head.version + i + 1,
        type: e.type,
        schemaVersion: e.schemaVersion,
        recordedAt,
      };
      const hash = eventHashFromText(prevHash, envelope, e);
      const row =
        `{"event_id":${j(e.eventId)},"type":${j(e.type)},"schema_version":${j(e.schemaVersion)},` +
        `"data_jcs":${j(e.dataJcs)},"metadata_jcs":${j(e.metadataJcs)},` +
        `"prev_hash":${j(prevHash)},"hash":${j(hash)}}`;
      prevHash = hash;
      return row;
    });
    const call = {
      streamId,
      streamType,
      expectedVersion: head.version,
      expectedHead: head.hash,
      recordedAt,
      eventsJson: `[${rows.join(',')}]`,
      eventCount: rows.length,
    };
    // On the pool, concurrent appends share a call and a commit; in a transaction, alone.
    const row = db === this.db ? await this.committer.append(call) : await callAppendEvents(db, call);
    if (row?.outcome === 'seen') return { outcome: 'seen' };
    if (
      (row?.outcome === 'appended' || row?.outcome === 'moved') &&
      row.version !== null &&
      row.head_hash !== null
    ) {
      return { outcome: row.outcome, head: { version: Number(row.version), hash: row.head_hash } };
    }
    throw new Error(`append_events answered ${JSON.stringify(row)}`);
  }

  /** `append_events` found these ids recorded: the original result, or the conflict. */
  private async seen(streamId: string, events: PreparedEvent[]): Promise<AppendResult> {
    const original = await this.originalResult(this.db, streamId, events);
    if (original) return original;
    throw new Error(`append_events reported recorded event ids that cannot be found (${streamId})`);
  }

  /**
   * The result of an earlier append of exactly these event ids to this stream, if there was one.
   * Ids reused elsewhere (another stream, or only some of them) are an IdempotencyConflict.
   */
  private async originalResult(
    db: Kysely<Database>,
    streamId: string,
    events: PreparedEvent[],
  ): Promise<AppendResult | undefined> {
    const ids = events.map((e) => e.eventId);
    const found = await db
      .selectFrom('event')
      .select(['event_id', 'stream_id', 'stream_version', 'type', 'schema_version', 'data'])
      .where('event_id', 'in', ids)
      .execute();
    if (found.length === 0) return undefined;
    // Same ids in the same order, same stream, consecutive versions, same content (metadata such
    // as the request id may differ between a request and its retry).
    const byId = new Map(found.map((r) => [r.event_id, r]));
    const sameAppend =
      found.length === ids.length &&
      events.every((e, i) => {
        const r = byId.get(e.eventId);
        const first = byId.get(events[0]?.eventId ?? '');
        return (
          r !== undefined &&
          first !== undefined &&
          r.stream_id === streamId &&
          r.stream_version === first.stream_version + i &&
          r.type === e.type &&
          r.schema_version === e.schemaVersion &&
          canonicalJson(r.data) === e.dataJcs
        );
      });
    if (!sameAppend) {
      throw new IdempotencyConflict(
        found.map((r) => r.event_id),
        'these event ids were already recorded in a different append',
      );
    }
    return {
      streamVersion: Math.max(...found.map((r) => r.stream_version)),
      eventIds: ids,
      duplicate: true,
    };
  }

  /** Reads a stream in version order, optionally between two versions (inclusive). */
  async readStream(streamId: string, options: ReadStreamOptions = {}): Promise<StoredEvent[]> {
    let query = this.db.selectFrom('event').select(EVENT_COLUMNS).where('stream_id', '=', streamId);
    if (options.fromVersion !== undefined) query = query.where('stream_version', '>=', options.fromVersion);
    if (options.toVersion !== undefined) query = query.where('stream_version', '<=', options.toVersion);
    const rows = await query.orderBy('stream_version').execute();
    const last = rows.at(-1);
    // A whole stream read ends at its head (as of the read): the next append's best guess.
    if (last && options.fromVersion === undefined && options.toVersion === undefined) {
      this.heads.remember(streamId, { version: last.stream_version, hash: last.hash });
    }
    return rows.map(toStoredEvent);
  }

  /**
   * A stream's events with their ledger positions (null until sequenced), optionally only those
   * at or before a ledger position or a time: the stream as it was then.
   */
  async readStreamAsOf(
    streamId: string,
    asOf?: { position: number } | { time: Date },
  ): Promise<(StoredEvent & { position: number | null })[]> {
    let query = this.db
      .selectFrom('event as e')
      .leftJoin('ledger as l', 'l.event_row_id', 'e.id')
      .select(EVENT_COLUMNS_E)
      .select('l.position')
      .where('e.stream_id', '=', streamId);
    if (asOf && 'position' in asOf) query = query.where('l.position', '<=', asOf.position);
    if (asOf && 'time' in asOf) query = query.where('e.recorded_at', '<=', asOf.time);
    const rows = await query.orderBy('e.stream_version').execute();
    return rows.map((row) => ({ ...toStoredEvent(row), position: row.position }));
  }

  /**
   * A stream's events from version `fromVersion` on (all of them from 0), in version order, with
   * their ledger positions and only what a fold needs. The event at `fromVersion` itself comes
   * without its data: a caller holding a fold of the stream up to it checks, in the same
   * statement and snapshot as the events after it, that the stream still holds that event (its
   * hash) and folds only what follows.
   *
   * @example
   * await store.readStreamFrom('rollout-42', 0); // every event, with data
   * await store.readStreamFrom('rollout-42', 12); // event 12 (data null), then 13, 14…
   */
  async readStreamFrom(streamId: string, fromVersion: number): Promise<FoldEvent[]> {
    const rows = await this.reader.read(streamId, fromVersion);
    return rows.map((r) => ({
      streamVersion: r.stream_version,
      type: r.type,
      data: r.data,
      dataBytes: Number(r.data_bytes),
      recordedAt: r.recorded_at_iso,
      hash: r.hash,
      position: r.position,
    }));
  }

  /**
   * Several streams at once, as the ledger stood at `position`: one query instead of one per
   * stream, for reports over many rollouts. Each stream's events in stream order; streams with
   * no event at or below the position are absent.
   */
  async readStreamsAsOf(
    streamIds: readonly string[],
    position: number,
  ): Promise<Map<string, (StoredEvent & { position: number | null })[]>> {
    const streams = new Map<string, (StoredEvent & { position: number | null })[]>();
    if (streamIds.length === 0) return streams;
    const rows = await this.db
      .selectFrom('event as e')
      .innerJoin('ledger as l', 'l.event_row_id', 'e.id')
      .select(EVENT_COLUMNS_E)
      .select('l.position')
      .where('e.stream_id', 'in', [...streamIds])
      .where('l.position', '<=', position)
      .orderBy('e.stream_id')
      .orderBy('e.stream_version')
      .execute();
    for (const row of rows) {
      const list = streams.get(row.stream_id) ?? [];
      list.push({ ...toStoredEvent(row), position: row.position });
      streams.set(row.stream_id, list);
    }
    return streams;
  }

  /** Where an event id was recorded, if it was. */
  async findEvent(eventId: string): Promise<StoredEvent | undefined> {
    const row = await this.db
      .selectFrom('event')
      .select(EVENT_COLUMNS)
      .where('event_id', '=', eventId)
      .executeTakeFirst();
    return row ? toStoredEvent(row) : undefined;
  }

  /** The stream's current version, or undefined when it has no events. */
  async streamVersion(streamId: string): Promise<number | undefined> {
    const row = await this.db
      .selectFrom('stream')
      .select('version')
      .where('stream_id', '=', streamId)
      .executeTakeFirst();
    return row && row.version > 0 ? row.version : undefined;
  }

  private prepare(streamId: string, events: NewEvent[], expected: ExpectedVersion): PreparedEvent[] {
    if (!STREAM_ID.test(streamId)) {
      throw new InvalidInput('streamId', 'must be 1-200 characters of letters, digits, ".", "_", ":" or "-"');
    }
    if (typeof expected === 'number' && (!Number.isSafeInteger(expected) || expected < 0)) {
      throw new InvalidInput('expectedVersion', 'must be any, no_stream, exists or a whole number ≥ 0');
    }
    if (events.length === 0) throw new InvalidInput('events', 'must hold at least one event');
    if (events.length > MAX_EVENTS_PER_APPEND) {
      throw new InvalidInput('events', `must hold at most ${MAX_EVENTS_PER_APPEND} events`);
    }
    const seen = new Set<string>();
    return events.map((e, i) => {
      const at = `events[${i}]`;
      const eventId = (e.eventId ?? uuidv7()).toLowerCase();
      if (!UUID.test(eventId)) throw new InvalidInput(`${at}.eventId`, 'must be a UUID');
      if (seen.has(eventId)) throw new InvalidInput(`${at}.eventId`, 'is repeated in this append');
      seen.add(eventId);
      if (!EVENT_TYPE.test(e.type))
        throw new InvalidInput(`${at}.type`, 'must be an identifier of up to 100 characters');
      const schemaVersion = e.schemaVersion ?? 1;
      if (!Number.isInteger(schemaVersion) || schemaVersion < 1 || schemaVersion > 1000) {
        throw new InvalidInput(`${at}.schemaVersion`, 'must be a whole number from 1 to 1000');
      }
      assertStorableJson(e.data, `${at}.data`);
      const metadata = e.metadata ?? {};
      assertStorableJson(metadata, `${at}.metadata`);
      return {
        eventId,
        type: e.type,
        schemaVersion,
        dataJcs: canonicalJson(e.data),
        metadataJcs: canonicalJson(metadata),
      };
    });
  }
}

function versionMatches(expected: ExpectedVersion, actual: number): boolean {
  switch (expected) {
    case 'any':
      return true;
    case 'no_stream':
      return actual === 0;
    case 'exists':
      return actual > 0;
    default:
      return expected === actual;
  }
}

export function toStoredEvent(row: ReadEventRow): StoredEvent {
  return {
    eventId: row.event_id,
    streamId: row.stream_id,
    streamVersion: row.stream_version,
    type: row.type,
    schemaVersion: row.schema_version,
    data: row.data,
    metadata: row.metadata as { [key: string]: Json },
    recordedAt: row.recorded_at.toISOString(),
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}
