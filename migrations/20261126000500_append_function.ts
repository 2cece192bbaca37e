import { type Kysely, sql } from 'kysely';

// The whole compare-and-set append as one server-side function, called as one statement in its
// own implicit transaction: one round trip per append instead of nine (BEGIN, lock, stream upsert,
// row lock, idempotency look-up, insert, update, COMMIT). The hashes are computed by the caller
// (RFC 8785 JSON has no faithful SQL form) against the head it expects; the function checks that
// head under the stream's locks and, when the stream has moved, writes nothing and answers with
// the actual head so the caller can hash again or report the conflict.
//
// Outcomes: 'appended' (version, head_hash = the new head), 'moved' (the actual head; nothing
// written), 'seen' (one of these event ids is already recorded; nothing written: the caller
// decides between an idempotent retry and a conflict).
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create function append_events(
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
      -- Appends to one stream must get their transaction ids in commit order (the sequencer
      -- orders the ledger by tx_id), and an id is assigned at the first write: so wait on a lock
      -- that writes nothing before anything else. Per stream, never global.
      perform pg_advisory_xact_lock(hashtextextended(p_stream_id, 0));

      -- Under the lock, so an identical append that just committed is seen.
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

      -- Row ids follow stream versions: the sequencer orders one transaction's events by id.
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
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop function append_events(text, text, bigint, text, timestamptz, jsonb)`.execute(db);
}
