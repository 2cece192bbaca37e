import { type Kysely, sql } from 'kysely';

// Group commit: the appends of several concurrent requests (to different streams) in one
// statement and one transaction, so they share a round trip and a commit. Each is exactly an
// append_events call, with its own outcome; streams are locked in the order of their lock keys,
// so two batches (from any replicas) that share streams wait for each other, never deadlock.
export async function up(db: Kysely<any>): Promise<void> {
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

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop function append_events_batch(jsonb)`.execute(db);
}
