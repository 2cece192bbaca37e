import { access } from 'node:fs/promises';
import path from 'node:path';
import { type Kysely, sql } from 'kysely';
import { type DatabaseHandle, openDatabase } from '../database/database.js';
import { migrateToLatest } from '../database/migrator.js';
import type { Database } from '../database/schema.js';
import { LedgerRepository } from './ledger.repository.js';
import type { Checkpoint, VerifyResult } from './ledger.types.js';
import { ChainVerifier } from './verify.js';

/**
 * Moving from the embedded database (PGlite, `DATA_DIR/pgdata`) to Postgres: every table that
 * carries the ledger or state that cannot be rebuilt is copied, row for row, into an empty,
 * freshly migrated Postgres database, in one transaction; the read models are left empty and
 * rebuild themselves from the ledger when the service starts (their checkpoints stay at 0).
 *
 * Ids, positions and hashes are copied exactly. Only `event.tx_id` changes: it is an ordering
 * hint for the sequencer (never hashed) and PGlite's transaction ids mean nothing to the target
 * cluster (they may even be ahead of its counter, which the start-up check refuses). Every event
 * the source had sequenced gets `0`, as after `rebase-after-restore`; events it had not sequenced
 * yet get small ids (1, 2, … by their source transaction) so they stay in commit order after the
 * cursor, and are sequenced right after the copy.
 */

/** Copied, in this order (foreign keys), each paged by its primary key. */
const COPIED: readonly { table: string; key: readonly string[] }[] = [
  { table: 'stream', key: ['stream_id'] },
  { table: 'event', key: ['id'] },
  { table: 'ledger', key: ['position'] },
  { table: 'signing_key', key: ['key_id'] },
  { table: 'checkpoint', key: ['position'] },
  { table: 'api_key', key: ['id'] },
  { table: 'snapshot_tick', key: ['target', 'tick_at'] },
];

/** Not copied: the migrator's own bookkeeping, the sequencer's row (rewritten), read models. */
const NOT_COPIED = new Set([
  'kysely_migration',
  'kysely_migration_lock',
  'sequencer_state',
  'projection_checkpoint',
]);
/** Read models: `<name>_v<N>`, rebuilt from the ledger by the projections. */
const READ_MODEL = /_v\d+$/;

/** Rows per page read from the source; an insert also stops at INSERT_MAX_CHARS of JSON. */
const PAGE_ROWS = 500;
const INSERT_MAX_CHARS = 8 * 1024 * 1024;

/** The transfer will not run: nothing was written to the target. */
export class TransferRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TransferRefused';
  }
}

export interface TransferOptions {
  /** The embedded database's DATA_DIR (its files are in `<dir>/pgdata`). */
  fromDataDir: string;
  /** The target Postgres connection string: an empty database. */
  to: string;
  /** Progress lines (one per page and table). */
  progress?: (line: string) => void;
  /** How many pending events to sequence per batch after the copy. */
  sequencerBatch?: number;
}

export interface TransferResult {
  /** Rows copied per table. */
  copied: Record<string, number>;
  source: { head: { position: number; hash: string }; pending: number };
  /** Events the source had not sequenced yet, sequenced on the target after the copy. */
  sequenced: number;
  head: { position: number; hash: string };
  verify: VerifyResult;
  /** What does not match between source and target (empty when the transfer is sound). */
  mismatches: string[];
  ok: boolean;
}

type Db = Kysely<Database>;

async function tables(db: Db): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`
    select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = current_schema() and c.relkind in ('r', 'p') and not c.relispartition
     order by 1`.execute(db);
  return rows.map((r) => r.name);
}

async function countRows(db: Db, table: string): Promise<number> {
  const { rows } = await sql<{ n: string }>`select count(*)::text as n from ${sql.table(table)}`.execute(db);
  return Number(rows[0]?.n ?? 0);
}

async function migrationNames(db: Db): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db);
  return rows.map((r) => r.name);
}

/**
 * One page of `table` after the row `after` (its JSON), in key order, each row as the JSON text
 * of `to_jsonb(row)`: the values travel as Postgres writes them, never through JavaScript types.
 */
async function readPage(
  db: Db,
  table: string,
  key: readonly string[],
  after: string | undefined,
): Promise<string[]> {
  const t = sql.table(table);
  const keys = sql.join(key.map((k) => sql.ref(`t.${k}`)));
  const afterKeys = sql.join(key.map((k) => sql.ref(`r.${k}`)));
  const where = after
    ? sql`where (${keys}) > (select ${afterKeys} from jsonb_populate_record(null::${t}, ${after}::jsonb) r)`
    : sql``;
  // Events: the stored tx_id is replaced (see the module comment); everything else is as stored.
  const row =
    table === 'event'
      ? sql`jsonb_set(to_jsonb(t), '{tx_id}', to_jsonb((case
              when (t.tx_id, t.id) > (s.tx_id, s.event_row_id) then p.rank else 0 end)::text))`
      : sql`to_jsonb(t)`;
  const from =
    table === 'event'
      ? sql`event t cross join (select tx_id, event_row_id from sequencer_state where id = 1) s
            left join (select tx_id, dense_rank() over (order by tx_id) as rank
                         from (select distinct e.tx_id from event e, sequencer_state c
                                where c.id = 1 and (e.tx_id, e.id) > (c.tx_id, c.event_row_id)) d) p
              on p.tx_id = t.tx_id`
      : sql`${t} t`;
  const { rows } = await sql<{ j: string }>`
    select ${row}::text as j from ${from} ${where} order by ${keys} limit ${PAGE_ROWS}`.execute(db);
  return rows.map((r) => r.j);
}

