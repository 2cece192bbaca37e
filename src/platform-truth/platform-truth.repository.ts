import { Inject, Injectable } from '@nestjs/common';
import { type Kysely, sql } from 'kysely';
import type { DatabaseHandle } from '../database/database.js';
import { DATABASE } from '../database/database.module.js';
import type { Database } from '../database/schema.js';

/** SQL the readiness surfaces need beyond the other modules' repositories. */
@Injectable()
export class PlatformTruthRepository {
  private readonly db: Kysely<Database>;

  constructor(@Inject(DATABASE) handle: DatabaseHandle) {
    this.db = handle.db;
  }

  /** Answers when the database does. */
  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  /** Events committed but not yet given a ledger position, and when the oldest was recorded. */
  async pendingEvents(): Promise<{ count: number; oldestAt: Date | null }> {
    const s = await this.db
      .selectFrom('sequencer_state')
      .select(['tx_id', 'event_row_id'])
      .where('id', '=', 1)
      .executeTakeFirstOrThrow();
    const row = await this.db
      .selectFrom('event as e')
      .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.min('e.recorded_at').as('oldest')])
      .where(sql<boolean>`(e.tx_id, e.id) > (${s.tx_id}::xid8, ${s.event_row_id}::bigint)`)
      .executeTakeFirstOrThrow();
    return { count: Number(row.n), oldestAt: row.oldest ? new Date(row.oldest) : null };
  }

  /** When the ledger entry at a position was sequenced (undefined beyond the head). */
  async sequencedAt(position: number): Promise<Date | undefined> {
    const row = await this.db
      .selectFrom('ledger')
      .select('sequenced_at')
      .where('position', '=', position)
      .executeTakeFirst();
    return row?.sequenced_at;
  }
}
