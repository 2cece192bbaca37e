import { type Kysely, sql } from 'kysely';
import { DEFAULT_CALLS_IN_FLIGHT } from '../config/config.js';
import { isConnectionFailure } from '../database/pg-errors.js';
import type { Database } from '../database/schema.js';

/** One `append_events` call: a stream, the head its events were hashed against, the events. */
export interface AppendCall {
  streamId: string;
  streamType: string;
  expectedVersion: number;
  expectedHead: string;
  recordedAt: string;
  /**
   * The events as the JSON array text `append_events` takes. Text, not values: the caller writes
   * each event's canonical data in place, so nothing walks the payloads again to send them.
   */
  eventsJson: string;
  /** How many events `eventsJson` holds. */
  eventCount: number;
}

export interface AppendCallResult {
  outcome: string;
  version: number | null;
  head_hash: string | null;
}

/** One plain `append_events` call on `db` (a pool, or the transaction of a locked append). */
export async function callAppendEvents(db: Kysely<Database>, c: AppendCall): Promise<AppendCallResult> {
  const { rows } = await sql<AppendCallResult>`
    select outcome, version, head_hash
    from append_events(${c.streamId}, ${c.streamType}, ${c.expectedVersion}, ${c.expectedHead},
                       ${c.recordedAt}, ${c.eventsJson}::jsonb)`.execute(db);
  const row = rows[0];
  if (!row) throw new Error('append_events answered nothing');
  return row;
}

interface Waiting {
  call: AppendCall;
  resolve: (result: AppendCallResult) => void;
  reject: (err: unknown) => void;
  /** `performance.now()` when it queued. */
  queuedAt: number;
}

/**
 * Told of each call (the service's metrics): where an append's time goes, queued in this process
 * or in its call. A call's time is as this process sees it: a connection from the pool, the round
 * trip, the statement and its commit, and the wait for this process's event loop to read the
 * answer. A failed batch's appends, each tried again alone, are neither counted nor timed again.
 */
export interface CommitObserver {
  /**
   * A call went out with these appends; each had queued this many seconds (behind the calls in
   * flight, or behind an earlier append to its stream).
   */
  sent(queuedSeconds: readonly number[]): void;
  /** Its answer (or its failure) came back this many seconds after it went out. */
  answered(seconds: number): void;
}

/** Appends in one call at most. */
const MAX_BATCH = 64;
/**
 * Events in one call at most (an append larger than this goes alone). A call is one transaction,
 * and while it is open the sequencer cannot give a position to anything committed after it
 * began: a cap on its size is a cap on that wait.
 */
const MAX_BATCH_EVENTS = 250;

/**
 * Group commit. A lone append goes out at once, as a plain `append_events`, so an idle service adds
 * no latency. While a call is out, further appends queue, and go together as one
 * `append_events_batch` when it returns (one append per stream: a second one for the same stream
 * waits for the next call): one round trip and one commit for all of them.
 *
 * Beside a call in flight, another goes out only when a full one has queued (`MAX_BATCH` appends
 * or `MAX_BATCH_EVENTS` events), which waiting could not make bigger, and only up to `maxInFlight`
 * (`GROUP_COMMIT_IN_FLIGHT`, default 4) at once. Sending each queued append as soon as a slot was
 * free made every event cost more on the benchmark machine (2 cores shared by Postgres, the
 * service and the load): smaller calls, more backends on the same cores, more round trips
 * (docs/benchmarks.md, session 6). Large appends still overlap, so Postgres's cores all work.
 *
 * Each append keeps its own outcome (appended, moved, seen). Should the batch fail as a whole
 * (an event id reused in another stream meanwhile, a deadlock with an older replica), each of its
 * appends is tried again alone, so one bad append never fails the others; a lost connection fails
 * them all, as it would have anyway.
 */
export class GroupCommitter {
  private readonly queue: Waiting[] = [];
  /** Events of the queued appends. */
  private queuedEvents = 0;
  private inFlight = 0;
  /** Calls sent, appends they carried, and the most calls that were out at once (for tests and metrics). */
  readonly stats = { calls: 0, appends: 0, batchFallbacks: 0, peakInFlight: 0 };

