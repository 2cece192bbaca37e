import { Inject, Injectable } from '@nestjs/common';
import { type Kysely, type Selectable, sql, type Transaction } from 'kysely';
import type { DatabaseHandle } from '../database/database.js';
import { DATABASE } from '../database/database.module.js';
import type { Database, DriftReadTable, Json } from '../database/schema.js';
import type { ProjectedEntry } from '../ledger/ledger.types.js';
import { ProjectionsRepository } from '../projections/projections.repository.js';
import { DRIFT_STREAM_PREFIX, type SnapshotEvent } from './snapshot.events.js';

type DriftTable = 'drift_v1';
export const DRIFT_PROJECTION = 'drift';
export const driftTable = (version: number) => `drift_v${version}` as DriftTable;

/** One drift as the read model holds it: when it opened and (if it did) resolved, with positions. */
export interface DriftRecord {
  id: string;
  target: string;
  environment: string;
  key: string;
  kind: string;
  product: string | null;
  surface: string | null;
  basis: string;
  expected: string | null;
  observed: string | null;
  /** The ledger position that established `expected` (basis `ledger`). */
  ledgerPosition: number | null;
  snapshotId: string;
  tickAt: string;
  attribution: Json;
  detectedAt: string;
  /** Ledger position of the DriftDetected event. */
  detectedPosition: number;
  resolvedAt: string | null;
  /** Ledger position of the DriftResolved event. */
  resolvedPosition: number | null;
  resolution: string | null;
  resolvedSnapshotId: string | null;
  open: boolean;
}

export interface DriftListFilter {
  target?: string;
  open?: boolean;
  from?: Date;
  to?: Date;
  limit: number;
  cursor?: { detectedAt: string; id: string };
}

/** One UTC day of drift, for charts. */
export interface DriftDay {
  day: string;
  detected: number;
  resolved: number;
  /** Drift open at the end of the day. */
  open: number;
}

/** SQL of drift: its read model, the queries, and drift seen during a time window. */
@Injectable()
export class DriftRepository {
  private readonly db: Kysely<Database>;

  constructor(
    @Inject(DATABASE) handle: DatabaseHandle,
    private readonly projections: ProjectionsRepository,
  ) {
    this.db = handle.db;
  }

  /** Applies ledger entries of drift streams to a version of the drift table. */
  async applyToDrift(
    trx: Transaction<Database>,
    table: string,
    entries: readonly ProjectedEntry[],
  ): Promise<void> {
    const t = table as DriftTable;
    for (const entry of entries) {
      if (!entry.streamId.startsWith(DRIFT_STREAM_PREFIX)) continue;
      const event = { type: entry.type, data: entry.data } as unknown as SnapshotEvent;
      if (event.type === 'DriftDetected') {
        const d = event.data;
        await trx
          .insertInto(t)
          .values({
            drift_id: d.driftId,
            target: d.target,
            environment: d.environment,
            key: d.key,
            kind: d.kind,
            product: d.product,
            surface: d.surface,
            basis: d.basis,
            expected: d.expected,
            observed: d.observed,
            ledger_position: d.ledgerPosition,
            snapshot_id: d.snapshotId,
            tick_at: d.tickAt,
            attribution: JSON.stringify(d.attribution),
            detected_at: entry.recordedAt,
            detected_position: entry.position,
          })
          .onConflict((oc) => oc.column('drift_id').doNothing())
          .execute();
      } else if (event.type === 'DriftResolved') {
        await trx
          .updateTable(t)
          .set({
            resolved_at: entry.recordedAt,
            resolved_position: entry.position,
            resolution: event.data.resolution,
            resolved_snapshot_id: event.data.snapshotId,
          })
          .where('drift_id', '=', event.data.driftId)
          .where('resolved_at', 'is', null)
          .execute();
      }
    }
  }

  private async table(): Promise<DriftTable> {
    return driftTable(await this.projections.activeVersion(DRIFT_PROJECTION));
  }

  /** Newest first by keyset (detected_at, drift_id); `from`/`to` bound the detection time. */
  async list(filter: DriftListFilter): Promise<DriftRecord[]> {
    let q = this.db.selectFrom(await this.table()).selectAll();
    if (filter.target) q = q.where('target', '=', filter.target);
    if (filter.open === true) q = q.where('resolved_at', 'is', null);
    if (filter.open === false) q = q.where('resolved_at', 'is not', null);
    if (filter.from) q = q.where('detected_at', '>=', filter.from);
    if (filter.to) q = q.where('detected_at', '<', filter.to);
    if (filter.cursor) {
      const { detectedAt, id } = filter.cursor;
      q = q.where(sql<boolean>`(detected_at, drift_id) < (${detectedAt}::timestamptz, ${id}::uuid)`);
    }
    const rows = await q
      .orderBy('detected_at', 'desc')
      .orderBy('drift_id', 'desc')
      .limit(filter.limit)
      .execute();
    return rows.map(toRecord);
  }