async function insertRows(trx: Db, table: string, rows: readonly string[]): Promise<void> {
  const t = sql.table(table);
  const overriding = table === 'event' ? sql`overriding system value` : sql``;
  let chunk: string[] = [];
  let chars = 0;
  const flush = async () => {
    if (chunk.length === 0) return;
    const json = `[${chunk.join(',')}]`;
    await sql`insert into ${t} ${overriding}
              select * from jsonb_populate_recordset(null::${t}, ${json}::jsonb)`.execute(trx);
    chunk = [];
    chars = 0;
  };
  for (const row of rows) {
    if (chars + row.length > INSERT_MAX_CHARS) await flush();
    chunk.push(row);
    chars += row.length;
  }
  await flush();
}

/** The same check as `GET /api/v1/ledger/verify`: the whole chain from 1, every checkpoint. */
export async function verifyStoredLedger(repo: LedgerRepository, batch = 2000): Promise<VerifyResult> {
  const checkpoints: Checkpoint[] = [];
  for (let after = 0; ; ) {
    const page = await repo.checkpoints(after, 10_000);
    checkpoints.push(...page);
    const last = page.at(-1);
    if (!last || page.length < 10_000) break;
    after = last.position;
  }
  const keys = new Map((await repo.publicKeys()).map((k) => [k.keyId, k.publicKeyPem]));
  const verifier = new ChainVerifier(checkpoints, keys);
  for (let after = 0; ; ) {
    const entries = await repo.read(after, batch);
    for (const entry of entries) if (!verifier.push(entry)) return verifier.result();
    const last = entries.at(-1);
    if (!last || entries.length < batch) break;
    after = last.position;
  }
  return verifier.result();
}

/** Opens the embedded database of `dataDir`, refusing a directory that does not hold one. */
async function openSource(dataDir: string): Promise<DatabaseHandle> {
  const pgdata = path.resolve(dataDir, 'pgdata');
  try {
    await access(path.join(pgdata, 'PG_VERSION'));
  } catch {
    throw new TransferRefused(
      `${pgdata} holds no embedded database (no PG_VERSION): give --from-data-dir the DATA_DIR the service ran with`,
    );
  }
  return openDatabase({ database: { kind: 'pglite', dataDir } });
}

/**
 * Copies the embedded database of `fromDataDir` into the empty Postgres database `to`, then
 * sequences what the source had not, and verifies the target's chain. Throws TransferRefused
 * (nothing written) when the source or the target is not fit; the result says whether the
 * target matches the source.
 */
