import { type Kysely, sql } from 'kysely';

// The sequencer's batch in one statement: `sequence_ledger(limit, ignore_snapshot)` reads the next
// committed events after the cursor, chains their hashes and writes their ledger rows and the
// cursor, where the service did it in three statements with every payload carried to Node and
// back as a hash. The bytes hashed are the ones `ledgerHashFromText` (src/ledger/hashing.ts)
// hashes: the previous hash, then the entry's RFC 8785 form written from the event's stored
// canonical text and its envelope's fields. `to_json(text)` escapes a string as `JSON.stringify`
// does (the export builds its lines the same way); the integers print alike in both.
//
// The same rules as the service's form (`LedgerRepository.sequenceBatchInNode`):
// - only events of transactions below the xmin (unless `p_ignore_snapshot`, for a rebase after a
//   restore with the service stopped), so none can commit later before one already read. The
//   xmin is read as the function starts, before it writes anything, so this transaction has no
//   id yet to hold it back; the loop's read takes a later snapshot, which can only see more of
//   what committed below it;
// - the cursor moves by compare-and-set on the whole of it, and the entries are written only if it
//   moved: a batch raced by another sequencer writes nothing and says that the cursor had moved
//   under it (`moved`);
// - an event without stored canonical text (appended before migration 000700, or by an older
//   replica during a rolling upgrade) ends the batch before it (`needs_text`): its jsonb must be
//   canonicalised by the service, which sequences the rest of the batch from there.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create function sequence_ledger(p_limit integer, p_ignore_snapshot boolean default false)
    returns table (sequenced integer, head_position bigint, head_hash text, recorded_ms float8[],
                   moved boolean, needs_text boolean)
    language plpgsql volatile
    -- Planned with each call's cursor, as the service's own statement was: a plan cached on a small
    -- table must not stay in use once it has grown (the read must stay an index range scan).
    set plan_cache_mode = force_custom_plan
    as $$
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
      for e in
        select ev.id, ev.tx_id, ev.event_id, ev.stream_id, ev.stream_version, ev.type,
               ev.schema_version, ev.hash, ev.data_jcs, ev.metadata_jcs,
               to_char(ev.recorded_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as recorded_iso,
               (extract(epoch from ev.recorded_at) * 1000)::float8 as recorded_ms
          from event ev
         where (ev.tx_id, ev.id) > (s.tx_id, s.event_row_id)
           and (p_ignore_snapshot or ev.tx_id < v_xmin)
         order by ev.tx_id, ev.id
         limit p_limit
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
}
