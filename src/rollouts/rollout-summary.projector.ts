import { Injectable } from '@nestjs/common';
import type { Transaction } from 'kysely';
import type { Database } from '../database/schema.js';
import type { ProjectedEntry } from '../ledger/ledger.types.js';
import type { Projector } from '../projections/projection.types.js';
import { ROLLOUT_SUMMARY, RolloutsRepository, summaryTable } from './rollouts.repository.js';

/** Feeds the rollout list (`rollout_summary_v<N>`) from the ledger. */
@Injectable()
export class RolloutSummaryProjector implements Projector {
  readonly name = ROLLOUT_SUMMARY;
  readonly baseTable = summaryTable(1);

  constructor(private readonly repo: RolloutsRepository) {}

  tableFor(version: number): string {
    return summaryTable(version);
  }

  apply(trx: Transaction<Database>, table: string, entries: readonly ProjectedEntry[]): Promise<void> {
    return this.repo.applyToSummary(trx, table, entries);
  }
}
