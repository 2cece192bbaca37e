import { type Kysely, sql } from 'kysely';

// The event payloads compressed with LZ4 instead of pglz, where the server has LZ4.
//
// A row over about 2 kB is compressed before it is stored, one large value at a time. A
// RolloutPlanned event (the plan, about 1.5 kB, stored twice: as jsonb and as its canonical text)
// is over it, so each one was compressed twice with pglz, and read back through pglz by the
// sequencer (the text) and the projections (the jsonb). With LZ4 these rows were inserted in
// 21–26 µs against 34–36 with pglz, their text read back in 3.1–3.3 µs against 4.0–4.1, and took
// 3 % more space (`npm run bench -- compression`, three runs, docs/benchmarks.md, session 10).
//
// Only the column setting changes: no row is rewritten. Values stored before stay pglz and read
// as before; every value written after is LZ4. A server built without LZ4 (PGlite, the embedded
// database, is one) keeps pglz, and this migration does nothing there.
//
// A logical dump keeps the setting (`ALTER TABLE … SET COMPRESSION lz4`, in the table's own entry):
// a server without LZ4 refuses it, and with it the table. `pg_restore --no-toast-compression` (or
// `pg_dump --no-toast-compression`) leaves it out (docs/operations.md).
const COLUMNS = ['data', 'data_jcs', 'metadata', 'metadata_jcs'] as const;

/** Whether this server can compress with LZ4 (it was built `--with-lz4`). */
async function hasLz4(db: Kysely<any>): Promise<boolean> {
  const { rows } = await sql<{ lz4: boolean }>`
    select coalesce('lz4' = any(enumvals), false) as lz4
    from pg_settings where name = 'default_toast_compression'`.execute(db);
  return rows[0]?.lz4 === true;
}

const setCompression = (method: 'lz4' | 'default') =>
  sql.raw(
    `alter table event ${COLUMNS.map((c) => `alter column ${c} set compression ${method}`).join(', ')}`,
  );

export async function up(db: Kysely<any>): Promise<void> {
  if (await hasLz4(db)) await setCompression('lz4').execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  if (await hasLz4(db)) await setCompression('default').execute(db);
}
