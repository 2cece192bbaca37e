import { type Kysely, sql } from 'kysely';

// append_events plans its statements for the tables as they are now, on every call.
//
// PL/pgSQL caches the plan of each statement per session: after five calls it keeps a generic
// plan, costed with the table sizes and statistics of that moment, and plans again only when the
// tables' statistics change (an ANALYZE, i.e. autovacuum). A pooled session that made its first
// appends while `event` was nearly empty kept a sequential scan of `event` for the idempotency
// check (`event_id in (…)`) for as long as it lived: every append then read the whole table, and
// bulk loads slowed down with the square of its size (docs/benchmarks.md, session 4). With
// autovacuum off, or behind after a bulk load or a restore, nothing ever replaced that plan.
//
// force_custom_plan plans each statement at each call with the table's current size (which the
// planner reads from the relation even without statistics): a few tens of microseconds per
// call, for plans that stay index lookups whatever happened before.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    alter function append_events(text, text, bigint, text, timestamptz, jsonb)
      set plan_cache_mode = force_custom_plan`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    alter function append_events(text, text, bigint, text, timestamptz, jsonb)
      reset plan_cache_mode`.execute(db);
}
