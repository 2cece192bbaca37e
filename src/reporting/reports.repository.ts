import { Inject, Injectable } from '@nestjs/common';
import type { Kysely } from 'kysely';
import type { DatabaseHandle } from '../database/database.js';
import { DATABASE } from '../database/database.module.js';
import type { Database } from '../database/schema.js';
import { DRIFT_STREAM_PREFIX } from '../snapshots/snapshot.events.js';
import type { LedgerDriftEvent } from './drift-window.js';

/** SQL of the reporting module. */
@Injectable()
export class ReportsRepository {
  private readonly db: Kysely<Database>;

  constructor(@Inject(DATABASE) handle: DatabaseHandle) {
    this.db = handle.db;
  }

  /**
   * Rollouts planned in [from, to) whose plan event has a ledger position at or below `asOf`,
   * in ledger order, a page at a time (keyset on position).
   */
  async plannedRollouts(opts: { from?: Date; to?: Date; asOf: number; after: number; limit: number }) {
    let q = this.db
      .selectFrom('event as e')
      .innerJoin('ledger as l', 'l.event_row_id', 'e.id')
      .select(['e.stream_id', 'l.position'])
      .where('e.type', '=', 'RolloutPlanned')
      .where('l.position', '<=', opts.asOf)
      .where('l.position', '>', opts.after);
    if (opts.from) q = q.where('e.recorded_at', '>=', opts.from);
    if (opts.to) q = q.where('e.recorded_at', '<', opts.to);
    return q.orderBy('l.position').limit(opts.limit).execute();
  }

  /**
   * The drift events of every target, in ledger order, up to `asOf`: what a report on a rollout
   * needs to show the drift seen during its window exactly as the ledger stood then.
   */
  async driftEvents(asOf: number): Promise<LedgerDriftEvent[]> {
    const rows = await this.db
      .selectFrom('event as e')
      .innerJoin('ledger as l', 'l.event_row_id', 'e.id')
      .select(['e.type', 'e.data', 'l.position'])
      .where('e.stream_id', 'like', `${DRIFT_STREAM_PREFIX}%`)
      .where('e.type', 'in', ['DriftDetected', 'DriftResolved'])
      .where('l.position', '<=', asOf)
      .orderBy('l.position')
      .execute();
    return rows as unknown as LedgerDriftEvent[];
  }
}
