import { Inject, Injectable } from '@nestjs/common';
import type { Kysely, Transaction } from 'kysely';
import type { DatabaseHandle } from '../database/database.js';
import { DATABASE } from '../database/database.module.js';
import type { Database } from '../database/schema.js';
import { EVENT_COLUMNS, toStoredEvent } from '../event-store/event-store.repository.js';
import type { ProjectedEntry } from '../ledger/ledger.types.js';
import { ProjectionsRepository } from '../projections/projections.repository.js';
import { foldRollout } from '../rollouts/rollout.state.js';
import { toRecorded } from '../rollouts/rollouts.service.js';
import { verifiedVersions } from './verified-versions.js';

type VersionTruthTableName = 'version_truth_v1';
export const VERSION_TRUTH_PROJECTION = 'version-truth';
export const versionTruthTable = (version: number) => `version_truth_v${version}` as VersionTruthTableName;

/** A product's version in an environment, as the last completed rollout that moved it verified it. */
export interface VerifiedProduct {
  environment: string;
  product: string;
  version: string;
  rolloutId: string;
  verifiedAt: string;
  /** Ledger position of the RolloutCompleted that established it. */
  position: number;
}

/** SQL of the ledger's version truth: the read model fed by completed rollouts. */
@Injectable()
export class VersionTruthRepository {
  private readonly db: Kysely<Database>;

  constructor(
    @Inject(DATABASE) handle: DatabaseHandle,
    private readonly projections: ProjectionsRepository,
  ) {
    this.db = handle.db;
  }

  /**
   * For each RolloutCompleted in the entries, folds that rollout's stream up to it (inside the
   * projection's transaction) and records the versions it verified. A later completion of the
   * same product and environment replaces an earlier one.
   */
  async applyToTruth(
    trx: Transaction<Database>,
    table: string,
    entries: readonly ProjectedEntry[],
  ): Promise<void> {
    const t = table as VersionTruthTableName;
    for (const entry of entries) {
      if (entry.type !== 'RolloutCompleted' || !entry.streamId.startsWith('rollout-')) continue;
      const rows = await trx
        .selectFrom('event')
        .select(EVENT_COLUMNS)
        .where('stream_id', '=', entry.streamId)
        .where('stream_version', '<=', entry.streamVersion)
        .orderBy('stream_version')
        .execute();
      const rolloutId = entry.streamId.slice('rollout-'.length);
      const state = foldRollout(
        rolloutId,
        rows.map((r) => toRecorded(toStoredEvent(r))),
      );
      const environment = state.plan.environment;
      if (!environment) continue;
      for (const { product, version } of verifiedVersions(state)) {
        await trx
          .insertInto(t)
          .values({
            environment,
            product,
            version,
            rollout_id: rolloutId,
            verified_at: entry.recordedAt,
            position: entry.position,
          })
          .onConflict((oc) =>
            oc.columns(['environment', 'product']).doUpdateSet({
              version,
              rollout_id: rolloutId,
              verified_at: entry.recordedAt,
              position: entry.position,
            }),
          )
          .execute();
      }
    }
  }

  /** Every verified product, optionally of one environment, by environment then product. */
  async list(environment?: string): Promise<VerifiedProduct[]> {
    const version = await this.projections.activeVersion(VERSION_TRUTH_PROJECTION);
    let q = this.db.selectFrom(versionTruthTable(version)).selectAll();
    if (environment) q = q.where('environment', '=', environment);
    const rows = await q.orderBy('environment').orderBy('product').limit(10_000).execute();
    return rows.map((r) => ({
      environment: r.environment,
      product: r.product,
      version: r.version,
      rolloutId: r.rollout_id,
      verifiedAt: r.verified_at.toISOString(),
      position: Number(r.position),
    }));
  }
}
