import { Inject, Injectable } from '@nestjs/common';
import { type Kysely, sql, type Transaction } from 'kysely';
import type { DatabaseHandle } from '../database/database.js';
import { DATABASE } from '../database/database.module.js';
import type { Database, Json } from '../database/schema.js';
import type { LedgerEntry } from '../ledger/ledger.types.js';
import { ProjectionsRepository } from '../projections/projections.repository.js';
import type { RolloutEvent } from './rollout.events.js';
import type { Plan } from './rollout.plan.js';

/** Dynamic version tables share one row type; Kysely sees them as version 1's. */
type SummaryTable = 'rollout_summary_v1';
export const ROLLOUT_SUMMARY = 'rollouts';
export const summaryTable = (version: number) => `rollout_summary_v${version}` as SummaryTable;

export interface RolloutListFilter {
  status?: string;
  product?: string;
  environment?: string;
  from?: Date;
  to?: Date;
  q?: string;
  limit: number;
  cursor?: { createdAt: string; id: string };
}

export interface RolloutSummary {
  id: string;
  title: string | null;
  scope: string | null;
  environment: string | null;
  products: string[];
  status: string;
  planRevision: number;
  stepsPlanned: number;
  stepsCompleted: number;
  rollbacks: number;
  createdBy: string | null;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  abortedAt: string | null;
  updatedAt: string;
  version: number;
  lastPosition: number;
}

const STATUS_BY_EVENT: Partial<Record<RolloutEvent['type'], string>> = {
  RolloutPlanned: 'planned',
  RolloutStarted: 'in_progress',
  RollbackStarted: 'rolling_back',
  RollbackCompleted: 'in_progress',
  RolloutCompleted: 'completed',
  RolloutAborted: 'aborted',
};

function planColumns(plan: Plan) {
  return {
    title: plan.title ?? null,
    scope: plan.scope ?? null,
    environment: plan.environment ?? null,
    products: [...new Set((plan.products ?? []).map((p) => p.product))].sort(),
    steps_planned: plan.sequence?.length ?? 0,
  };
}

const escapeLike = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

/** SQL of the rollouts module: the rollout list read model. */
@Injectable()
export class RolloutsRepository {
  private readonly db: Kysely<Database>;

  constructor(
    @Inject(DATABASE) handle: DatabaseHandle,
    private readonly projections: ProjectionsRepository,
  ) {
    this.db = handle.db;
  }

  /** Applies ledger entries of rollout streams to a version of the summary table. */
  async applyToSummary(
    trx: Transaction<Database>,
    table: string,
    entries: readonly LedgerEntry[],
  ): Promise<void> {
    const t = table as SummaryTable;
    for (const entry of entries) {
      if (!entry.streamId.startsWith('rollout-')) continue;
      const event = { type: entry.type, data: entry.data } as RolloutEvent;
      const common = {
        updated_at: entry.recordedAt,
        version: entry.streamVersion,
        last_position: entry.position,
      };
      const status = STATUS_BY_EVENT[event.type];
      const actor = (entry.metadata.actor as { name?: Json } | undefined)?.name;
      if (event.type === 'RolloutPlanned') {
        await trx
          .insertInto(t)
          .values({
            rollout_id: event.data.rolloutId,
            ...planColumns(event.data.plan),
            status: 'planned',
            created_by: typeof actor === 'string' ? actor : null,
            created_at: entry.recordedAt,
            ...common,
          })
          .onConflict((oc) => oc.column('rollout_id').doNothing())
          .execute();
        continue;
      }
      const id = entry.streamId.slice('rollout-'.length);
      let update = trx.updateTable(t).set(common).where('rollout_id', '=', id);
      switch (event.type) {
        case 'PlanRevised':
          update = update.set({
            ...planColumns(event.data.plan),
            plan_revision: sql`plan_revision + 1`,
            steps_completed: 0,
          });
          break;
        case 'RolloutStarted':
          update = update.set({ started_at: entry.recordedAt });
          break;
        case 'StepCompleted':
          update = update.set({ steps_completed: sql`steps_completed + 1` });
          break;
        case 'RollbackStarted':
          update = update.set({ rollbacks: sql`rollbacks + 1` });
          break;
        case 'RolloutCompleted':
          update = update.set({ completed_at: entry.recordedAt });
          break;
        case 'RolloutAborted':
          update = update.set({ aborted_at: entry.recordedAt });
          break;
        default:
          break;
      }
      if (status) update = update.set({ status });
      await update.execute();
    }
  }

  /** Newest first, by keyset (created_at, rollout_id): stable under concurrent inserts. */
  async list(filter: RolloutListFilter): Promise<RolloutSummary[]> {
    const version = await this.projections.activeVersion(ROLLOUT_SUMMARY);
    let q = this.db.selectFrom(summaryTable(version)).selectAll();
    if (filter.status) q = q.where('status', '=', filter.status);
    if (filter.environment) q = q.where('environment', '=', filter.environment);
    if (filter.product) q = q.where(sql<boolean>`products @> array[${filter.product}]::text[]`);
    if (filter.from) q = q.where('created_at', '>=', filter.from);
    if (filter.to) q = q.where('created_at', '<', filter.to);
    if (filter.q) {
      const pattern = `%${escapeLike(filter.q)}%`;
      q = q.where((eb) =>
        eb.or([
          eb('title', 'ilike', pattern),
          eb(sql<string>`array_to_string(products, ' ')`, 'ilike', pattern),
          eb('environment', 'ilike', pattern),
        ]),
      );
    }
    if (filter.cursor) {
      const { createdAt, id } = filter.cursor;
      q = q.where(sql<boolean>`(created_at, rollout_id) < (${createdAt}::timestamptz, ${id}::uuid)`);
    }
    const rows = await q
      .orderBy('created_at', 'desc')
      .orderBy('rollout_id', 'desc')
      .limit(filter.limit)
      .execute();
    return rows.map((r) => ({
      id: r.rollout_id,
      title: r.title,
      scope: r.scope,
      environment: r.environment,
      products: r.products,
      status: r.status,
      planRevision: r.plan_revision,
      stepsPlanned: r.steps_planned,
      stepsCompleted: r.steps_completed,
      rollbacks: r.rollbacks,
      createdBy: r.created_by,
      createdAt: r.created_at.toISOString(),
      startedAt: r.started_at?.toISOString() ?? null,
      completedAt: r.completed_at?.toISOString() ?? null,
      abortedAt: r.aborted_at?.toISOString() ?? null,
      updatedAt: r.updated_at.toISOString(),
      version: r.version,
      lastPosition: r.last_position,
    }));
  }
}
