import { type CompiledQuery, type Kysely, sql } from 'kysely';
import { isoText } from '../database/iso-text.js';
import { sqlState } from '../database/pg-errors.js';
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
  /** `performance.now()` when it was asked for. */
  queuedAt: number;
  resolve: (rows: StreamFromRow[]) => void;
  reject: (err: unknown) => void;
}

/** Reads in one statement at most. */
const MAX_BATCH = 64;
/** Statements out at once, at most: the second and later only for a full one, or a late one. */
export const DEFAULT_READS_IN_FLIGHT = 4;
/** A read that has waited this long goes out beside the statements out, full or not. */
export const MAX_WAIT_MS = 10;

/**
 * Group read: concurrent reads of streams from a version on share a round trip, as group commit
 * shares one between appends. A lone read goes out at once, so an idle service adds no latency;
 * while a statement is out, further reads queue, and go together as one statement when it
 * returns. Beside a statement out, another goes only when a full one (`MAX_BATCH` reads) has
 * queued, or when the oldest queued read has waited `MAX_WAIT_MS` (a slow or stuck statement out
 * holds the others back that long at most), up to `maxInFlight` at once.
 *
 * Sending a statement wakes a Postgres backend, and that wake-up was a quarter of what
 * `GET /api/v1/rollouts/:id` cost the service's thread. At 16 connections the route answered
 * 3,192–3,257 requests a second reading alone, 5,010–5,383 with up to four statements out
 * whenever reads came, and 7,949–8,800 with one out (docs/benchmarks.md, session 11).
 *
 * Each read still sees every event committed before it was asked for: its statement is sent
 * after it was queued, and a statement's snapshot is taken when it starts. Reads of the same
 * stream in one statement are answered separately. Should a statement of several be refused for
 * its data (SQLSTATE class 22: a stream id Postgres cannot hold), each of its reads is tried again
 * alone, so that one bad read fails alone. Any other failure of the statement (a lost connection,
 * a timeout, no resources) fails every read it carried: trying each again alone would only add
 * load where it hurts.
 */
export class GroupReader {
  private readonly queue: Waiting[] = [];
  private inFlight = 0;
  /** Runs `pump` again when the oldest queued read has waited `MAX_WAIT_MS`. */
  private timer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Statements sent (those of reads tried again alone too), reads asked for, statements of
   * several refused for their data, and the most statements out at once (for tests).
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
      this.queue.push({ streamId, fromVersion, queuedAt: performance.now(), resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const waited = performance.now() - (this.queue[0] as Waiting).queuedAt;
      if (this.inFlight > 0 && this.queue.length < MAX_BATCH && waited < MAX_WAIT_MS) {
        this.timer ??= setTimeout(
          () => {
            this.timer = undefined;
            this.pump();
          },
          Math.ceil(MAX_WAIT_MS - waited),
        );
        return;
      }
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
    if (this.queue.length === 0 && this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (batch.length === 1) {
      await this.alone(batch[0] as Waiting);
      return;
    }
    let byRead: StreamFromRow[][];
    try {
      byRead = await this.many(batch);
    } catch (err) {
      if (!sqlState(err)?.startsWith('22')) {
        for (const w of batch) w.reject(err);
        return;
      }
      this.stats.batchFallbacks++;
      this.stats.statements += batch.length;
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
   * the list, numbered by its place in it. Planned at 1 M events as a nested loop over the list
   * with an index scan of `event (stream_id, stream_version)` for each, as a lone read is.
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
