import { Injectable } from '@nestjs/common';
import type { Transaction } from 'kysely';
import type { Database } from '../database/schema.js';
import type { ProjectedEntry } from '../ledger/ledger.types.js';
import type { Projector } from '../projections/projection.types.js';
import { DRIFT_PROJECTION, DriftRepository, driftTable } from './drift.repository.js';
import { SNAPSHOTS_PROJECTION, SnapshotsRepository, snapshotTable } from './snapshots.repository.js';

/** Feeds the snapshot list (`snapshot_v<N>`) from the ledger. */
@Injectable()
export class SnapshotsProjector implements Projector {
  readonly name = SNAPSHOTS_PROJECTION;
  readonly baseTable = snapshotTable(1);

  constructor(private readonly repo: SnapshotsRepository) {}

  tableFor(version: number): string {
    return snapshotTable(version);
  }

  apply(trx: Transaction<Database>, table: string, entries: readonly ProjectedEntry[]): Promise<void> {
    return this.repo.applyToSnapshots(trx, table, entries);
  }
}

/** Feeds the drift read model (`drift_v<N>`) from the ledger. */
@Injectable()
export class DriftProjector implements Projector {
  readonly name = DRIFT_PROJECTION;
  readonly baseTable = driftTable(1);

  constructor(private readonly repo: DriftRepository) {}

  tableFor(version: number): string {
    return driftTable(version);
  }

  apply(trx: Transaction<Database>, table: string, entries: readonly ProjectedEntry[]): Promise<void> {
    return this.repo.applyToDrift(trx, table, entries);
  }
}
