import { type Kysely, sql } from 'kysely';
import { up as createFirstForm } from './20261128001100_sequence_function.js';

// `sequence_ledger` (migration 001100) without its `set plan_cache_mode = force_custom_plan`.
//
// The clause was there so that the read of the next events would be planned with each call's
// cursor, as the service's own statement had been. But it holds for every statement of the
// function, and PL/pgSQL evaluates its simple expressions (each `v_position + 1`, each hash) on a
// fast path that needs a generic plan: under the clause each of the dozen expressions per event
// went through the planner. On 160,000 events a call took 47-69 µs per event in batches of 5,000
// with the clause, 37-41 without it, and 173-192 against 122 in batches of 20 (wall time of each
// call, its commit included, alternating: `docs/benchmarks.md`, session 17).
//
// The read alone is now planned per call, by EXECUTE: the same statement, the same parameters.
// Everything else is as in migration 001100, and its comment holds.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create or replace function sequence_ledger(p_limit integer, p_ignore_snapshot boolean default false)
    returns table (sequenced integer, head_position bigint, head_hash text, recorded_ms float8[],
                   moved boolean, needs_text boolean)
    language plpgsql volatile as $$
    #variable_conflict use_column
    declare
      s sequencer_state%rowtype;
      e record;
      v_xmin xid8 := pg_snapshot_xmin(pg_current_snapshot());
      v_position bigint;
      v_hash text;
      v_prev text;
      v_last_tx xid8;
      v_last_id bigint;
      v_positions bigint[] := '{}';
      v_rows bigint[] := '{}';
      v_prevs text[] := '{}';
      v_hashes text[] := '{}';
      v_recorded float8[] := '{}';
      v_needs_text boolean := false;
      v_moved integer;
    begin
      select * into strict s from sequencer_state where id = 1;
      v_position := s.position;
      v_hash := s.head_hash;
      -- Planned with this call's cursor (EXECUTE), as the service's own statement was.
      for e in execute
        $q$select ev.id, ev.tx_id, ev.event_id, ev.stream_id, ev.stream_version, ev.type,
                  ev.schema_version, ev.hash, ev.data_jcs, ev.metadata_jcs,
                  to_char(ev.recorded_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as recorded_iso,
                  (extract(epoch from ev.recorded_at) * 1000)::float8 as recorded_ms
             from event ev
            where (ev.tx_id, ev.id) > ($1, $2)
              and ($3 or ev.tx_id < $4)
            order by ev.tx_id, ev.id
            limit $5
        $q$
        using s.tx_id, s.event_row_id, p_ignore_snapshot, v_xmin, p_limit
      loop
        if e.data_jcs is null or e.metadata_jcs is null then
          v_needs_text := true;
          exit;
        end if;
        v_position := v_position + 1;
        v_prev := v_hash;
        v_hash := encode(sha256(convert_to(
          v_prev || '{"data":' || e.data_jcs
            || ',"eventHash":' || to_json(e.hash)::text
            || ',"eventId":"' || e.event_id::text
            || '","metadata":' || e.metadata_jcs
            || ',"position":' || v_position::text
            || ',"recordedAt":"' || e.recorded_iso
            || '","schemaVersion":' || e.schema_version::text
            || ',"streamId":' || to_json(e.stream_id)::text
            || ',"streamVersion":' || e.stream_version::text
            || ',"type":' || to_json(e.type)::text || '}',
          'UTF8')), 'hex');
        v_positions := v_positions || v_position;
        v_rows := v_rows || e.id;
        v_prevs := v_prevs || v_prev;
        v_hashes := v_hashes || v_hash;
        v_recorded := v_recorded || e.recorded_ms;
        v_last_tx := e.tx_id;
        v_last_id := e.id;
      end loop;
      if v_last_id is null then
        return query select 0, s.position, s.head_hash, v_recorded, false, v_needs_text;
        return;
      end if;
      update sequencer_state
         set position = v_position, head_hash = v_hash, tx_id = v_last_tx, event_row_id = v_last_id
       where id = 1 and position = s.position and head_hash = s.head_hash
         and tx_id = s.tx_id and event_row_id = s.event_row_id;
      get diagnostics v_moved = row_count;
      if v_moved = 0 then
        return query select 0, s.position, s.head_hash, '{}'::float8[], true, false;
        return;
      end if;
      insert into ledger (position, event_row_id, prev_hash, hash)
      select * from unnest(v_positions, v_rows, v_prevs, v_hashes);
      return query select cardinality(v_positions), v_position, v_hash, v_recorded, false, v_needs_text;
    end
    $$`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop function sequence_ledger(integer, boolean)`.execute(db);
  await createFirstForm(db);
}
