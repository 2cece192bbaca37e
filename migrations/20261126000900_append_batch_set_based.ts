import { type Kysely, sql } from 'kysely';

// Group commit, set-based: a batch's appends checked and written by one statement, in place of
// one append_events call per append (migration 000600).
//
// Each call of append_events ran seven statements of its own (its lock, the idempotency check, the
// stream's row, its insert, the events' insert…), so a batch of ten ran seventy, and Postgres
// spent 183–203 µs of CPU per event on them. As three statements per batch, whatever its size,
// it spent 117–159 (batches of 16 single-event appends, docs/benchmarks.md, session 9).
//
// The rules are append_events' own, append by append:
// - every stream's advisory lock is taken first, in the order of the lock keys (as
//   append_events_batch always took them), so batches and single appends never deadlock;
// - an append any of whose event ids is already stored is `seen`, and writes nothing;
// - an append whose stream is not at its expected version and head is `moved` (with the actual
//   ones), and writes nothing;
// - otherwise its stream row is inserted or moved on, and its events are inserted.
// A stream may appear once per batch (the group committer never sends more): a batch with two
// appends to one stream is refused, and the caller appends them one at a time. An event id
// used twice across the batch fails the batch on the unique index; the caller then does the same.
//
// Plans: PL/pgSQL keeps a generic plan per session, planned for the tables as they were then
// (migration 000800). Every lookup here is a few rows from the batch against a unique index, so
// the function plans without sequential scans, hash or merge joins: the plan cached on small
// tables still probes the indexes after they have grown (test/integration/event-store.int.spec.ts).
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create or replace function append_events_batch(p_appends jsonb)
    returns table (n bigint, outcome text, version bigint, head_hash text)
    language plpgsql volatile
    set enable_seqscan = off
    set enable_hashjoin = off
    set enable_mergejoin = off
    as $$
    declare
      v_key bigint;
    begin
      if (select count(*) <> count(distinct x.e ->> 'stream_id') from jsonb_array_elements(p_appends) x(e)) then
        raise exception 'append_events_batch: a stream appears more than once in the batch'
          using errcode = '22023';
      end if;

      for v_key in
        select distinct hashtextextended(x.e ->> 'stream_id', 0)
          from jsonb_array_elements(p_appends) x(e) order by 1
      loop
        perform pg_advisory_xact_lock(v_key);
      end loop;

      -- One statement, after the locks (so its snapshot sees every append they waited for).
      return query
      with a as (
        select x.n, x.e ->> 'stream_id' as sid, x.e ->> 'stream_type' as stype,
               (x.e ->> 'expected_version')::bigint as ev, x.e ->> 'expected_head' as eh,
               (x.e ->> 'recorded_at')::timestamptz as at, x.e -> 'events' as evs,
               jsonb_array_length(x.e -> 'events') as cnt
          from jsonb_array_elements(p_appends) with ordinality as x(e, n)
      ),
      found as (
        select a.*, s.version as row_version, coalesce(s.version, 0) as v,
               coalesce(s.head_hash, repeat('0', 64)) as h,
               exists (
                 select 1 from jsonb_array_elements(a.evs) y
                 cross join lateral (
                   select 1 from event e where e.event_id = (y.value ->> 'event_id')::uuid limit 1
                 ) stored
               ) as seen
          from a
          left join lateral (
            select st.version, st.head_hash from stream st where st.stream_id = a.sid for update
          ) s on true
      ),
      d as (
        select found.*,
               case
                 when seen then 'seen'
                 when v <> ev or h <> eh then 'moved'
                 else 'appended'
               end as outcome,
               evs -> (cnt - 1) ->> 'hash' as new_head
          from found
      ),
      new_streams as (
        insert into stream (stream_id, stream_type, version, head_hash, updated_at)
        select d.sid, d.stype, d.cnt, d.new_head, d.at
          from d where d.outcome = 'appended' and d.row_version is null
      ),
      moved_streams as (
        update stream st
           set version = d.v + d.cnt, head_hash = d.new_head, updated_at = d.at
          from d
         where d.outcome = 'appended' and d.row_version is not null and st.stream_id = d.sid
      ),
      new_events as (
        insert into event (event_id, stream_id, stream_version, type, schema_version, data, metadata,
                           recorded_at, prev_hash, hash, data_jcs, metadata_jcs)
        select (y.e ->> 'event_id')::uuid, d.sid, d.v + y.k, y.e ->> 'type',
               (y.e ->> 'schema_version')::integer,
               coalesce(y.e -> 'data', (y.e ->> 'data_jcs')::jsonb),
               coalesce(y.e -> 'metadata', (y.e ->> 'metadata_jcs')::jsonb),
               d.at, y.e ->> 'prev_hash', y.e ->> 'hash', y.e ->> 'data_jcs', y.e ->> 'metadata_jcs'
          from d cross join lateral jsonb_array_elements(d.evs) with ordinality as y(e, k)
         where d.outcome = 'appended'
         order by d.n, y.k
      )
      select d.n, d.outcome,
             case d.outcome when 'appended' then d.v + d.cnt when 'moved' then d.v end,
             case d.outcome when 'appended' then d.new_head when 'moved' then d.h end
        from d
       order by d.n;
    end
    $$`.execute(db);
}

/** Migration 000600's function, one append_events call per append. */
export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop function append_events_batch(jsonb)`.execute(db);
  await sql`
    create function append_events_batch(p_appends jsonb)
    returns table (n bigint, outcome text, version bigint, head_hash text)
    language plpgsql volatile as $$
    declare
      a record;
      r record;
    begin
      for a in
        select x.e, x.n from jsonb_array_elements(p_appends) with ordinality as x(e, n)
        order by hashtextextended(x.e ->> 'stream_id', 0), x.n
      loop
        select * into r from append_events(
          a.e ->> 'stream_id', a.e ->> 'stream_type', (a.e ->> 'expected_version')::bigint,
          a.e ->> 'expected_head', (a.e ->> 'recorded_at')::timestamptz, a.e -> 'events');
        n := a.n;
        outcome := r.outcome;
        version := r.version;
        head_hash := r.head_hash;
        return next;
      end loop;
    end
    $$`.execute(db);
}
