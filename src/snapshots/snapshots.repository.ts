import { Inject, Injectable } from '@nestjs/common';
import { type Kysely, sql, type Transaction } from 'kysely';
import type { DatabaseHandle } from '../database/database.js';
import { DATABASE } from '../database/database.module.js';
import type { Database, Json } from '../database/schema.js';
import type { ProjectedEntry } from '../ledger/ledger.types.js';
import { ProjectionsRepository } from '../projections/projections.repository.js';
import { ROLLOUT_SUMMARY, summaryTable } from '../rollouts/rollouts.repository.js';
import {
  SNAPSHOT_STREAM_PREFIX,
  type SnapshotData,
  type SnapshotEvent,
  type SurfaceReading,
  snapshotStreamId,
} from './snapshot.events.js';

/** Dynamic version tables share one row type; Kysely sees them as version 1's. */
type SnapshotTable = 'snapshot_v1';
export const SNAPSHOTS_PROJECTION = 'snapshots';
export const snapshotTable = (version: number) => `snapshot_v${version}` as SnapshotTable;

/** A snapshot as listed: every surface's status, latency and digest, without the bodies. */
export interface SnapshotSummary {
  id: string;
  target: string;
  environment: string;
  tickAt: string;
  trigger: string;
  status: 'taken' | 'failed';
  reason: string | null;
  surfaces: Json;
  versions: Json | null;
  recordedAt: string;
  position: number;
}

export interface SnapshotListFilter {
  target?: string;
  from?: Date;
  to?: Date;
  limit: number;
  cursor?: { tickAt: string; id: string };
}

/** A claim nobody completed: the replica that won the tick stopped before recording it. */
export interface AbandonedTick {
  target: string;
  tickAt: Date;
  trigger: string;
  claimedBy: string;
  claimedAt: Date;
}

/** A rollout overlapping a time window, as the read model knows it. */
export interface RolloutInWindow {
  rolloutId: string;
  title: string | null;
}

/** Surfaces without their bodies: what the list shows. */
function withoutBodies(surfaces: Record<string, SurfaceReading>): Json {
  return Object.fromEntries(
    Object.entries(surfaces).map(([name, reading]) => {
      if (reading.status === 'ok') {
        const { body: _, ...rest } = reading;
        return [name, rest as unknown as Json];
      }
      return [name, reading as unknown as Json];
    }),
  );
}

/** SQL of snapshots: tick claims, the previous snapshot of a target, and the snapshot read model. */
@Injectable()
export class SnapshotsRepository {
  private readonly db: Kysely<Database>;

  constructor(
    @Inject(DATABASE) handle: DatabaseHandle,
    private readonly projections: ProjectionsRepository,
  ) {
    this.db = handle.db;
  }

