import { type Kysely, sql } from 'kysely';

// The RFC 8785 text of each event's data and metadata, exactly as the append hashed it. The
// sequencer builds every ledger entry's canonical form from these strings instead of parsing the
// jsonb and canonicalising it again, which was most of its CPU (profile in docs/benchmarks.md).
//
// `data`/`metadata` stay jsonb. The service sends each payload's canonical text twice: as the JSON
// value (kept as jsonb without a second parse) and as a string (stored as text); the function
// parses the string only when the value is missing. Events appended before this migration, or by
// an older replica during a rolling upgrade (it sends only the values), have no text: the
// sequencer canonicalises their jsonb, as before. Nothing is rewritten: the columns are nullable.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table event add column data_jcs text, add column metadata_jcs text`.execute(db);
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

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    create or replace function append_events(
      p_stream_id text, p_stream_type text, p_expected_version bigint, p_expected_head text,
      p_recorded_at timestamptz, p_events jsonb
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
                         recorded_at, prev_hash, hash)
      select (x.e ->> 'event_id')::uuid, p_stream_id, v_version + x.n, x.e ->> 'type',
             (x.e ->> 'schema_version')::integer, x.e -> 'data', x.e -> 'metadata', p_recorded_at,
             x.e ->> 'prev_hash', x.e ->> 'hash'
        from jsonb_array_elements(p_events) with ordinality as x(e, n)
        order by x.n;
      return query select 'appended'::text, v_version + v_count, v_new_head;
    end
    $$`.execute(db);
  await sql`alter table event drop column data_jcs, drop column metadata_jcs`.execute(db);
}