  /** Every open drift, by target then key. */
  async open(target?: string): Promise<DriftRecord[]> {
    let q = this.db
      .selectFrom(await this.table())
      .selectAll()
      .where('resolved_at', 'is', null);
    if (target) q = q.where('target', '=', target);
    const rows = await q.orderBy('target').orderBy('key').limit(10_000).execute();
    return rows.map(toRecord);
  }

  /**
   * Drift seen during a time window, for reports on a rollout: every drift open at any moment
   * of `[from, to]` (detected at or before `to`, and not resolved before `from`), optionally of
   * one environment, oldest first, each with the ledger positions of its detection and
   * resolution.
   *
   * @example
   * // drift during a rollout's window
   * await drift.during(new Date(rollout.startedAt), new Date(rollout.completedAt), 'production');
   * // → [{ key: 'version:gateway', attribution: { kind: 'out-of-band' }, detectedPosition: 88, … }]
   */
  async during(from: Date, to: Date, environment?: string): Promise<DriftRecord[]> {
    let q = this.db
      .selectFrom(await this.table())
      .selectAll()
      .where('detected_at', '<=', to)
      .where((eb) => eb.or([eb('resolved_at', 'is', null), eb('resolved_at', '>=', from)]));
    if (environment) q = q.where('environment', '=', environment);
    const rows = await q.orderBy('detected_position').limit(10_000).execute();
    return rows.map(toRecord);
  }

  /**
   * Per UTC day from the first drift (or `from`) to `to` (default today): drift detected,
   * resolved, and open at the end of the day. At most 366 days, the latest.
   */
  async timeline(target: string | undefined, from?: Date, to?: Date): Promise<DriftDay[]> {
    const table = sql.table(await this.table());
    const byTarget = target === undefined ? sql`true` : sql`target = ${target}`;
    const { rows } = await sql<{ day: string; detected: number; resolved: number; open: number }>`
      with bounds as (
        select coalesce(${from ?? null}::timestamptz, min(detected_at), now()) as first_at,
               coalesce(${to ?? null}::timestamptz, now()) as last_at
        from ${table} where ${byTarget}
      ),
      days as (
        select generate_series(
          greatest(date_trunc('day', first_at at time zone 'UTC'), date_trunc('day', last_at at time zone 'UTC') - interval '365 days'),
          date_trunc('day', last_at at time zone 'UTC'),
          interval '1 day') as day
        from bounds
      )
      select to_char(d.day, 'YYYY-MM-DD') as day,
        (select count(*) from ${table} where ${byTarget}
           and detected_at >= d.day at time zone 'UTC' and detected_at < (d.day + interval '1 day') at time zone 'UTC')::int as detected,
        (select count(*) from ${table} where ${byTarget}
           and resolved_at >= d.day at time zone 'UTC' and resolved_at < (d.day + interval '1 day') at time zone 'UTC')::int as resolved,
        (select count(*) from ${table} where ${byTarget}
           and detected_at < (d.day + interval '1 day') at time zone 'UTC'
           and (resolved_at is null or resolved_at >= (d.day + interval '1 day') at time zone 'UTC'))::int as open
      from days d
      order by d.day`.execute(this.db);
    return rows.map((r) => ({
      day: r.day,
      detected: Number(r.detected),
      resolved: Number(r.resolved),
      open: Number(r.open),
    }));
  }
}

/** A row of `drift_v<N>` as the API shows it. */
function toRecord(r: Selectable<DriftReadTable>): DriftRecord {
  return {
    id: r.drift_id,
    target: r.target,
    environment: r.environment,
    key: r.key,
    kind: r.kind,
    product: r.product,
    surface: r.surface,
    basis: r.basis,
    expected: r.expected,
    observed: r.observed,
    ledgerPosition: r.ledger_position === null ? null : Number(r.ledger_position),
    snapshotId: r.snapshot_id,
    tickAt: r.tick_at.toISOString(),
    attribution: r.attribution,
    detectedAt: r.detected_at.toISOString(),
    detectedPosition: Number(r.detected_position),
    resolvedAt: r.resolved_at?.toISOString() ?? null,
    resolvedPosition: r.resolved_position === null ? null : Number(r.resolved_position),
    resolution: r.resolution,
    resolvedSnapshotId: r.resolved_snapshot_id,
    open: r.resolved_at === null,
  };
}
