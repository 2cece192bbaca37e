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

/**
 * A timestamptz column as the ISO 8601 text `Date.prototype.toISOString` gives (UTC,
 * milliseconds, truncated as node-postgres truncates them), rendered by Postgres: parsing each
 * value into a Date and formatting it again was a sixth of the list route's CPU.
 */
function isoText<T extends string | null = string>(
  column: 'created_at' | 'started_at' | 'completed_at' | 'aborted_at' | 'updated_at',
) {
  return sql<T>`to_char(${sql.ref(column)} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
}

/** A summary row as inserted: a rollout planned in the batch, with its later events applied. */
interface NewSummaryRow {
  rollout_id: string;
  title: string | null;
  scope: string | null;
  environment: string | null;
  products: string[];
  status: string;
  plan_revision: number;
  steps_planned: number;
  steps_completed: number;
  rollbacks: number;
  created_by: string | null;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  aborted_at: string | null;
  updated_at: string;
  version: number;
  last_position: number;
}

/** What a batch's events do to a rollout planned before it: values to set, counts to add. */
interface SummaryChange {
  rollout_id: string;
  /** A plan revision was seen: the plan columns below replace the row's. */
  plan_set: boolean;
  title: string | null;
  scope: string | null;
  environment: string | null;
  products: string[] | null;
  steps_planned: number | null;
  revisions: number;
  /** steps_completed was reset (a plan revision): it becomes `steps`, not the row's + `steps`. */
  steps_reset: boolean;
  steps: number;
  rollbacks: number;
  status: string | null;
  started_at: string | null;
  completed_at: string | null;
  aborted_at: string | null;
  updated_at: string;
  version: number;
  last_position: number;
}

/** What one event does to its rollout's summary row. */
interface Effect {
  /** A revised plan: its columns replace the row's, the revision counts up, steps restart at 0. */
  plan?: ReturnType<typeof planColumns>;
  step?: true;
  rollback?: true;
  started_at?: string;
  completed_at?: string;
  aborted_at?: string;
  status?: string;
}

function effectOf(event: RolloutEvent, at: string): Effect {
  const status = STATUS_BY_EVENT[event.type];
  const effect: Effect = status ? { status } : {};
  switch (event.type) {
    case 'PlanRevised':
      effect.plan = planColumns(event.data.plan);
      break;
    case 'RolloutStarted':
      effect.started_at = at;
      break;
    case 'StepCompleted':
      effect.step = true;
      break;
    case 'RollbackStarted':
      effect.rollback = true;
      break;
    case 'RolloutCompleted':
      effect.completed_at = at;
      break;
    case 'RolloutAborted':
      effect.aborted_at = at;
      break;
    default:
      break;
  }
  return effect;
}

/** The values an effect sets, the same on a row and on a change. */
function setFromEffect(
  target: {
    started_at: string | null;
    completed_at: string | null;
    aborted_at: string | null;
    status: string | null;
  },
  fx: Effect,
): void {
  target.started_at = fx.started_at ?? target.started_at;
  target.completed_at = fx.completed_at ?? target.completed_at;
  target.aborted_at = fx.aborted_at ?? target.aborted_at;
  target.status = fx.status ?? target.status;
}

/** The effect on a row planned in the same batch: applied to its values directly. */
function applyToRow(row: NewSummaryRow, fx: Effect): void {
  if (fx.plan) {
    Object.assign(row, fx.plan);
    row.plan_revision += 1;
    row.steps_completed = 0;
  }
  if (fx.step) row.steps_completed += 1;
  if (fx.rollback) row.rollbacks += 1;
  setFromEffect(row, fx);
}

/** The effect on a row planned before the batch: accumulated as values to set, counts to add. */
function applyToChange(change: SummaryChange, fx: Effect): void {
  if (fx.plan) {
    Object.assign(change, fx.plan);
    change.plan_set = true;
    change.revisions += 1;
    change.steps_reset = true;
    change.steps = 0;
  }
  if (fx.step) change.steps += 1;
  if (fx.rollback) change.rollbacks += 1;
  setFromEffect(change, fx);
}

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

  /**
   * Applies ledger entries of rollout streams to a version of the summary table, in two
   * statements whatever their number: the entries are first folded in memory, per rollout, into
   * the rows of rollouts planned in this batch (one INSERT) and the changes to rollouts planned
   * before it (one UPDATE). One statement per entry was a round trip, and a socket write, per
   * event: the largest share of the service's CPU after the appends themselves.
   */
  async applyToSummary(
    trx: Transaction<Database>,
    table: string,
    entries: readonly LedgerEntry[],
  ): Promise<void> {
    const created = new Map<string, NewSummaryRow>();
    const changed = new Map<string, SummaryChange>();
    for (const entry of entries) {
      if (!entry.streamId.startsWith('rollout-')) continue;
      const event = { type: entry.type, data: entry.data } as RolloutEvent;
      if (event.type === 'RolloutPlanned') {
        const id = event.data.rolloutId;
        // As ON CONFLICT DO NOTHING would: a rollout is planned once.
        if (created.has(id)) continue;
        const actor = (entry.metadata.actor as { name?: Json } | undefined)?.name;
        created.set(id, {
          rollout_id: id,
          ...planColumns(event.data.plan),
          status: 'planned',
          plan_revision: 1,
          steps_completed: 0,
          rollbacks: 0,
          created_by: typeof actor === 'string' ? actor : null,
          created_at: entry.recordedAt,
          started_at: null,
          completed_at: null,
          aborted_at: null,
          updated_at: entry.recordedAt,
          version: entry.streamVersion,
          last_position: entry.position,
        });
        continue;
      }
      const id = entry.streamId.slice('rollout-'.length);
      const fx = effectOf(event, entry.recordedAt);
      const row = created.get(id);
      if (row) {
        row.updated_at = entry.recordedAt;
        row.version = entry.streamVersion;
        row.last_position = entry.position;
        applyToRow(row, fx);
        continue;
      }
      let change = changed.get(id);
      if (!change) {
        change = {
          rollout_id: id,
          plan_set: false,
          title: null,
          scope: null,
          environment: null,
          products: null,
          steps_planned: null,
          revisions: 0,
          steps_reset: false,
          steps: 0,
          rollbacks: 0,
          status: null,
          started_at: null,
          completed_at: null,
          aborted_at: null,
          updated_at: entry.recordedAt,
          version: entry.streamVersion,
          last_position: entry.position,
        };
        changed.set(id, change);
      }
      change.updated_at = entry.recordedAt;
      change.version = entry.streamVersion;
      change.last_position = entry.position;
      applyToChange(change, fx);
    }
    const t = table as SummaryTable;
    if (created.size > 0) {
      await trx
        .insertInto(t)
        .values([...created.values()])
        .onConflict((oc) => oc.column('rollout_id').doNothing())
        .execute();
    }
    if (changed.size > 0) {
      const changes = JSON.stringify([...changed.values()]);
      await sql`
        update ${sql.table(table)} as t set
          title = case when v.plan_set then v.title else t.title end,
          scope = case when v.plan_set then v.scope else t.scope end,
          environment = case when v.plan_set then v.environment else t.environment end,
          products = case when v.plan_set then v.products else t.products end,
          steps_planned = case when v.plan_set then v.steps_planned else t.steps_planned end,
          plan_revision = t.plan_revision + v.revisions,
          steps_completed = case when v.steps_reset then v.steps else t.steps_completed + v.steps end,
          rollbacks = t.rollbacks + v.rollbacks,
          status = coalesce(v.status, t.status),
          started_at = coalesce(v.started_at, t.started_at),
          completed_at = coalesce(v.completed_at, t.completed_at),
          aborted_at = coalesce(v.aborted_at, t.aborted_at),
          updated_at = v.updated_at,
          version = v.version,
          last_position = v.last_position
        from jsonb_to_recordset(${changes}::jsonb) as v(
          rollout_id uuid, plan_set boolean, title text, scope text, environment text,
          products text[], steps_planned integer, revisions integer, steps_reset boolean,
          steps integer, rollbacks integer, status text, started_at timestamptz,
          completed_at timestamptz, aborted_at timestamptz, updated_at timestamptz,
          version bigint, last_position bigint)
        where t.rollout_id = v.rollout_id`.execute(trx);
    }
  }

  /**
   * Newest first, by keyset (created_at, rollout_id): stable under concurrent inserts. One
   * statement: the page of the version this process last saw served, with the served version
   * read in the same snapshot to check it (`ProjectionsRepository.readServed`).
   */
  async list(filter: RolloutListFilter): Promise<RolloutSummary[]> {
    const rows = await this.projections.readServed(ROLLOUT_SUMMARY, (version) => {
      let q = this.db
        .selectFrom(summaryTable(version))
        .select([
          'rollout_id',
          'title',
          'scope',
          'environment',
          'products',
          'status',
          'plan_revision',
          'steps_planned',
          'steps_completed',
          'rollbacks',
          'created_by',
          'version',
          'last_position',
        ])
        // Under names of their own: an output column named created_at would be what ORDER BY
        // created_at sorts by (the text, so a sort of every matching row instead of the index).
        // One call each: in one array, Kysely types every alias as the union of all of them.
        .select(isoText('created_at').as('created_at_iso'))
        .select(isoText<string | null>('started_at').as('started_at_iso'))
        .select(isoText<string | null>('completed_at').as('completed_at_iso'))
        .select(isoText<string | null>('aborted_at').as('aborted_at_iso'))
        .select(isoText('updated_at').as('updated_at_iso'))
        .select(this.projections.servedVersionColumn(ROLLOUT_SUMMARY));
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
      return q.orderBy('created_at', 'desc').orderBy('rollout_id', 'desc').limit(filter.limit).execute();
    });
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
      createdAt: r.created_at_iso,
      startedAt: r.started_at_iso,
      completedAt: r.completed_at_iso,
      abortedAt: r.aborted_at_iso,
      updatedAt: r.updated_at_iso,
      version: r.version,
      lastPosition: r.last_position,
    }));
  }
}
