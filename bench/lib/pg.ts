import pg from 'pg';
import { runOk } from './proc.js';

/** The Postgres server the benchmarks use (BENCH_PG_URL overrides; trust auth, user postgres). */
export const SERVER_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432';
const url = new URL(SERVER_URL);

export const dbUrl = (name: string): string => `${SERVER_URL}/${name}`;

/** psql arguments connecting to a database (for printing and running the same command). */
export function psqlArgs(db: string): string[] {
  return ['-h', url.hostname, '-p', url.port || '5432', '-U', url.username || 'postgres', '-d', db];
}

export async function adminQuery<T extends pg.QueryResultRow = pg.QueryResultRow>(
  sqlText: string,
  params: unknown[] = [],
  db = 'postgres',
): Promise<T[]> {
  const client = new pg.Client({ connectionString: dbUrl(db) });
  await client.connect();
  try {
    return (await client.query<T>(sqlText, params)).rows;
  } finally {
    await client.end();
  }
}

/** A fresh, empty database of that name (dropped first if a previous run left it). */
export async function recreateDatabase(name: string): Promise<void> {
  if (!/^bench_[a-z0-9_]+$/.test(name))
    throw new Error(`refusing to recreate ${name}: not a bench_ database`);
  await adminQuery(`drop database if exists ${name} with (force)`);
  await adminQuery(`create database ${name}`);
}

export async function dropDatabase(name: string): Promise<void> {
  if (!/^bench_[a-z0-9_]+$/.test(name)) throw new Error(`refusing to drop ${name}: not a bench_ database`);
  await adminQuery(`drop database if exists ${name} with (force)`);
}

export async function databaseExists(name: string): Promise<boolean> {
  const rows = await adminQuery<{ n: string }>('select count(*) as n from pg_database where datname = $1', [
    name,
  ]);
  return rows[0]?.n === '1';
}

export async function serverVersion(): Promise<string> {
  const rows = await adminQuery<{ v: string }>("select current_setting('server_version') as v");
  return rows[0]?.v ?? 'unknown';
}

/** Runs SQL through psql (so the baseline is measured outside Node, as an operator would run it). */
export async function psql(db: string, sqlText: string, discardStdout = true): Promise<{ ms: number }> {
  const r = await runOk('psql', [...psqlArgs(db), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sqlText], {
    discardStdout,
  });
  return { ms: r.ms };
}

/** How many rollout streams a bench database holds, or undefined when it does not exist. */
export async function ledgerStateSafe(db: string): Promise<{ rollouts: number } | undefined> {
  if (!(await databaseExists(db))) return undefined;
  try {
    const rows = await adminQuery<{ n: string }>(
      "select count(*) as n from stream where stream_type = 'rollout'",
      [],
      db,
    );
    return { rollouts: Number(rows[0]?.n) };
  } catch {
    return undefined;
  }
}
