import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { serviceEntry } from '../support/build.js';
import { adminUrl, testDbPrefix } from '../support/postgres.js';
import { eventually } from '../support/wait.js';

/**
 * The fault suite's toolbox: the built server as a child process that can be killed for real,
 * a plain HTTP client, and readers of the ledger that check its invariants from the outside.
 */

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const TOKEN = `fault-admin-${randomBytes(12).toString('hex')}`;
const AUTH = { Authorization: `Bearer ${TOKEN}` };

/** Deadlines only bound a hang on a loaded two-core machine; nothing asserts a duration. */
export const DEADLINE_MS = 120_000;

function buildDir(): string {
  const dir = process.env.UPGRADE_LEDGER_FAULTS_BUILD;
  if (!dir) throw new Error('UPGRADE_LEDGER_FAULTS_BUILD is unset: run through the faults project');
  return dir;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Service {
  proc: ChildProcess;
  /** The last 200 kB the process wrote (stdout and stderr interleaved). */
  output(): string;
  stderr(): string;
  exited: Promise<Exit>;
  /** Resolves with the base URL once it listens (rejects if it exits first). */
  listening: Promise<string>;
}

const KEEP = 200_000;

/**
 * Spawns the service as production runs it, `node <build>/src/bundle/main.js`, with only the
 * variables given (and PATH, HOME).
 *
 * @example
 * const svc = spawnService({ DATA_DIR: dir });
 * const base = await svc.listening;
 */
export function spawnService(env: Record<string, string>): Service {
  let out = '';
  let err = '';
  let base: string | undefined;
  let announce: (url: string) => void = () => {};
  const listening = new Promise<string>((resolve) => {
    announce = resolve;
  });
  const proc = spawn(process.execPath, [serviceEntry(buildDir())], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? tmpdir(),
      PORT: '0',
      HOST: '127.0.0.1',
      ADMIN_TOKEN: TOKEN,
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const take = (chunk: string) => {
    out = (out + chunk).slice(-KEEP);
    if (base) return;
    const m = /upgrade-ledger listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
    if (m?.[1]) {
      base = m[1];
      announce(base);
    }
  };
  proc.stdout?.setEncoding('utf8').on('data', take);
  proc.stderr?.setEncoding('utf8').on('data', (c: string) => {
    err = (err + c).slice(-KEEP);
    take(c);
  });
  const exited = new Promise<Exit>((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const ready = Promise.race([
    listening,
    exited.then(({ code, signal }) => {
      throw new Error(`the service exited (${code ?? signal}) before listening:\n${out.slice(-4000)}`);
    }),
  ]);
  // A service expected to refuse to start never listens: that is not an unhandled rejection.
  ready.catch(() => {});
  return { proc, exited, output: () => out, stderr: () => err, listening: ready };
}

/** Spawns the service and waits until /health/ready answers 200; returns it with its base URL. */
export async function startService(env: Record<string, string>): Promise<{ svc: Service; base: string }> {
  const svc = spawnService(env);
  let timer: NodeJS.Timeout | undefined;
  try {
    const base = await Promise.race([
      svc.listening,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(`the service did not listen within ${DEADLINE_MS} ms:\n${svc.output().slice(-4000)}`),
            ),
          DEADLINE_MS,
        );
      }),
    ]);
    clearTimeout(timer);
    await eventually(
      '/health/ready to answer 200',
      async () => ((await fetch(`${base}/health/ready`)).status === 200 ? true : undefined),
      { deadlineMs: DEADLINE_MS, intervalMs: 100, ignoreErrors: true },
    );
    return { svc, base };
  } catch (err) {
    clearTimeout(timer);
    await kill(svc, 'SIGKILL');
    throw err;
  }
}

const running = (svc: Service) => svc.proc.exitCode === null && svc.proc.signalCode === null;

/** Sends `signal` (if it still runs) and waits for the exit. Safe to call twice. */
export async function kill(svc: Service | undefined, signal: NodeJS.Signals): Promise<Exit | undefined> {
  if (!svc) return undefined;
  if (running(svc)) svc.proc.kill(signal);
  return svc.exited;
}

/** SIGTERM, and SIGKILL if the graceful shutdown hangs past the deadline. */
export async function stop(svc: Service | undefined): Promise<void> {
  if (!svc) return;
  const timer = setTimeout(() => svc.proc.kill('SIGKILL'), DEADLINE_MS);
  await kill(svc, 'SIGTERM');
  clearTimeout(timer);
}

