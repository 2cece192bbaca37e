import { Injectable } from '@nestjs/common';
import type { Transaction } from 'kysely';
import type { Database } from '../database/schema.js';
import type { ProjectedEntry } from '../ledger/ledger.types.js';
import type { Projector } from '../projections/projection.types.js';
import {
  VERSION_TRUTH_PROJECTION,
  VersionTruthRepository,
  versionTruthTable,
} from './version-truth.repository.js';

/** Feeds `version_truth_v<N>` (per environment and product, the last verified version) from the ledger. */
@Injectable()
export class VersionTruthProjector implements Projector {
  readonly name = VERSION_TRUTH_PROJECTION;
  readonly baseTable = versionTruthTable(1);

  constructor(private readonly repo: VersionTruthRepository) {}

  tableFor(version: number): string {
    return versionTruthTable(version);
  }

  apply(trx: Transaction<Database>, table: string, entries: readonly ProjectedEntry[]): Promise<void> {
    return this.repo.applyToTruth(trx, table, entries);
  }
}
