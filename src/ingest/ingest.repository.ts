import { Inject, Injectable } from '@nestjs/common';
import { type Kysely, sql } from 'kysely';
import type { DatabaseHandle } from '../database/database.js';
import { DATABASE } from '../database/database.module.js';
import type { Database } from '../database/schema.js';
import { EVENT_COLUMNS, EVENT_COLUMNS_E, toStoredEvent } from '../event-store/event-store.repository.js';
import type { StoredEvent } from '../event-store/event-store.types.js';
import { ProjectionsRepository } from '../projections/projections.repository.js';
import { ROLLOUT_SUMMARY, summaryTable } from '../rollouts/rollouts.repository.js';

/** The stream every valid CloudEvent that matches no rollout is recorded on. */
export const UNATTRIBUTED_STREAM = 'unattributed';
/** At most this many open rollouts are weighed when an event names none. */
const MAX_CANDIDATES = 50;

/** SQL of the ingest module. */
@Injectable()
export class IngestRepository {
  private readonly db: Kysely<Database>;

  constructor(
    @Inject(DATABASE) handle: DatabaseHandle,
    private readonly projections: ProjectionsRepository,
  ) {
    this.db = handle.db;
  }

  /**
   * Rollouts that may be in flight in one of these environments (and move one of these
   * products): from the rollout list, which may lag the ledger by a moment, so it only narrows
   * the search; the caller reads each candidate's stream for the truth.
   */
  async openRolloutIds(environments: readonly string[], products?: readonly string[]): Promise<string[]> {
    const version = await this.projections.activeVersion(ROLLOUT_SUMMARY);
    let q = this.db
      .selectFrom(summaryTable(version))
      .select('rollout_id')
      .where('environment', 'in', [...environments])
      .where('status', 'not in', ['completed', 'aborted']);
    if (products) {
      q = q.where(sql<boolean>`products && array[${sql.join([...products])}]::text[]`);
    }
    const rows = await q.orderBy('created_at', 'desc').limit(MAX_CANDIDATES).execute();
    return rows.map((r) => r.rollout_id);
  }

  /**
   * A page of the unattributed stream's CloudEvents (not its attachment events), oldest first,
   * after a stream version, with their ledger positions (null until sequenced).
   */
  async unattributedPage(
    type: string,
    after: number,
    limit: number,
  ): Promise<(StoredEvent & { position: number | null })[]> {
    const rows = await this.db
      .selectFrom('event as e')
      .leftJoin('ledger as l', 'l.event_row_id', 'e.id')
      .select(EVENT_COLUMNS_E)
      .select('l.position')
      .where('e.stream_id', '=', UNATTRIBUTED_STREAM)
      .where('e.type', '=', type)
      .where('e.stream_version', '>', after)
      .orderBy('e.stream_version')
      .limit(limit)
      .execute();
    return rows.map((row) => ({ ...toStoredEvent(row), position: row.position }));
  }

  /** The events with these ids (attachment records of a page), in no particular order. */
  async eventsById(eventIds: readonly string[]): Promise<StoredEvent[]> {
    if (eventIds.length === 0) return [];
    const rows = await this.db
      .selectFrom('event')
      .select(EVENT_COLUMNS)
      .where('event_id', 'in', [...eventIds])
      .execute();
    return rows.map(toStoredEvent);
  }
}