export async function getJson<T>(base: string, url: string): Promise<T> {
  const res = await fetch(`${base}${url}`, { headers: AUTH });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

/** A rollout plan; every part may be missing, so the title is enough to tell rollouts apart. */
export const planBody = (title: string) =>
  JSON.stringify({
    title,
    scope: 'stack-wide',
    environment: 'fault-suite',
    products: [{ product: 'gateway', fromVersion: '1.4.2', toVersion: '1.5.0' }],
    sequence: [{ id: 's1', order: 1, product: 'gateway', action: 'upgrade gateway', reversible: true }],
  });

/** Records one rollout; its id when the service answered 201. */
export async function createRollout(base: string, title: string): Promise<{ status: number; id?: string }> {
  const res = await fetch(`${base}/api/v1/rollouts`, {
    method: 'POST',
    headers: { ...AUTH, 'Content-Type': 'application/json' },
    body: planBody(title),
  });
  const text = await res.text();
  if (res.status !== 201) return { status: res.status };
  return { status: res.status, id: (JSON.parse(text) as { id: string }).id };
}

/** Records `n` rollouts one after another; each must be answered 201. Their ids, in order. */
export async function createRollouts(base: string, n: number, tag: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await createRollout(base, `${tag} ${i}`);
    if (r.status !== 201 || !r.id) throw new Error(`rollout "${tag} ${i}" was answered ${r.status}`);
    ids.push(r.id);
  }
  return ids;
}

export interface LedgerEntry {
  position: number;
  eventId: string;
  streamId: string;
  type: string;
}

/** The whole ledger, page by page, as the API serves it. */
export async function readLedger(base: string): Promise<LedgerEntry[]> {
  const all: LedgerEntry[] = [];
  let after = 0;
  for (;;) {
    const page = await getJson<{ events: LedgerEntry[]; next: number | null }>(
      base,
      `/api/v1/ledger?after=${after}&limit=1000`,
    );
    all.push(...page.events);
    const last = page.events.at(-1);
    if (!last || page.next === null) return all;
    after = last.position;
  }
}

export const head = (base: string) =>
  getJson<{ position: number; hash: string }>(base, '/api/v1/ledger/head');

export const verifyOnline = (base: string) =>
  getJson<{ ok: boolean; verifiedThrough?: number; checkpointsVerified?: number; brokenAt?: number }>(
    base,
    '/api/v1/ledger/verify',
  );

/** What the sequenced ledger must be whatever happened: positions 1..n, each event once. */
export function ledgerShape(entries: readonly LedgerEntry[]) {
  const gaps = entries.filter((e, i) => e.position !== i + 1).map((e) => e.position);
  const seen = new Set<string>();
  const duplicates: string[] = [];
  for (const e of entries) {
    if (seen.has(e.eventId)) duplicates.push(e.eventId);
    seen.add(e.eventId);
  }
  return { gaps: gaps.slice(0, 10), duplicates: duplicates.slice(0, 10) };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `node <build>/src/cli.js …`, as `npx upgrade-ledger …` runs it. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(buildDir(), 'src/cli.js'), ...args],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), ...env },
        timeout: DEADLINE_MS,
        maxBuffer: 16 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/**
 * Downloads the NDJSON export of the whole ledger and the public keys the service lists, and
 * runs the offline verifier on them, as an auditor would.
 */
export async function verifyOffline(base: string, dir: string): Promise<CliResult> {
  const res = await fetch(`${base}/api/v1/exports/ledger?format=ndjson`, { headers: AUTH });
  if (res.status !== 200) throw new Error(`the export answered ${res.status}`);
  const file = path.join(dir, `export-${randomBytes(4).toString('hex')}.ndjson`);
  await writeFile(file, await res.text());
  const { keys } = await getJson<{ keys: { keyId: string; publicKeyPem: string }[] }>(
    base,
    '/api/v1/ledger/public-keys',
  );
  const keyArgs: string[] = [];
  for (const k of keys) {
    const pem = path.join(dir, `${k.keyId}.pem`);
    await writeFile(pem, k.publicKeyPem);
    keyArgs.push('--public-key', pem);
  }
  return runCli(['verify', file, ...keyArgs]);
}

/** A database of this run's own on the Postgres of DATABASE_URL (named so other runs leave it). */
export async function createPostgresDatabase(
  baseUrl: string,
  what: string,
): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `${testDbPrefix()}fault_${what}_${process.pid}_${randomBytes(3).toString('hex')}`;
  await adminQuery(baseUrl, `create database ${pg.escapeIdentifier(name)}`);
  const u = new URL(baseUrl);
  u.pathname = `/${name}`;
  return {
    name,
    url: u.toString(),
    drop: () => adminQuery(baseUrl, `drop database if exists ${pg.escapeIdentifier(name)} with (force)`),
  };
}

