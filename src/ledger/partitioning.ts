import { type Kysely, sql } from 'kysely';
import type { Database } from '../database/schema.js';

/**
 * Range partitions of the `ledger` table by position (Postgres only), for a ledger grown large:
 * old ranges then live in tables of their own (vacuumed and frozen once, movable to another
 * tablespace, backed up or analysed apart), and a range read touches only its partitions.
 *
 * The conversion copies nothing: the existing table becomes the first partition, covering
 * positions 1 up to the end of the range the head is in, and empty partitions are created ahead
 * of the head. The append-only triggers are on the partitioned table (and so on every partition),
 * the primary key stays `position`, `checkpoint.position` references the partitioned table, and
 * an entry per event stays enforced by a trigger (a unique index of a partitioned table must
 * include its partition key, so `event_row_id`'s unique constraint cannot span partitions).
 *
 * Only `ledger` is partitioned. `event` is not: its idempotency (`event_id` unique) and the
 * per-stream version check (`(stream_id, stream_version)` unique) need unique constraints over
 * the whole table, which a partitioned table cannot have on columns other than its key.
 */

export interface PartitionPlan {
  /** Positions per partition. */
  size: number;
  /** How many empty partitions to keep ahead of the one the head is in. */
  ahead: number;
}

export interface PartitionOutcome {
  /** True when this run converted a plain table. */
  converted: boolean;
  head: number;
  /** Partitions created by this run, by name. */
  created: string[];
  /** Every partition, in position order: name and range [from, to). */
  partitions: { name: string; from: number; to: number }[];
}

export class PartitioningRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PartitioningRefused';
  }
}

const partitionName = (from: number) => `ledger_from_${from}`;
/** The first position of the range `position` falls in (ranges start at 1, size apart). */
const rangeStart = (position: number, size: number) => Math.floor((position - 1) / size) * size + 1;

type Db = Kysely<Database>;

async function relkind(db: Db): Promise<string | undefined> {
  const { rows } = await sql<{ relkind: string }>`
    select c.relkind from pg_class c where c.oid = to_regclass('ledger')`.execute(db);
  return rows[0]?.relkind;
}

/** Every partition of ledger with its bounds, read from the catalog. */
async function partitions(db: Db): Promise<PartitionOutcome['partitions']> {
  const { rows } = await sql<{ name: string; bound: string }>`
    select c.relname as name, pg_get_expr(c.relpartbound, c.oid) as bound
      from pg_inherits i join pg_class c on c.oid = i.inhrelid
     where i.inhparent = 'ledger'::regclass`.execute(db);
  return rows
    .map((r) => {
      const m = /FROM \('?(\d+)'?\) TO \('?(\d+)'?\)/.exec(r.bound);
      if (!m) throw new Error(`ledger partition ${r.name} has an unexpected bound: ${r.bound}`);
      return { name: r.name, from: Number(m[1]), to: Number(m[2]) };
    })
    .sort((a, b) => a.from - b.from);
}

/**
 * Converts `ledger` to range partitions of `size` positions (when it is still a plain table),
 * then makes sure `ahead` empty partitions exist past the one the head is in. Run it again, at
 * any time, to keep partitions ahead of the sequencer: a position with no partition stops
 * sequencing (appends still succeed; nothing is lost) until this runs. One transaction; the
 * conversion needs the table's owner and locks the ledger (run it with the service stopped).
 */
export async function partitionLedger(db: Db, plan: PartitionPlan): Promise<PartitionOutcome> {
  if (!Number.isSafeInteger(plan.size) || plan.size < 1) throw new PartitioningRefused('--size must be ≥ 1');
  if (!Number.isSafeInteger(plan.ahead) || plan.ahead < 1)
    throw new PartitioningRefused('--ahead must be ≥ 1');
  return db.transaction().execute(async (trx) => {
    await sql`lock table ledger, checkpoint in access exclusive mode`.execute(trx);
    const { rows } = await sql<{ head: string }>`
      select coalesce(max(position), 0)::text as head from ledger`.execute(trx);
    const head = Number(rows[0]?.head ?? 0);
    const kind = await relkind(trx);
    const created: string[] = [];
    let converted = false;
    if (kind === 'r') {
      // The current table becomes the first partition, up to the end of the head's range.
      const upTo = rangeStart(head + 1, plan.size) + plan.size;
      const first = partitionName(1);
      await sql`alter table ledger rename to ${sql.id(first)}`.execute(trx);
      await sql`alter table ${sql.id(first)} rename constraint ledger_pkey to ${sql.id(`${first}_pkey`)}`.execute(
        trx,
      );
      await sql`alter table ${sql.id(first)} rename constraint ledger_event_row_id_key
                to ${sql.id(`${first}_event_row_id_key`)}`.execute(trx);
      // Its row trigger is replaced by the partitioned table's, cloned onto it by the attach
      // below, in this same transaction; its TRUNCATE trigger stays.
      await sql`drop trigger ledger_no_update_delete on ${sql.id(first)}`.execute(trx);
      await sql`alter table checkpoint drop constraint checkpoint_position_fkey`.execute(trx);
      await sql`create table ledger (like ${sql.id(first)} including defaults including constraints)
                partition by range (position)`.execute(trx);
      await sql`alter table ledger add constraint ledger_pkey primary key (position)`.execute(trx);
      await sql`alter table ledger add constraint ledger_event_row_id_fkey
                foreign key (event_row_id) references event (id)`.execute(trx);
      await sql`create index ledger_event_row_id_idx on ledger (event_row_id)`.execute(trx);
      await sql`create trigger ledger_no_update_delete before update or delete on ledger
                for each row execute function reject_log_mutation()`.execute(trx);
      await sql`create trigger ledger_no_truncate before truncate on ledger
                for each statement execute function reject_log_mutation()`.execute(trx);
      // One entry per event, across partitions (the unique index of the first one covers only it).
      await sql`
        create or replace function ledger_event_once() returns trigger language plpgsql as $$
        begin
          if exists (select 1 from ledger where event_row_id = new.event_row_id) then
            raise exception 'upgrade-ledger: event row % already has a ledger position', new.event_row_id
              using errcode = '23505';
          end if;
          return new;
        end
        $$`.execute(trx);
      await sql`create trigger ledger_event_once before insert on ledger
                for each row execute function ledger_event_once()`.execute(trx);
      await sql`alter table ledger attach partition ${sql.id(first)}
                for values from (1) to (${sql.lit(upTo)})`.execute(trx);
      await sql`alter table checkpoint add constraint checkpoint_position_fkey
                foreign key (position) references ledger (position)`.execute(trx);
      converted = true;
    } else if (kind !== 'p') {
      throw new PartitioningRefused('there is no ledger table here: run the migrations first');
    }

    // Partitions ahead of the head, each with its own TRUNCATE guard (statement triggers are
    // not inherited; the row triggers are cloned from the partitioned table).
    const existing = await partitions(trx);
    let next = existing.at(-1)?.to ?? 1;
    const wanted = rangeStart(head + 1, plan.size) + (plan.ahead + 1) * plan.size;
    while (next < wanted) {
      const name = partitionName(next);
      await sql`create table ${sql.id(name)} partition of ledger
                for values from (${sql.lit(next)}) to (${sql.lit(next + plan.size)})`.execute(trx);
      await sql`create trigger ledger_no_truncate before truncate on ${sql.id(name)}
                for each statement execute function reject_log_mutation()`.execute(trx);
      created.push(name);
      next += plan.size;
    }
    return { converted, head, created, partitions: await partitions(trx) };
  });
}
