import { type CompiledQuery, type Kysely, sql } from 'kysely';
import { isoText } from '../database/iso-text.js';
import { isConnectionFailure } from '../database/pg-errors.js';
import type { Database, Json } from '../database/schema.js';

/** One event of a stream read from a version on, as `EventStore.readStreamFrom` reads it. */
export interface StreamFromRow {
  stream_version: number;
  type: string;
  hash: string;
  position: number | null;
  /** Null for the event at the version read from (the caller has it folded already). */
  data: Json | null;
  data_bytes: number | string;
  recorded_at_iso: string;
}

interface Waiting {
  streamId: string;
  fromVersion: number;
  resolve: (rows: StreamFromRow[]) => void;
  reject: (err: unknown) => void;
}

/** Reads in one statement at most. */
const MAX_BATCH = 64;
/** Statements out at once, at most: the second and later only for a full one. */
export const DEFAULT_READS_IN_FLIGHT = 4;

/**
 * Group read: concurrent reads of streams from a version on share a round trip, as group commit
 * shares one between appends. A lone read goes out at once, so an idle service adds no latency;
 * while a statement is out, further reads queue, and go together as one statement when it
 * returns. Beside a statement out, another goes only when a full one (`MAX_BATCH` reads) has
 * queued, up to `maxInFlight` at once, so a burst still overlaps.
 *
 * Sending a statement wakes a Postgres backend, and that wake-up, not the statement, was most of
 * what `GET /api/v1/rollouts/:id` cost the service's thread. At 16 connections, with four
 * statements out at any time instead of one, the route answered 5,100–5,600 requests a second
 * against 8,600–9,200 (docs/benchmarks.md, session 11). The price is that a read queued behind
 * a slow one waits for it; a read is of one stream, from the version this process has folded.
 *
 * Each read still sees every event committed before it was asked for: its statement is sent
 * after it was queued, and a statement's snapshot is taken when it starts. Reads of the same
 * stream in one statement are answered separately. Should a statement of several fail, each of
 * its reads is tried again alone, so that one bad read never fails the others; a lost
 * connection fails them all, as it would have anyway.
 */
export class GroupReader {
  private readonly queue: Waiting[] = [];
  private inFlight = 0;
  /**
   * Statements sent, reads they carried, statements of several that failed, and the most that
   * were out at once (for tests).
   */
  readonly stats = { statements: 0, reads: 0, batchFallbacks: 0, peakInFlight: 0 };

  constructor(
    private readonly db: Kysely<Database>,
    /** The statement of one read: what a lone read sends. */
    private readonly single: (streamId: string, fromVersion: number) => CompiledQuery<StreamFromRow>,
    private readonly maxInFlight = DEFAULT_READS_IN_FLIGHT,
  ) {
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
      throw new RangeError(`reads in flight must be a whole number ≥ 1, not ${maxInFlight}`);
    }
  }

  /** The stream's events from `fromVersion` on, in version order (none for an unknown stream). */
  read(streamId: string, fromVersion: number): Promise<StreamFromRow[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ streamId, fromVersion, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      if (this.inFlight > 0 && this.queue.length < MAX_BATCH) return;
      const batch = this.queue.splice(0, MAX_BATCH);
      this.inFlight++;
      this.stats.peakInFlight = Math.max(this.stats.peakInFlight, this.inFlight);
      void this.send(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async send(batch: Waiting[]): Promise<void> {
    this.stats.statements++;
    this.stats.reads += batch.length;
    if (batch.length === 1) {
      await this.alone(batch[0] as Waiting);
      return;
    }
    let byRead: StreamFromRow[][];
    try {
      byRead = await this.many(batch);
    } catch (err) {
      if (isConnectionFailure(err)) {
        for (const w of batch) w.reject(err);
        return;
      }
      // Something in one read that Postgres refuses (a stream id it cannot hold): each alone,
      // so that it fails alone.
      this.stats.batchFallbacks++;
      await Promise.all(batch.map((w) => this.alone(w)));
      return;
    }
    batch.forEach((w, i) => {
      w.resolve(byRead[i] ?? []);
    });
  }

  private async alone(w: Waiting): Promise<void> {
    try {
      const { rows } = await this.db.executeQuery(this.single(w.streamId, w.fromVersion));
      w.resolve(rows);
    } catch (err) {
      w.reject(err);
    }
  }

  /**
   * The reads as one statement: the same columns as a lone read's, for each (stream, version) of
   * the list, numbered by its place in it. An index scan of `event (stream_id, stream_version)`
   * for each, as a lone read does.
   */
  private async many(batch: readonly Waiting[]): Promise<StreamFromRow[][]> {
    const streamIds = batch.map((w) => w.streamId);
    const fromVersions = batch.map((w) => w.fromVersion);
    const { rows } = await sql<StreamFromRow & { n: number | string }>`
      select q.n, e.stream_version, e.type, e.hash, l.position,
             case when e.stream_version > q.from_version then e.data end as data,
             case when e.stream_version > q.from_version
                  then coalesce(octet_length(e.data_jcs), octet_length(e.data::text)) else 0 end as data_bytes,
             ${isoText('e.recorded_at')} as recorded_at_iso
      from unnest(${streamIds}::text[], ${fromVersions}::bigint[]) with ordinality
             as q(stream_id, from_version, n)
      join event e on e.stream_id = q.stream_id and e.stream_version >= q.from_version
      left join ledger l on l.event_row_id = e.id
      order by q.n, e.stream_version`.execute(this.db);
    const byRead: StreamFromRow[][] = batch.map(() => []);
    for (const { n, ...row } of rows) byRead[Number(n) - 1]?.push(row);
    return byRead;
  }
}
