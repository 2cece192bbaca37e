import { type Kysely, sql } from 'kysely';

// The log tables: streams (the compare-and-set row per stream), events (append-only, with a
// per-stream hash chain), the ledger (gapless global order and hash chain), checkpoints and the
// public keys that signed them. Postgres itself refuses UPDATE, DELETE and TRUNCATE on the log.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('stream')
    .addColumn('stream_id', 'text', (c) => c.primaryKey())
    .addColumn('stream_type', 'text', (c) => c.notNull())
    .addColumn('version', 'bigint', (c) => c.notNull().check(sql`version >= 0`))
    .addColumn('head_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('event')
    .addColumn('id', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('event_id', 'uuid', (c) => c.notNull().unique())
    .addColumn('stream_id', 'text', (c) => c.notNull().references('stream.stream_id'))
    .addColumn('stream_version', 'bigint', (c) => c.notNull().check(sql`stream_version >= 1`))
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('schema_version', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('data', 'jsonb', (c) => c.notNull())
    .addColumn('metadata', 'jsonb', (c) => c.notNull())
    .addColumn('recorded_at', 'timestamptz', (c) => c.notNull())
    .addColumn('tx_id', sql`xid8`, (c) => c.notNull().defaultTo(sql`pg_current_xact_id()`))
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addUniqueConstraint('event_stream_version_key', ['stream_id', 'stream_version'])
    .execute();
  // The sequencer reads committed events in (tx_id, id) order from a cursor: an index range scan.
  await db.schema.createIndex('event_tx_order_idx').on('event').columns(['tx_id', 'id']).execute();

  await db.schema
    .createTable('ledger')
    .addColumn('position', 'bigint', (c) => c.primaryKey().check(sql`position >= 1`))
    .addColumn('event_row_id', 'bigint', (c) => c.notNull().unique().references('event.id'))
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('sequenced_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  // The sequencer's cursor and the chain head, in one row: where the next read starts
  // ((tx_id, event_row_id) in commit order) and what the next entry links to.
  await db.schema
    .createTable('sequencer_state')
    .addColumn('id', 'integer', (c) => c.primaryKey().check(sql`id = 1`))
    .addColumn('position', 'bigint', (c) => c.notNull())
    .addColumn('head_hash', 'text', (c) => c.notNull())
    .addColumn('tx_id', sql`xid8`, (c) => c.notNull())
    .addColumn('event_row_id', 'bigint', (c) => c.notNull())
    .execute();
  await sql`insert into sequencer_state (id, position, head_hash, tx_id, event_row_id)
            values (1, 0, ${'0'.repeat(64)}, '0'::xid8, 0)`.execute(db);

  await db.schema
    .createTable('signing_key')
    .addColumn('key_id', 'text', (c) => c.primaryKey())
    .addColumn('algorithm', 'text', (c) => c.notNull())
    .addColumn('public_key_pem', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('checkpoint')
    .addColumn('position', 'bigint', (c) => c.primaryKey().references('ledger.position'))
    .addColumn('head_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('key_id', 'text', (c) => c.notNull().references('signing_key.key_id'))
    .addColumn('signature', 'text', (c) => c.notNull())
    .execute();

  await sql`
    create function reject_log_mutation() returns trigger language plpgsql as $$
    begin
      raise exception 'upgrade-ledger: % on % is not allowed: the log is append-only', tg_op, tg_table_name
        using errcode = 'P0001', hint = 'append a correcting event instead';
    end
    $$`.execute(db);

  for (const table of ['event', 'ledger', 'checkpoint', 'signing_key']) {
    await sql`
      create trigger ${sql.id(`${table}_no_update_delete`)}
      before update or delete on ${sql.table(table)}
      for each row execute function reject_log_mutation()`.execute(db);
    await sql`
      create trigger ${sql.id(`${table}_no_truncate`)}
      before truncate on ${sql.table(table)}
      for each statement execute function reject_log_mutation()`.execute(db);
  }
}

export async function down(): Promise<void> {
  throw new Error('the event store is never migrated down: the log is append-only');
}