async function adminQuery(baseUrl: string, text: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl(baseUrl) });
  await admin.connect();
  try {
    await admin.query(text);
  } finally {
    await admin.end();
  }
}

/** Runs `sql` on a database and returns its rows. */
export async function query<R extends pg.QueryResultRow>(url: string, text: string): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text)).rows;
  } finally {
    await client.end();
  }
}

/** What the database itself says: every stored event sequenced once, positions 1..head. */
export const LEDGER_TOTALS_SQL = `
  select (select count(*) from event)::int as events,
         (select count(*) from ledger)::int as entries,
         (select count(distinct event_row_id) from ledger)::int as distinct_events,
         (select coalesce(max(position), 0) from ledger)::int as max_position,
         (select position from sequencer_state where id = 1)::int as head,
         (select count(*) from event e
           where not exists (select 1 from ledger l where l.event_row_id = e.id))::int as unsequenced`;

export interface LedgerTotals {
  events: number;
  entries: number;
  distinct_events: number;
  max_position: number;
  head: number;
  unsequenced: number;
}

/** What one request under a fault got: its status (or why there was none) and its Retry-After. */
export interface Answer {
  /** The HTTP status, or `hung` (no answer within the client's timeout), or `error` (no HTTP answer). */
  status: number | 'hung' | 'error';
  id?: string;
  retryAfter?: string | null;
  detail?: string;
}

/** Fetches with a client-side deadline: a request that gets no answer within it is `hung`. */
async function answerOf(
  url: string,
  init: RequestInit,
  timeoutMs: number,
): Promise<{ answer: Answer; text: string }> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    return { answer: { status: res.status, retryAfter: res.headers.get('retry-after') }, text };
  } catch (err) {
    const name = (err as { name?: string } | null)?.name;
    const hung = name === 'TimeoutError' || name === 'AbortError';
    return {
      answer: { status: hung ? 'hung' : 'error', detail: err instanceof Error ? err.message : String(err) },
      text: '',
    };
  }
}

/**
 * Records one rollout, as createRollout does, but never waits longer than `timeoutMs` for the
 * answer and keeps what a client under a fault needs to see: the status and the Retry-After.
 */
export async function postRollout(
  base: string,
  title: string,
  timeoutMs: number,
  token = TOKEN,
): Promise<Answer> {
  const { answer, text } = await answerOf(
    `${base}/api/v1/rollouts`,
    {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: planBody(title),
    },
    timeoutMs,
  );
  if (answer.status === 201) answer.id = (JSON.parse(text) as { id: string }).id;
  else if (typeof answer.status === 'number') answer.detail = text.slice(0, 300);
  return answer;
}

/** GET with a client-side deadline (a health probe, say); the status, or `hung` / `error`. */
export async function probe(base: string, url: string, timeoutMs: number): Promise<Answer> {
  return (await answerOf(`${base}${url}`, { headers: AUTH }, timeoutMs)).answer;
}

/** Every rollout id the list (the rollout-summary read model) serves, page by page. */
export async function listedRolloutIds(base: string, environment = 'fault-suite'): Promise<Set<string>> {
  const ids = new Set<string>();
  let cursor: string | null = null;
  for (;;) {
    const q = new URLSearchParams({ environment, limit: '200' });
    if (cursor) q.set('cursor', cursor);
    const page = await getJson<{ items: { id: string }[]; next: string | null }>(
      base,
      `/api/v1/rollouts?${q.toString()}`,
    );
    for (const item of page.items) ids.add(item.id);
    if (page.next === null) return ids;
    cursor = page.next;
  }
}

/** Creates a stored API key (looked up in the database, unlike ADMIN_TOKEN); returns the key. */
export async function createApiKey(base: string, role: 'engineer' | 'auditor' | 'admin'): Promise<string> {
  const res = await fetch(`${base}/api/v1/api-keys`, {
    method: 'POST',
    headers: { ...AUTH, 'Content-Type': 'application/json' },
    body: JSON.stringify({ role, name: `fault-${role}-${randomBytes(3).toString('hex')}` }),
  });
  const text = await res.text();
  if (res.status !== 201)
    throw new Error(`POST /api/v1/api-keys answered ${res.status}: ${text.slice(0, 500)}`);
  return (JSON.parse(text) as { key: string }).key;
}