export async function transferEmbeddedToPostgres(opts: TransferOptions): Promise<TransferResult> {
  const progress = opts.progress ?? (() => {});
  const source = await openSource(opts.fromDataDir);
  let target: DatabaseHandle | undefined;
  try {
    // The source must be exactly at this build's schema: its rows are copied column for column.
    const sourceTables = await tables(source.db);
    if (!sourceTables.includes('kysely_migration') || !sourceTables.includes('event')) {
      throw new TransferRefused(
        `the embedded database in ${opts.fromDataDir} was never migrated: nothing to transfer`,
      );
    }
    target = await openDatabase({ database: { kind: 'postgres', url: opts.to, poolMax: 2 } });
    const applied = await migrateToLatest(target.db);
    if (applied.length) progress(`target: applied migrations ${applied.join(', ')}`);
    const [fromMigrations, toMigrations] = [await migrationNames(source.db), await migrationNames(target.db)];
    if (fromMigrations.join() !== toMigrations.join()) {
      const missing = toMigrations.filter((m) => !fromMigrations.includes(m));
      const unknown = fromMigrations.filter((m) => !toMigrations.includes(m));
      throw new TransferRefused(
        missing.length
          ? `the embedded database lacks migrations ${missing.join(', ')}: run DATA_DIR=${opts.fromDataDir} npx upgrade-ledger migrate first`
          : `the embedded database has migrations this version does not know (${unknown.join(', ')}): transfer with the version that wrote it`,
      );
    }
    // A table this version does not know how to carry over must not be lost silently.
    const copiedNames = new Set(COPIED.map((c) => c.table));
    for (const table of sourceTables) {
      if (copiedNames.has(table) || NOT_COPIED.has(table) || READ_MODEL.test(table)) continue;
      const n = await countRows(source.db, table);
      if (n > 0) {
        throw new TransferRefused(
          `table ${table} (${n} rows) is not known to the transfer: this version cannot carry it over`,
        );
      }
    }

    const sourceRepo = new LedgerRepository(source);
    const sourceHead = await sourceRepo.head();
    const sourcePending = await sourceRepo.pendingCount();
    const sourceCounts: Record<string, number> = {};
    for (const { table } of COPIED) sourceCounts[table] = await countRows(source.db, table);

    const copied: Record<string, number> = {};
    await target.db.transaction().execute(async (trx) => {
      // Nobody writes the target meanwhile (a service started on it too early waits, then finds
      // the transferred data); and it must be empty: a transfer never merges two ledgers.
      await sql`lock table ${sql.join(COPIED.map((c) => sql.table(c.table)))}, sequencer_state
                in exclusive mode`.execute(trx);
      const occupied: string[] = [];
      for (const { table } of COPIED) {
        const n = await countRows(trx, table);
        if (n > 0) occupied.push(`${table}: ${n} rows`);
      }
      const [state] = (
        await sql<{ position: string }>`select position::text from sequencer_state where id = 1`.execute(trx)
      ).rows;
      if (Number(state?.position ?? 0) !== 0) occupied.push(`sequencer_state at position ${state?.position}`);
      if (occupied.length) {
        throw new TransferRefused(
          `the target database is not empty (${occupied.join(', ')}): a transfer only goes into a new, ` +
            'empty database (createdb), never over an existing ledger',
        );
      }
      const { rows: xid } = await sql<{ next: string }>`
        select pg_snapshot_xmin(pg_current_snapshot())::text as next`.execute(trx);
      const { rows: ranks } = await sql<{ m: string }>`
        select count(distinct e.tx_id)::text as m from event e, sequencer_state c
         where c.id = 1 and (e.tx_id, e.id) > (c.tx_id, c.event_row_id)`.execute(source.db);
      if (BigInt(ranks[0]?.m ?? 0) >= BigInt(xid[0]?.next ?? 0)) {
        throw new TransferRefused(
          `the source holds events of ${ranks[0]?.m} unsequenced transactions, more than the target ` +
            `cluster's transaction counter (${xid[0]?.next}): start the service on the embedded database once, so it sequences them, then transfer`,
        );
      }

      for (const { table, key } of COPIED) {
        let after: string | undefined;
        let done = 0;
        for (;;) {
          const rows = await readPage(source.db, table, key, after);
          if (rows.length === 0) break;
          await insertRows(trx, table, rows);
          done += rows.length;
          after = rows[rows.length - 1];
          progress(`${table}: ${done}/${sourceCounts[table]}`);
          if (rows.length < PAGE_ROWS) break;
        }
        copied[table] = done;
      }
      // The cursor: every copied ledger entry is behind it (tx_id 0, up to the largest id the
      // source had sequenced); the unsequenced events (tx_id ≥ 1) come after it in commit order.
      await sql`update sequencer_state
                   set position = ${sourceHead.position}, head_hash = ${sourceHead.hash}, tx_id = '0'::xid8,
                       event_row_id = coalesce((select max(id) from event where tx_id = '0'::xid8), 0)
                 where id = 1`.execute(trx);
      await sql`select setval(pg_get_serial_sequence('event', 'id'),
                              coalesce((select max(id) from event), 1),
                              (select count(*) > 0 from event))`.execute(trx);
    });

    // Then what the source had not sequenced yet, as the service's sequencer would.
    const repo = new LedgerRepository(target);
    let sequenced = 0;
    const batch = opts.sequencerBatch ?? 5000;
    for (;;) {
      const { entries } = await repo.sequenceBatch(batch);
      sequenced += entries.length;
      if (entries.length < batch) break;
    }
    if (sequenced) progress(`sequenced ${sequenced} events the source had not sequenced yet`);

    progress('verifying the target ledger');
    const verify = await verifyStoredLedger(repo);
    const head = await repo.head();
    const mismatches: string[] = [];
    for (const { table } of COPIED) {
      const n = await countRows(target.db, table);
      // The ledger also holds the entries just sequenced; the service signs their checkpoint.
      const expected = (sourceCounts[table] ?? 0) + (table === 'ledger' ? sequenced : 0);
      if (n !== expected || copied[table] !== sourceCounts[table]) {
        mismatches.push(
          `${table}: ${sourceCounts[table]} rows in the source, ${copied[table]} copied, ${n} in the target (expected ${expected})`,
        );
      }
    }
    if (head.position !== sourceHead.position + sourcePending) {
      mismatches.push(
        `head at ${head.position}, expected ${sourceHead.position} + ${sourcePending} pending events`,
      );
    }
    if ((await repo.hashAt(sourceHead.position)) !== sourceHead.hash) {
      mismatches.push(`the chain hash at ${sourceHead.position} differs from the source's head`);
    }
    if ((await repo.pendingCount()) !== 0) mismatches.push('events left unsequenced on the target');
    return {
      copied,
      source: { head: sourceHead, pending: sourcePending },
      sequenced,
      head,
      verify,
      mismatches,
      ok: verify.ok && mismatches.length === 0,
    };
  } finally {
    await target?.close();
    await source.close();
  }
}