  constructor(
    private readonly db: Kysely<Database>,
    private readonly maxInFlight = DEFAULT_CALLS_IN_FLIGHT,
    private readonly observer?: CommitObserver,
  ) {
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
      throw new RangeError(`calls in flight must be a whole number ≥ 1, not ${maxInFlight}`);
    }
  }

  append(call: AppendCall): Promise<AppendCallResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ call, resolve, reject, queuedAt: performance.now() });
      this.queuedEvents += call.eventCount;
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const full = this.queue.length >= MAX_BATCH || this.queuedEvents >= MAX_BATCH_EVENTS;
      if (this.inFlight > 0 && !full) return;
      const batch = this.take();
      this.inFlight++;
      this.stats.peakInFlight = Math.max(this.stats.peakInFlight, this.inFlight);
      void this.send(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  /** The oldest queued appends: at most one per stream, and at most `MAX_BATCH_EVENTS` events. */
  private take(): Waiting[] {
    const batch: Waiting[] = [];
    const streams = new Set<string>();
    let events = 0;
    for (let i = 0; i < this.queue.length && batch.length < MAX_BATCH; ) {
      const w = this.queue[i] as Waiting;
      const tooMany = batch.length > 0 && events + w.call.eventCount > MAX_BATCH_EVENTS;
      if (streams.has(w.call.streamId) || tooMany) {
        i++;
        continue;
      }
      streams.add(w.call.streamId);
      events += w.call.eventCount;
      this.queuedEvents -= w.call.eventCount;
      batch.push(w);
      this.queue.splice(i, 1);
    }
    return batch;
  }

  private async send(batch: Waiting[]): Promise<void> {
    this.stats.calls++;
    this.stats.appends += batch.length;
    const sentAt = performance.now();
    this.tell((o) => o.sent(batch.map((w) => (sentAt - w.queuedAt) / 1000)));
    // Timed to the database's answer, before any append it carried is settled: their callers'
    // work runs after. A failed batch's appends, each tried again alone, are not timed.
    const answered = () => this.tell((o) => o.answered((performance.now() - sentAt) / 1000));
    if (batch.length === 1) {
      const only = batch[0] as Waiting;
      await this.single(only.call).finally(answered).then(only.resolve, only.reject);
      return;
    }
    let results: AppendCallResult[];
    try {
      results = await this.many(batch.map((w) => w.call)).finally(answered);
    } catch (err) {
      if (isConnectionFailure(err)) {
        for (const w of batch) w.reject(err);
        return;
      }
      this.stats.batchFallbacks++;
      await Promise.all(batch.map((w) => this.single(w.call).then(w.resolve, w.reject)));
      return;
    }
    batch.forEach((w, i) => {
      const r = results[i];
      if (r) w.resolve(r);
      else w.reject(new Error(`append_events_batch gave no outcome for append ${i + 1}`));
    });
  }

  /** Tells the observer, if any. Metrics never fail an append: an observer that throws is ignored. */
  private tell(notify: (observer: CommitObserver) => void): void {
    if (!this.observer) return;
    try {
      notify(this.observer);
    } catch {
      // The appends go on; a broken metric is not their failure.
    }
  }

  private single(c: AppendCall): Promise<AppendCallResult> {
    return callAppendEvents(this.db, c);
  }

  private async many(calls: AppendCall[]): Promise<AppendCallResult[]> {
    const j = JSON.stringify;
    const payload = calls.map(
      (c) =>
        `{"stream_id":${j(c.streamId)},"stream_type":${j(c.streamType)},` +
        `"expected_version":${j(c.expectedVersion)},"expected_head":${j(c.expectedHead)},` +
        `"recorded_at":${j(c.recordedAt)},"events":${c.eventsJson}}`,
    );
    const { rows } = await sql<AppendCallResult & { n: number }>`
      select n, outcome, version, head_hash
      from append_events_batch(${`[${payload.join(',')}]`}::jsonb)`.execute(this.db);
    const byIndex: AppendCallResult[] = [];
    for (const row of rows) byIndex[Number(row.n) - 1] = row;
    return byIndex;
  }
}
