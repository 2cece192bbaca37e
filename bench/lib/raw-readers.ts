import { readFileSync } from 'node:fs';
import pg from 'pg';
import { dbUrl } from './pg.js';

/**
 * Raw-Postgres baselines run in a child process of their own (`node dist-bench/bench/index.js
 * _raw-report <db>`), so that their peak memory is theirs alone. Each prints one JSON line.
 */
export interface RawResult {
  ms: number;
  events: number;
  bytes: number;
  peakMb: number;
}

function ownPeakMb(): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

/**
 * The period report's reads, raw: the same two statements the service runs (planned rollouts by
 * keyset, 500 at a time; then their events at or below the head), rows parsed by node-postgres,
 * no folding, no rulebook.
 */
export async function rawReport(db: string): Promise<RawResult> {
  const client = new pg.Client({ connectionString: dbUrl(db) });
  await client.connect();
  const started = performance.now();
  let events = 0;
  let bytes = 0;
  try {
    const head = Number(
      (await client.query<{ p: string }>('select position as p from sequencer_state where id = 1')).rows[0]
        ?.p,
    );
    for (let after = 0; ; ) {
      const page = await client.query<{ stream_id: string; position: string }>(
        `select e.stream_id, l.position from event as e inner join ledger as l on l.event_row_id = e.id
         where e.type = $1 and l.position <= $2 and l.position > $3 order by l.position limit $4`,
        ['RolloutPlanned', head, after, 500],
      );
      const ids = page.rows.map((r) => r.stream_id);
      if (ids.length > 0) {
        const params = ids.map((_, i) => `$${i + 1}`).join(', ');
        const rows = await client.query<{ data: unknown }>(
          `select e.*, l.position from event as e inner join ledger as l on l.event_row_id = e.id
           where e.stream_id in (${params}) and l.position <= $${ids.length + 1}
           order by e.stream_id, e.stream_version`,
          [...ids, head],
        );
        events += rows.rows.length;
        bytes += rows.rows.length;
      }
      const last = page.rows.at(-1);
      if (!last || page.rows.length < 500) break;
      after = Number(last.position);
    }
  } finally {
    await client.end();
  }
  return { ms: performance.now() - started, events, bytes, peakMb: ownPeakMb() };
}

/**
 * The export's reads, raw: the same keyset pages of 1000 ledger entries joined to their events
 * that the service reads, each row serialised with JSON.stringify (no canonical form, no HTTP).
 */
export async function rawExport(db: string): Promise<RawResult> {
  const client = new pg.Client({ connectionString: dbUrl(db) });
  await client.connect();
  const started = performance.now();
  let events = 0;
  let bytes = 0;
  try {
    const head = Number(
      (await client.query<{ p: string }>('select position as p from sequencer_state where id = 1')).rows[0]
        ?.p,
    );
    for (let after = 0; after < head; ) {
      const page = await client.query<{ position: string }>(
        `select l.position, l.hash, l.prev_hash, e.stream_id, e.stream_version, e.event_id, e.type,
                e.schema_version, e.data, e.metadata, e.recorded_at, e.hash as event_hash,
                e.prev_hash as event_prev_hash
         from ledger as l inner join event as e on e.id = l.event_row_id
         where l.position > $1 order by l.position limit $2`,
        [after, Math.min(1000, head - after)],
      );
      const last = page.rows.at(-1);
      if (!last) break;
      for (const r of page.rows) bytes += JSON.stringify(r).length + 1;
      events += page.rows.length;
      after = Number(last.position);
    }
  } finally {
    await client.end();
  }
  return { ms: performance.now() - started, events, bytes, peakMb: ownPeakMb() };
}
