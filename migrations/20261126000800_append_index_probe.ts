import { type Kysely, sql } from 'kysely';

// append_events' idempotency check, written so that any plan of it probes the event_id index.
//
// PL/pgSQL caches each statement's plan per session: after five calls it keeps a generic plan,
// costed for the tables as they were then, until their statistics change (an ANALYZE). The check
// was `event_id in (select … from jsonb_array_elements(p_events))`, which the planner costs as
// 100 lookups (its default for a set-returning function): a session whose first appends met an
// `event` of a few hundred to a few thousand rows cached a hash join over a sequential scan of
// `event`, and then read the whole table at every append for as long as it lived. Seeding 12,000
// rollouts made 11,986 such scans and slowed from 5,200 to 487 events/s (docs/benchmarks.md,
// session 4). With autovacuum off, or on embedded PGlite, which has no autovacuum, nothing ever
// replaced that plan.
//
// As a lateral lookup with LIMIT 1 per event, a sequential scan would be costed once per event
// id, so the index wins at any table size and the cached plan stays right as the table grows.
// (Planning every call afresh, `plan_cache_mode = force_custom_plan`, also fixed it, but cost a
// third of the single-append rate in pgbench; test/integration/event-store.int.spec.ts holds the
// plan to the index.) The function is otherwise exactly migration 000700's.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create or replace function append_events(
      p_stream_id text,
      p_stream_type text,
      p_expected_version bigint,
      p_expected_head text,
      p_recorded_at timestamptz,
      p_events jsonb
    ) returns table (outcome text, version bigint, head_hash text)
    language plpgsql volatile as $$
    declare
      v_version bigint;
      v_head text;
      v_count bigint := jsonb_array_length(p_events);
      v_new_head text := p_events -> (jsonb_array_length(p_events) - 1) ->> 'hash';
    begin
      perform pg_advisory_xact_lock(hashtextextended(p_stream_id, 0));

      if exists (
        select 1 from jsonb_array_elements(p_events) x
        cross join lateral (
          select 1 from event e where e.event_id = (x.value ->> 'event_id')::uuid limit 1
        ) seen
      ) then
        return query select 'seen'::text, null::bigint, null::text;
        return;
      end if;

      select s.version, s.head_hash into v_version, v_head
        from stream s where s.stream_id = p_stream_id for update;
      if not found then
        v_version := 0;
        v_head := repeat('0', 64);
      end if;
      if v_version <> p_expected_version or v_head <> p_expected_head then
        return query select 'moved'::text, v_version, v_head;
        return;
      end if;

      if v_version = 0 and not exists (select 1 from stream s where s.stream_id = p_stream_id) then
        insert into stream (stream_id, stream_type, version, head_hash, updated_at)
        values (p_stream_id, p_stream_type, v_count, v_new_head, p_recorded_at);
      else
        update stream
          set version = v_version + v_count, head_hash = v_new_head, updated_at = p_recorded_at
          where stream_id = p_stream_id;
      end if;

      insert into event (event_id, stream_id, stream_version, type, schema_version, data, metadata,
                         recorded_at, prev_hash, hash, data_jcs, metadata_jcs)
      select (x.e ->> 'event_id')::uuid, p_stream_id, v_version + x.n, x.e ->> 'type',
             (x.e ->> 'schema_version')::integer,
             coalesce(x.e -> 'data', (x.e ->> 'data_jcs')::jsonb),
             coalesce(x.e -> 'metadata', (x.e ->> 'metadata_jcs')::jsonb),
             p_recorded_at, x.e ->> 'prev_hash', x.e ->> 'hash',
             x.e ->> 'data_jcs', x.e ->> 'metadata_jcs'
        from jsonb_array_elements(p_events) with ordinality as x(e, n)
        order by x.n;

      return query select 'appended'::text, v_version + v_count, v_new_head;
    end
    $$`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    create or replace function append_events(
      p_stream_id text,
      p_stream_type text,
      p_expected_version bigint,
      p_expected_head text,
      p_recorded_at timestamptz,
      p_events jsonb
    ) returns table (outcome text, version bigint, head_hash text)
    language plpgsql volatile as $$
    declare
      v_version bigint;
      v_head text;
      v_count bigint := jsonb_array_length(p_events);
      v_new_head text := p_events -> (jsonb_array_length(p_events) - 1) ->> 'hash';
    begin
      perform pg_advisory_xact_lock(hashtextextended(p_stream_id, 0));

      if exists (
        select 1 from event e
        where e.event_id in (select (x ->> 'event_id')::uuid from jsonb_array_elements(p_events) x)
      ) then
        return query select 'seen'::text, null::bigint, null::text;
        return;
      end if;

      select s.version, s.head_hash into v_version, v_head
        from stream s where s.stream_id = p_stream_id for update;
      if not found then
        v_version := 0;
        v_head := repeat('0', 64);
      end if;
      if v_version <> p_expected_version or v_head <> p_expected_head then
        return query select 'moved'::text, v_version, v_head;
        return;
      end if;

      if v_version = 0 and not exists (select 1 from stream s where s.stream_id = p_stream_id) then
        insert into stream (stream_id, stream_type, version, head_hash, updated_at)
        values (p_stream_id, p_stream_type, v_count, v_new_head, p_recorded_at);
      else
        update stream
          set version = v_version + v_count, head_hash = v_new_head, updated_at = p_recorded_at
          where stream_id = p_stream_id;
      end if;

      insert into event (event_id, stream_id, stream_version, type, schema_version, data, metadata,
                         recorded_at, prev_hash, hash, data_jcs, metadata_jcs)
      select (x.e ->> 'event_id')::uuid, p_stream_id, v_version + x.n, x.e ->> 'type',
             (x.e ->> 'schema_version')::integer,
             coalesce(x.e -> 'data', (x.e ->> 'data_jcs')::jsonb),
             coalesce(x.e -> 'metadata', (x.e ->> 'metadata_jcs')::jsonb),
             p_recorded_at, x.e ->> 'prev_hash', x.e ->> 'hash',
             x.e ->> 'data_jcs', x.e ->> 'metadata_jcs'
        from jsonb_array_elements(p_events) with ordinality as x(e, n)
        order by x.n;

      return query select 'appended'::text, v_version + v_count, v_new_head;
    end
    $$`.execute(db);
}
