import { type Kysely, sql } from 'kysely';

// Checkpointed projections: each (name, version) keeps the ledger position it has applied, in
// the same transaction as its rows. One version per name is active (served); a rebuild fills
// the next version beside it, then swaps.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('projection_checkpoint')
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('position', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('active', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('projection_checkpoint_pkey', ['name', 'version'])
    .execute();
  await sql`create unique index projection_checkpoint_one_active on projection_checkpoint (name) where active`.execute(
    db,
  );

  // The rollout list: one row per rollout, newest first by keyset (created_at, rollout_id).
  await db.schema
    .createTable('rollout_summary_v1')
    .addColumn('rollout_id', 'uuid', (c) => c.primaryKey())
    .addColumn('title', 'text')
    .addColumn('scope', 'text')
    .addColumn('environment', 'text')
    .addColumn('products', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('plan_revision', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('steps_planned', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('steps_completed', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('rollbacks', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_by', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('started_at', 'timestamptz')
    .addColumn('completed_at', 'timestamptz')
    .addColumn('aborted_at', 'timestamptz')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .addColumn('version', 'bigint', (c) => c.notNull())
    .addColumn('last_position', 'bigint', (c) => c.notNull())
    .execute();
  await sql`create index rollout_summary_v1_created on rollout_summary_v1 (created_at desc, rollout_id desc)`.execute(
    db,
  );
  await sql`create index rollout_summary_v1_status on rollout_summary_v1 (status, created_at desc, rollout_id desc)`.execute(
    db,
  );
  await sql`create index rollout_summary_v1_env on rollout_summary_v1 (environment, created_at desc, rollout_id desc)`.execute(
    db,
  );
  await sql`create index rollout_summary_v1_products on rollout_summary_v1 using gin (products)`.execute(db);

  await db
    .insertInto('projection_checkpoint')
    .values({ name: 'rollouts', version: 1, position: 0, active: true })
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('rollout_summary_v1').execute();
  await db.schema.dropTable('projection_checkpoint').execute();
}
