import { Inject, Injectable } from '@nestjs/common';
import { type Kysely, sql, type Transaction } from 'kysely';
import type { DatabaseHandle } from '../database/database.js';
import { DATABASE } from '../database/database.module.js';
import { isoText } from '../database/iso-text.js';
import type { Database, Json } from '../database/schema.js';
import { StatementCache } from '../database/statement-cache.js';
import type { ProjectedEntry } from '../ledger/ledger.types.js';
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

/** The values of a page's statement (`RolloutListFilter`, flattened; undefined: no such filter). */
interface PageParams {
  [key: string]: unknown;
  status: string | undefined;
  environment: string | undefined;
  product: string | undefined;
  from: Date | undefined;
  to: Date | undefined;
  /** The `q` search as an ILIKE pattern. */
  pattern: string | undefined;
  cursorCreatedAt: string | undefined;
  cursorId: string | undefined;
  limit: number;
}

/** A page of the list: its items as the JSON text of a `RolloutSummary[]`, and where it ended. */
export interface RolloutPage {
  itemsJson: string;
  count: number;
  /** The last item's keyset (its createdAt as in the JSON, and its id); none on an empty page. */
  last: { createdAt: string; id: string } | undefined;
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

/** A timestamp column of the summary row being listed (`t`) as ISO text (see `isoText`). */
const isoColumn = <T extends string | null = string>(
  column: 'created_at' | 'started_at' | 'completed_at' | 'aborted_at' | 'updated_at',
) => isoText<T>(`t.${column}`);

/** A column of the summary row being listed (`t`), from a subquery that cannot name `t` itself. */
const col = <T>(column: string) => sql.ref<T>(`t.${column}`);

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
    entries: readonly ProjectedEntry[],
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
    if (created.size > 0) {
      // One JSON parameter for the batch, as the update below: a bind parameter per column per
      // row (18 × up to 250), each built by Kysely and encoded by node-postgres, was a visible
      // part of the projections' profile (docs/benchmarks.md, session 7).
      const rows = JSON.stringify([...created.values()]);
      await sql`
        insert into ${sql.table(table)} (rollout_id, title, scope, environment, products, status,
          plan_revision, steps_planned, steps_completed, rollbacks, created_by, created_at,
          started_at, completed_at, aborted_at, updated_at, version, last_position)
        select * from jsonb_to_recordset(${rows}::jsonb) as v(
          rollout_id uuid, title text, scope text, environment text, products text[], status text,
          plan_revision integer, steps_planned integer, steps_completed integer, rollbacks integer,
          created_by text, created_at timestamptz, started_at timestamptz, completed_at timestamptz,
          aborted_at timestamptz, updated_at timestamptz, version bigint, last_position bigint)
        on conflict (rollout_id) do nothing`.execute(trx);
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
   *
   * The page comes as the JSON text the API answers with, built by Postgres (`row_to_json` of
   * each row, in `RolloutSummary`'s key order): parsing 50 rows of 18 columns into values and
   * serialising them again was a third of the list route's CPU. The text is what
   * `JSON.stringify` gives for the same values (compact, same escapes, same key order).
   *
   * @example
   * const page = await repo.listPage({ product: 'portal-docs', limit: 50 });
   * // → { itemsJson: '[{"id":"…","title":…},…]', count: 50, last: { createdAt: '…', id: '…' } }
   */
  async listPage(filter: RolloutListFilter): Promise<RolloutPage> {
    const params: PageParams = {
      status: filter.status || undefined,
      environment: filter.environment || undefined,
      product: filter.product || undefined,
      from: filter.from,
      to: filter.to,
      pattern: filter.q ? `%${escapeLike(filter.q)}%` : undefined,
      cursorCreatedAt: filter.cursor?.createdAt,
      cursorId: filter.cursor?.id,
      limit: filter.limit,
    };
    const [row] = await this.projections.readServed(ROLLOUT_SUMMARY, async (version) => {
      return (await this.db.executeQuery(this.pageStatement.compile(String(version), params))).rows;
    });
    const count = Number(row?.count ?? 0);
    return {
      itemsJson: `[${row?.items ?? ''}]`,
      count,
      last:
        row?.last_created_at != null && row.last_id != null
          ? { createdAt: row.last_created_at, id: row.last_id }
          : undefined,
    };
  }

  /** The same page as values (for the console and other modules): `listPage`'s JSON, parsed. */
  async list(filter: RolloutListFilter): Promise<RolloutSummary[]> {
    return JSON.parse((await this.listPage(filter)).itemsJson) as RolloutSummary[];
  }

  /** `listPage`'s statement, compiled once per version and set of filters. */
  private readonly pageStatement = new StatementCache((p: PageParams, version: string) =>
    this.db
      .selectFrom(this.pageQuery(Number(version), p).as('p'))
      .select((eb) => [
        eb.fn.countAll<number>().as('count'),
        // Ordered explicitly: an aggregate's input order is not the subquery's.
        sql<string | null>`string_agg(p.item, ',' order by p.created_at desc, p.rollout_id desc)`.as('items'),
        sql<string | null>`(array_agg(p.created_at_iso order by p.created_at, p.rollout_id))[1]`.as(
          'last_created_at',
        ),
        sql<string | null>`(array_agg(p.rollout_id order by p.created_at, p.rollout_id))[1]`.as('last_id'),
      ])
      .select(this.projections.servedVersionColumn(ROLLOUT_SUMMARY)),
  );

  /**
   * The page's rows (filtered, ordered, limited) of one version, each with its JSON text
   * (`item`) and the keys it is ordered by. Its SQL depends only on which filters are given.
   */
  private pageQuery(version: number, p: PageParams) {
    let q = this.db
      .selectFrom(`${summaryTable(version)} as t` as `${SummaryTable} as t`)
      // One row's JSON object: the lateral subquery's columns are its keys, in this order.
      .innerJoinLateral(
        this.db
          .selectNoFrom([
            col<string>('rollout_id').as('id'),
            col<string | null>('title').as('title'),
            col<string | null>('scope').as('scope'),
            col<string | null>('environment').as('environment'),
            col<string[]>('products').as('products'),
            col<string>('status').as('status'),
            col<number>('plan_revision').as('planRevision'),
            col<number>('steps_planned').as('stepsPlanned'),
            col<number>('steps_completed').as('stepsCompleted'),
            col<number>('rollbacks').as('rollbacks'),
            col<string | null>('created_by').as('createdBy'),
            isoColumn('created_at').as('createdAt'),
            isoColumn<string | null>('started_at').as('startedAt'),
            isoColumn<string | null>('completed_at').as('completedAt'),
            isoColumn<string | null>('aborted_at').as('abortedAt'),
            isoColumn('updated_at').as('updatedAt'),
            col<number>('version').as('version'),
            col<number>('last_position').as('lastPosition'),
          ])
          .as('o'),
        (join) => join.onTrue(),
      )
      .select(['t.created_at', 't.rollout_id', 'o.createdAt as created_at_iso'])
      .select(sql<string>`row_to_json(o)::text`.as('item'));
    if (p.status !== undefined) q = q.where('t.status', '=', p.status);
    if (p.environment !== undefined) q = q.where('t.environment', '=', p.environment);
    if (p.product !== undefined) q = q.where(sql<boolean>`t.products @> array[${p.product}]::text[]`);
    if (p.from !== undefined) q = q.where('t.created_at', '>=', p.from);
    if (p.to !== undefined) q = q.where('t.created_at', '<', p.to);
    if (p.pattern !== undefined) {
      const pattern = p.pattern;
      q = q.where((eb) =>
        eb.or([
          eb('t.title', 'ilike', pattern),
          eb(sql<string>`array_to_string(t.products, ' ')`, 'ilike', pattern),
          eb('t.environment', 'ilike', pattern),
        ]),
      );
    }
    if (p.cursorCreatedAt !== undefined && p.cursorId !== undefined) {
      q = q.where(
        sql<boolean>`(t.created_at, t.rollout_id) < (${p.cursorCreatedAt}::timestamptz, ${p.cursorId}::uuid)`,
      );
    }
    return q.orderBy('t.created_at', 'desc').orderBy('t.rollout_id', 'desc').limit(p.limit);
  }
}
