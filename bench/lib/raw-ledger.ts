import pg from 'pg';
import { dbUrl } from './pg.js';

/** Where a raw ledger write starts: after this sequencer cursor, at this position (all events when absent). */
export interface LedgerFrom {
  position: number;
  tx_id: string;
  event_row_id: number;
}

/**
 * The sequencer's raw-Postgres baseline: the same ledger rows (position, event, prev hash, hash)
 * written in commit order by one INSERT … SELECT into a table with the ledger's constraints, with
 * no hashing in JS. Events after `from` (every event when absent); the table is dropped after.
 */
export async function rawLedgerInsert(
  db: string,
  from?: LedgerFrom,
): Promise<{ rows: number; seconds: number }> {
  const after = from ?? { position: 0, tx_id: '0', event_row_id: 0 };
  const client = new pg.Client({ connectionString: dbUrl(db) });
  await client.connect();
  let rows: number;
  let seconds: number;
  try {
    await client.query(
      `create table bench_ledger_raw (position bigint primary key,
         event_row_id bigint not null unique references event(id),
         prev_hash text not null, hash text not null, sequenced_at timestamptz not null default now())`,
    );
    const t = performance.now();
    const res = await client.query(
      `insert into bench_ledger_raw (position, event_row_id, prev_hash, hash)
       select $3::bigint + row_number() over (order by tx_id, id), id, prev_hash, hash from event
        where (tx_id, id) > ($1::xid8, $2::bigint) order by tx_id, id`,
      [after.tx_id, after.event_row_id, after.position],
    );
    seconds = (performance.now() - t) / 1000;
    rows = res.rowCount ?? 0;
    await client.query('drop table bench_ledger_raw');
  } finally {
    await client.end();
  }
  return { rows, seconds };
}
