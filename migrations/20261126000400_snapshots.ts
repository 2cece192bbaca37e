import { type Kysely, sql } from 'kysely';

// Shared-truth snapshots: the tick claims that make "one snapshot per target per tick" a
// database fact, and the read models of snapshots, drift and the ledger's verified versions.
export async function up(db: Kysely<any>): Promise<void> {
  // One row per (target, tick), inserted before any fetch: the primary key lets exactly one
  // replica win each tick. Operational bookkeeping, not the record: the events are.
  await db.schema
    .createTable('snapshot_tick')
    .addColumn('target', 'text', (c) => c.notNull())
    .addColumn('tick_at', 'timestamptz', (c) => c.notNull())
    .addColumn('trigger', 'text', (c) => c.notNull())
    .addColumn('claimed_by', 'text', (c) => c.notNull())
    .addColumn('claimed_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('completed_at', 'timestamptz')
    .addColumn('outcome', 'text')
    .addPrimaryKeyConstraint('snapshot_tick_pkey', ['target', 'tick_at'])
    .execute();
  await sql`create index snapshot_tick_open on snapshot_tick (claimed_at) where completed_at is null`.execute(
    db,
  );

  // Every snapshot (taken or failed), without the bodies (those stay in the event).
  await db.schema
    .createTable('snapshot_v1')
    .addColumn('snapshot_id', 'uuid', (c) => c.primaryKey())
    .addColumn('target', 'text', (c) => c.notNull())
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('tick_at', 'timestamptz', (c) => c.notNull())
    .addColumn('trigger', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('surfaces', 'jsonb', (c) => c.notNull())
    .addColumn('versions', 'jsonb')
    .addColumn('recorded_at', 'timestamptz', (c) => c.notNull())
    .addColumn('position', 'bigint', (c) => c.notNull())
    .execute();
  await sql`create index snapshot_v1_tick on snapshot_v1 (tick_at desc, snapshot_id desc)`.execute(db);
  await sql`create index snapshot_v1_target on snapshot_v1 (target, tick_at desc, snapshot_id desc)`.execute(
    db,
  );

  // Every drift, open until resolved.
  await db.schema
    .createTable('drift_v1')
    .addColumn('drift_id', 'uuid', (c) => c.primaryKey())
    .addColumn('target', 'text', (c) => c.notNull())
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('product', 'text')
    .addColumn('surface', 'text')
    .addColumn('basis', 'text', (c) => c.notNull())
    .addColumn('expected', 'text')
    .addColumn('observed', 'text')
    .addColumn('ledger_position', 'bigint')
    .addColumn('snapshot_id', 'uuid', (c) => c.notNull())
    .addColumn('tick_at', 'timestamptz', (c) => c.notNull())
    .addColumn('attribution', 'jsonb', (c) => c.notNull())
    .addColumn('detected_at', 'timestamptz', (c) => c.notNull())
    .addColumn('detected_position', 'bigint', (c) => c.notNull())
    .addColumn('resolved_at', 'timestamptz')
    .addColumn('resolved_position', 'bigint')
    .addColumn('resolution', 'text')
    .addColumn('resolved_snapshot_id', 'uuid')
    .execute();
  await sql`create index drift_v1_target on drift_v1 (target, detected_at desc, drift_id desc)`.execute(db);
  await sql`create index drift_v1_detected on drift_v1 (detected_at desc, drift_id desc)`.execute(db);
  await sql`create index drift_v1_open on drift_v1 (target) where resolved_at is null`.execute(db);

  // Per environment and product, the version last verified by a completed rollout.
  await db.schema
    .createTable('version_truth_v1')
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('product', 'text', (c) => c.notNull())
    .addColumn('version', 'text', (c) => c.notNull())
    .addColumn('rollout_id', 'uuid', (c) => c.notNull())
    .addColumn('verified_at', 'timestamptz', (c) => c.notNull())
    .addColumn('position', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('version_truth_v1_pkey', ['environment', 'product'])
    .execute();

  await db
    .insertInto('projection_checkpoint')
    .values([
      { name: 'snapshots', version: 1, position: 0, active: true },
      { name: 'drift', version: 1, position: 0, active: true },
      { name: 'version-truth', version: 1, position: 0, active: true },
    ])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db
    .deleteFrom('projection_checkpoint')
    .where('name', 'in', ['snapshots', 'drift', 'version-truth'])
    .execute();
  await db.schema.dropTable('version_truth_v1').execute();
  await db.schema.dropTable('drift_v1').execute();
  await db.schema.dropTable('snapshot_v1').execute();
  await db.schema.dropTable('snapshot_tick').execute();
}