  /**
   * Claims one tick of one target for this replica. The primary key (target, tick_at) lets
   * exactly one claim succeed, however many replicas ask at once.
   */
  async claimTick(target: string, tickAt: Date, trigger: string, claimedBy: string): Promise<boolean> {
    const row = await this.db
      .insertInto('snapshot_tick')
      .values({ target, tick_at: tickAt, trigger, claimed_by: claimedBy })
      .onConflict((oc) => oc.columns(['target', 'tick_at']).doNothing())
      .returning('target')
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Marks a claimed tick as recorded (or abandoned), so nobody reaps it. */
  async completeTick(target: string, tickAt: Date, outcome: string): Promise<void> {
    await this.db
      .updateTable('snapshot_tick')
      .set({ completed_at: new Date(), outcome })
      .where('target', '=', target)
      .where('tick_at', '=', tickAt)
      .where('completed_at', 'is', null)
      .execute();
  }

  /**
   * Forgets completed claims of ticks before `before`: a claim only matters around its tick (the
   * events are the record), so the table stays small.
   */
  async pruneTicks(before: Date): Promise<number> {
    const result = await this.db
      .deleteFrom('snapshot_tick')
      .where('completed_at', 'is not', null)
      .where('tick_at', '<', before)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /** Claims older than `before` that were never completed, oldest first. */
  async abandonedTicks(before: Date, limit: number): Promise<AbandonedTick[]> {
    const rows = await this.db
      .selectFrom('snapshot_tick')
      .selectAll()
      .where('completed_at', 'is', null)
      .where('claimed_at', '<', before)
      .orderBy('claimed_at')
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      target: r.target,
      tickAt: r.tick_at,
      trigger: r.trigger,
      claimedBy: r.claimed_by,
      claimedAt: r.claimed_at,
    }));
  }

  /**
   * The latest snapshot of a target before a tick, straight from its stream (never behind the
   * ledger): with `withVersions`, the latest one whose version-truth was read.
   */
  async previousSnapshot(
    target: string,
    before: string,
    withVersions = false,
  ): Promise<SnapshotData | undefined> {
    let q = this.db
      .selectFrom('event')
      .select('data')
      .where('stream_id', '=', snapshotStreamId(target))
      .where('type', 'in', ['SnapshotTaken', 'SnapshotFailed'])
      .where(sql<boolean>`(data->>'tickAt')::timestamptz < ${before}::timestamptz`);
    if (withVersions) q = q.where(sql<boolean>`jsonb_typeof(data->'versions') = 'object'`);
    const row = await q.orderBy('stream_version', 'desc').limit(1).executeTakeFirst();
    return row ? (row.data as unknown as SnapshotData) : undefined;
  }

  /** The whole recorded event of a snapshot (with the bodies), and its ledger position once sequenced. */
  async snapshotEvent(
    snapshotId: string,
  ): Promise<
    { type: string; data: SnapshotData & { reason?: string }; position: number | null } | undefined
  > {
    const row = await this.db
      .selectFrom('event as e')
      .leftJoin('ledger as l', 'l.event_row_id', 'e.id')
      .select(['e.type', 'e.data', 'l.position'])
      .where('e.event_id', '=', snapshotId)
      .where('e.type', 'in', ['SnapshotTaken', 'SnapshotFailed'])
      .where('e.stream_id', 'like', `${SNAPSHOT_STREAM_PREFIX}%`)
      .executeTakeFirst();
    return row
      ? {
          type: row.type,
          data: row.data as unknown as SnapshotData & { reason?: string },
          position: row.position,
        }
      : undefined;
  }

  /**
   * Rollouts of an environment whose window (start to completion or abort, or still open)
   * overlaps `(from, to]`, from the rollout list read model.
   */
  async rolloutsOverlapping(
    environment: string,
    from: string | null,
    to: string,
  ): Promise<RolloutInWindow[]> {
    const version = await this.projections.activeVersion(ROLLOUT_SUMMARY);
    let q = this.db
      .selectFrom(summaryTable(version))
      .select(['rollout_id', 'title'])
      .where('environment', '=', environment)
      .where('started_at', 'is not', null)
      .where('started_at', '<=', new Date(to));
    if (from !== null) {
      q = q.where(
        sql<boolean>`(coalesce(completed_at, aborted_at) is null or coalesce(completed_at, aborted_at) > ${from}::timestamptz)`,
      );
    }
    const rows = await q.orderBy('started_at', 'desc').limit(50).execute();
    return rows.map((r) => ({ rolloutId: r.rollout_id, title: r.title }));
  }

  // ----------------------------------------------------------------------------------------
  // the read model

  /** Applies ledger entries of snapshot streams to a version of the snapshot table. */
  async applyToSnapshots(
    trx: Transaction<Database>,
    table: string,
    entries: readonly ProjectedEntry[],
  ): Promise<void> {
    const t = table as SnapshotTable;
    for (const entry of entries) {
      if (!entry.streamId.startsWith(SNAPSHOT_STREAM_PREFIX)) continue;
      const event = { type: entry.type, data: entry.data } as unknown as SnapshotEvent;
      if (event.type !== 'SnapshotTaken' && event.type !== 'SnapshotFailed') continue;
      const d = event.data;
      await trx
        .insertInto(t)
        .values({
          snapshot_id: entry.eventId,
          target: d.target,
          environment: d.environment,
          tick_at: d.tickAt,
          trigger: d.trigger,
          status: event.type === 'SnapshotTaken' ? 'taken' : 'failed',
          reason: event.type === 'SnapshotFailed' ? event.data.reason : null,
          surfaces: JSON.stringify(withoutBodies(d.surfaces)),
          versions: d.versions === null ? null : JSON.stringify(d.versions),
          recorded_at: entry.recordedAt,
          position: entry.position,
        })
        .onConflict((oc) => oc.column('snapshot_id').doNothing())
        .execute();
    }
  }

  /** Newest first by keyset (tick_at, snapshot_id). */
  async list(filter: SnapshotListFilter): Promise<SnapshotSummary[]> {
    const version = await this.projections.activeVersion(SNAPSHOTS_PROJECTION);
    let q = this.db.selectFrom(snapshotTable(version)).selectAll();
    if (filter.target) q = q.where('target', '=', filter.target);
    if (filter.from) q = q.where('tick_at', '>=', filter.from);
    if (filter.to) q = q.where('tick_at', '<', filter.to);
    if (filter.cursor) {
      const { tickAt, id } = filter.cursor;
      q = q.where(sql<boolean>`(tick_at, snapshot_id) < (${tickAt}::timestamptz, ${id}::uuid)`);
    }
    const rows = await q
      .orderBy('tick_at', 'desc')
      .orderBy('snapshot_id', 'desc')
      .limit(filter.limit)
      .execute();
    return rows.map(toSummary);
  }

  async get(id: string): Promise<SnapshotSummary | undefined> {
    const version = await this.projections.activeVersion(SNAPSHOTS_PROJECTION);
    const row = await this.db
      .selectFrom(snapshotTable(version))
      .selectAll()
      .where('snapshot_id', '=', id)
      .executeTakeFirst();
    return row ? toSummary(row) : undefined;
  }

  /** Per target, its latest snapshot and its latest taken one (for freshness). */
  async latestPerTarget(): Promise<
    { target: string; latestAt: string; latestStatus: string; lastTakenAt: string | null }[]
  > {
    const version = await this.projections.activeVersion(SNAPSHOTS_PROJECTION);
    const table = sql.table(snapshotTable(version));
    const { rows } = await sql<{
      target: string;
      latest_at: Date;
      latest_status: string;
      last_taken_at: Date | null;
    }>`
      select distinct on (target) target, tick_at as latest_at, status as latest_status,
        (select max(t.tick_at) from ${table} t where t.target = s.target and t.status = 'taken') as last_taken_at
      from ${table} s
      order by target, tick_at desc`.execute(this.db);
    return rows.map((r) => ({
      target: r.target,
      latestAt: new Date(r.latest_at).toISOString(),
      latestStatus: r.latest_status,
      lastTakenAt: r.last_taken_at ? new Date(r.last_taken_at).toISOString() : null,
    }));
  }
}

function toSummary(r: {
  snapshot_id: string;
  target: string;
  environment: string;
  tick_at: Date;
  trigger: string;
  status: string;
  reason: string | null;
  surfaces: Json;
  versions: Json | null;
  recorded_at: Date;
  position: number;
}): SnapshotSummary {
  return {
    id: r.snapshot_id,
    target: r.target,
    environment: r.environment,
    tickAt: r.tick_at.toISOString(),
    trigger: r.trigger,
    status: r.status === 'taken' ? 'taken' : 'failed',
    reason: r.reason,
    surfaces: r.surfaces,
    versions: r.versions,
    recordedAt: r.recorded_at.toISOString(),
    position: Number(r.position),
  };
}
