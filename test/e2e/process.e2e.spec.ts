import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { type DatabaseHandle, wrapPGlite } from '../../src/database/database.js';
import { migrateToLatest } from '../../src/database/migrator.js';
import { EventStore } from '../../src/event-store/event-store.repository.js';
import { buildServer, serviceEntry, unbundledEntry } from '../support/build.js';
import { createTestDatabase, onPostgres, type TestDatabase } from '../support/database.js';
import { loadScenarios } from '../support/scenarios.js';
import { eventually as poll } from '../support/wait.js';

/**
 * The real server as a child process: built with the project's own compiler settings
 * (tsconfig.build.json, as `nest build` does) into a directory of this file's own, so the shared
 * dist/ is never wiped under anyone's feet, bundled as `npm run build` does, then started as
 * production starts it: `node <build>/src/bundle/main.js`.
 * On PGlite it opens its own on-disk database in a temporary DATA_DIR; with DATABASE_URL set it
 * gets a fresh Postgres database of its own.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TOKEN = `proc-admin-${randomBytes(12).toString('hex')}`;
// Enough that verifying the chain takes a while: the request SIGTERM must let finish.
const SEEDED = 30_000;

let buildDir: string;

interface Child {
  proc: ChildProcess;
  output(): string;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function start(env: Record<string, string>): Child {
  return showOnFailure(spawnServer(env));
}

/** A failing test shows what the server said. */
function showOnFailure(child: Child): Child {
  onTestFailed(() => {
    console.error(`server output (last 6000 characters):\n${child.output().slice(-6000)}`);
  });
  return child;
}

function spawnServer(
  env: Record<string, string>,
  entry = serviceEntry(buildDir),
  nodeArgs: string[] = [],
): Child {
  let out = '';
  let err = '';
  const proc = spawn(process.execPath, [...nodeArgs, entry], {
    cwd: ROOT,
    // Only what the service needs: nothing of the test runner's environment leaks in.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout?.setEncoding('utf8').on('data', (c: string) => {
    out += c;
  });
  proc.stderr?.setEncoding('utf8').on('data', (c: string) => {
    err += c;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal }));
  });
  return { proc, exited, output: () => out + err, stdout: () => out, stderr: () => err };
}

/** A child process may not answer yet (connection refused): keep asking, a little longer. */
const eventually = <T>(what: string, probe: () => Promise<T | undefined>) =>
  poll(what, probe, { deadlineMs: 60_000, intervalMs: 50, ignoreErrors: true });

/** The port Fastify reports it listens on (PORT=0 lets the system choose a free one). */
function listeningPort(child: Child): Promise<number> {
  return Promise.race([
    eventually('the server to listen', async () => {
      const m = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(child.stdout());
      return m ? Number(m[1]) : undefined;
    }),
    child.exited.then(({ code, signal }) => {
      throw new Error(`the server exited (${code ?? signal}) before listening`);
    }),
  ]);
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request on a connection of its own; a `json` body is sent as application/json. */
function send(
  port: number,
  method: 'GET' | 'POST',
  url: string,
  headers: Record<string, string> = {},
  json?: unknown,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const withType = json === undefined ? headers : { 'content-type': 'application/json', ...headers };
    const req = http.request(
      { host: '127.0.0.1', port, path: url, method, headers: withType, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(json === undefined ? undefined : JSON.stringify(json));
  });
}

const get = (port: number, url: string, headers: Record<string, string> = {}) =>
  send(port, 'GET', url, headers);
const postJson = (port: number, url: string, body: unknown, headers: Record<string, string> = {}) =>
  send(port, 'POST', url, headers, body);

function requestIdOf(child: Child, url: string): string | undefined {
  for (const line of child.stdout().split('\n')) {
    if (!line.includes('"incoming request"') || !line.includes(`"url":"${url}"`)) continue;
    return (JSON.parse(line) as { requestId: string }).requestId;
  }
  return undefined;
}

/** When the service logged a request as completed (its own clock, epoch ms), if it has. */
function completedAt(child: Child, requestId: string): number | undefined {
  const line = child
    .stdout()
    .split('\n')
    .find((l) => l.includes('"request completed"') && l.includes(`"requestId":"${requestId}"`));
  return line ? (JSON.parse(line) as { time: number }).time : undefined;
}

/** Appends `n` events, as the service's event store would, before the service starts. */
async function seed(handle: DatabaseHandle, n: number): Promise<void> {
  const store = new EventStore(handle);
  for (let i = 0; i < n; i += 1000) {
    await store.append(
      `seeded-${i / 1000}`,
      Array.from({ length: Math.min(1000, n - i) }, (_, j) => ({ type: 'Seeded', data: { i: i + j } })),
    );
  }
}

beforeAll(async () => {
  buildDir = await buildServer('e2e-build');
});
afterAll(async () => {
  if (buildDir) await rm(buildDir, { recursive: true, force: true });
});

describe('the server process: configuration', () => {
  it('refuses a bad PORT: exits non-zero, naming PORT on stderr', async () => {
    const child = start({ PORT: 'abc', ADMIN_TOKEN: TOKEN, DATA_DIR: path.join(tmpdir(), 'never-used') });
    const { code } = await child.exited;
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    expect(child.stderr()).toMatch(/\bPORT\b/);
    expect(child.stdout()).not.toMatch(/listening/i);
  });

  it('names every bad variable, without echoing a rejected secret', async () => {
    const shortSecret = 'tooShort-Q7x';
    const child = start({
      PORT: '70000',
      ADMIN_TOKEN: shortSecret,
      LOG_LEVEL: 'loud',
      DATA_DIR: path.join(tmpdir(), 'never-used'),
    });
    const { code } = await child.exited;
    expect(code).not.toBe(0);
    const stderr = child.stderr();
    expect(stderr).toMatch(/\bPORT\b/);
    expect(stderr).toMatch(/\bADMIN_TOKEN\b/);
    expect(stderr).toMatch(/\bLOG_LEVEL\b/);
    expect(child.output()).not.toContain(shortSecret);
  });
});

describe('the server process: the bundle production runs', () => {
  it('serves what its own modules serve: the OpenAPI document, a rejected body, a recorded rollout, its reports', async () => {
    const dirs = [
      await mkdtemp(path.join(tmpdir(), 'upgrade-ledger-bundle-')),
      await mkdtemp(path.join(tmpdir(), 'upgrade-ledger-modules-')),
    ];
    // Each on its own new embedded database: the bundle must also run the migrations.
    const env = (dataDir: string) => ({
      PORT: '0',
      HOST: '127.0.0.1',
      ADMIN_TOKEN: TOKEN,
      DATA_DIR: dataDir,
    });
    const children = [
      start(env(dirs[0] as string)),
      showOnFailure(spawnServer(env(dirs[1] as string), unbundledEntry(buildDir))),
    ];
    try {
      const auth = { Authorization: `Bearer ${TOKEN}` };
      const plan = loadScenarios()[0]?.calls[0]?.body;
      const seen = [];
      for (const child of children) {
        const port = await listeningPort(child);
        await eventually('/health/ready to answer 200', async () =>
          (await get(port, '/health/ready')).status === 200 ? true : undefined,
        );
        const spec = await get(port, '/api/openapi.json', auth);
        expect(spec.status).toBe(200);
        const rejected = await postJson(port, '/api/v1/rollouts', { product: 42 }, auth);
        const planned = await postJson(port, '/api/v1/rollouts', plan, auth);
        // The PDF renderer (and PDFKit behind it) loads on the first PDF, evaluated only then;
        // the HTML report reads its templates from reports/.
        const report = `/api/v1/reports/rollouts/${(JSON.parse(planned.body) as { id: string }).id}`;
        const pdf = await get(port, `${report}?format=pdf`, auth);
        const html = await get(port, report, { ...auth, Accept: 'text/html' });
        expect(pdf.status, pdf.body.slice(0, 300)).toBe(200);
        expect(pdf.headers['content-type']).toMatch(/^application\/pdf/);
        expect(pdf.body.startsWith('%PDF-')).toBe(true);
        expect(html.status, html.body.slice(0, 300)).toBe(200);
        expect(html.body).toMatch(/<html[^>]*>/i);
        seen.push({
          spec: JSON.parse(spec.body) as unknown,
          rejected: { status: rejected.status, body: JSON.parse(rejected.body) as Record<string, unknown> },
          planned: { status: planned.status, body: JSON.parse(planned.body) as Record<string, unknown> },
        });
      }
      const [bundled, modules] = seen as [(typeof seen)[0], (typeof seen)[0]];
      // Nest names schemas after classes and reads constructor types from decorator metadata: a
      // bundler that renamed a class or dropped metadata would change this document.
      expect(bundled.spec).toEqual(modules.spec);
      expect(Object.keys((bundled.spec as { paths: object }).paths)).toContain('/api/v1/rollouts');
      // The same problem, naming the same field (the request id is each request's own).
      const { requestId: _a, ...bundledProblem } = bundled.rejected.body;
      const { requestId: _b, ...modulesProblem } = modules.rejected.body;
      expect(bundled.rejected.status).toBe(400);
      expect(bundledProblem).toEqual(modulesProblem);
      expect(bundledProblem).toMatchObject({ errors: [{ field: 'product' }] });
      expect(bundled.planned.status).toBe(201);
      expect(modules.planned.status).toBe(201);
      // The bundle compiled with the code cache its build wrote: V8 took it, and said nothing.
      expect(children[0]?.stderr()).not.toContain('UPGRADE_LEDGER_CODE_CACHE');
      // Strict, as the modules are (ES modules always are): the directive is the file's first line.
      const bundleText = await readFile(path.join(buildDir, 'src/bundle/service.cjs'), 'utf8');
      expect(bundleText.slice(0, bundleText.indexOf('\n'))).toBe('"use strict";');
    } finally {
      for (const child of children) {
        if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGTERM');
        await child.exited;
      }
      for (const dir of dirs) await rm(dir, { recursive: true, force: true });
    }
  });

  it('starts without its code cache when V8 refuses it, and says so', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'upgrade-ledger-nocache-'));
    // A V8 flag the build did not run with: V8 refuses the cache made without it.
    const child = showOnFailure(
      spawnServer(
        { PORT: '0', HOST: '127.0.0.1', ADMIN_TOKEN: TOKEN, DATA_DIR: dataDir },
        serviceEntry(buildDir),
        ['--max-old-space-size=1000'],
      ),
    );
    try {
      const port = await listeningPort(child);
      await eventually('/health/ready to answer 200', async () =>
        (await get(port, '/health/ready')).status === 200 ? true : undefined,
      );
      const spec = await get(port, '/api/openapi.json', { Authorization: `Bearer ${TOKEN}` });
      expect(spec.status).toBe(200);
      expect(child.stderr()).toMatch(/UPGRADE_LEDGER_CODE_CACHE.*V8 rejected the code cache/);
    } finally {
      if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGTERM');
      await child.exited;
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("builds its code cache on a throwaway database, whatever the builder's configuration names, with its NODE_OPTIONS", async () => {
    // The build starts the service once to write the cache: it must not touch the database, the
    // data directory or the port that the environment it builds in names, nor leave its own
    // database behind; and V8 flags in NODE_OPTIONS must reach the cache, so that a start with the
    // same flags takes it. In a copy of the build: the other tests start the shared one.
    const copy = `${buildDir}-flags`;
    const dataDir = await mkdtemp(path.join(tmpdir(), 'upgrade-ledger-builder-'));
    const flags = '--max-old-space-size=1000';
    const { NODE_OPTIONS: _, ...env } = process.env;
    let child: Child | undefined;
    try {
      await cp(buildDir, copy, { recursive: true });
      await promisify(execFile)(process.execPath, [path.join(copy, 'src/build/bundle.js')], {
        cwd: ROOT,
        env: {
          ...env,
          DATABASE_URL: 'postgres://build-must-not-connect@127.0.0.1:1/none',
          DATA_DIR: dataDir,
          PORT: 'not-a-port',
          SNAPSHOT_TARGETS: 'not a target list',
          NODE_OPTIONS: flags,
        },
      });
      expect(await readdir(dataDir)).toEqual([]);
      // The bundle, its loader, their maps, the licence notices and the cache: the build's
      // database is gone.
      expect((await readdir(path.join(copy, 'src/bundle'))).sort()).toEqual([
        'main.js',
        'main.js.map',
        'service.cjs',
        'service.cjs.LEGAL.txt',
        'service.cjs.cache',
        'service.cjs.map',
      ]);
      // ASCII throughout, so that the start reads it into a one-byte string (asciiComments).
      const bundleText = await readFile(path.join(copy, 'src/bundle/service.cjs'), 'latin1');
      // biome-ignore lint/suspicious/noControlCharactersInRegex: the range is the point
      expect(bundleText.match(/[^\u0000-\u007f]/)?.index).toBeUndefined();
      child = showOnFailure(
        spawnServer(
          { PORT: '0', HOST: '127.0.0.1', ADMIN_TOKEN: TOKEN, DATA_DIR: dataDir, NODE_OPTIONS: flags },
          serviceEntry(copy),
        ),
      );
      const port = await listeningPort(child);
      await eventually('/health/ready to answer 200', async () =>
        (await get(port, '/health/ready')).status === 200 ? true : undefined,
      );
      expect(child.stderr()).not.toContain('UPGRADE_LEDGER_CODE_CACHE');
    } finally {
      if (child && child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGTERM');
      await child?.exited;
      await rm(copy, { recursive: true, force: true });
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 240_000);
});

describe('the server process: running and shutting down', () => {
  let dataDir: string;
  let db: TestDatabase | undefined;
  let env: Record<string, string>;
  let child: Child | undefined;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'upgrade-ledger-proc-'));
    env = { PORT: '0', HOST: '127.0.0.1', ADMIN_TOKEN: TOKEN, DATA_DIR: dataDir, LOG_LEVEL: 'trace' };
    if (onPostgres) {
      db = await createTestDatabase();
      await seed(db.handle, SEEDED);
      env.DATABASE_URL = db.url!;
    } else {
      // The same on-disk database the service will open (DATA_DIR/pgdata), seeded before it starts.
      const handle = await wrapPGlite(await PGlite.create(path.join(dataDir, 'pgdata')));
      await migrateToLatest(handle.db);
      await seed(handle, SEEDED);
      await handle.close();
    }
  });
  afterAll(async () => {
    if (child && child.proc.exitCode === null && child.proc.signalCode === null) {
      child.proc.kill('SIGKILL');
      await child.exited;
    }
    await db?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('starts, answers /health/ready, and never writes ADMIN_TOKEN to its output', async () => {
    child = start(env);
    const port = await listeningPort(child);
    const ready = await eventually('/health/ready to answer 200', async () => {
      const r = await get(port, '/health/ready');
      return r.status === 200 ? r : undefined;
    });
    expect(JSON.parse(ready.body)).toMatchObject({
      status: 'ready',
      database: onPostgres ? 'postgres' : 'pglite',
      checks: { database: { ok: true }, migrations: { ok: true } },
    });

    // Requests that carry the key, right or wrong, in every shape a client might send it.
    const auth = { Authorization: `Bearer ${TOKEN}` };
    const traced = await get(port, '/api/v1/ledger?limit=1', { ...auth, 'x-request-id': 'proc-trace-42' });
    expect(traced.status).toBe(200);
    expect(traced.headers['x-request-id']).toBe('proc-trace-42');
    expect((await get(port, '/metrics', auth)).status).toBe(200);
    expect((await get(port, '/api/v1/ledger?limit=0', auth)).status).toBe(400);
    expect((await get(port, '/api/v1/ledger/public-keys/zz', auth)).status).toBe(400);
    expect((await get(port, '/nowhere', auth)).status).toBe(404);
    expect((await get(port, '/api/v1/ledger', { Authorization: `Bearer ${TOKEN}-wrong` })).status).toBe(401);
    expect((await get(port, '/api/v1/ledger', { Authorization: `bearer ${TOKEN}` })).status).toBe(200);
    expect((await get(port, '/api/v1/ledger', { Authorization: TOKEN })).status).toBe(401);
    expect((await get(port, '/api/v1/ledger', { Authorization: `Basic ${TOKEN}` })).status).toBe(401);
    expect((await get(port, '/api/v1/ledger', { 'X-Api-Key': TOKEN, Cookie: `token=${TOKEN}` })).status).toBe(
      401,
    );

    // Every request was logged, structured, with its request id; the key never was.
    await eventually('the request logs', async () =>
      child!.stdout().split('"request completed"').length > 10 ? true : undefined,
    );
    const lines = child.stdout().trim().split('\n');
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
    const traceLines = lines.map((l) => JSON.parse(l)).filter((l) => l.requestId === 'proc-trace-42');
    expect(traceLines.map((l) => l.msg)).toEqual(
      expect.arrayContaining(['incoming request', 'request completed']),
    );
    expect(traceLines.every((l) => typeof l.level === 'number' && typeof l.time === 'number')).toBe(true);
    expect(child.output()).not.toContain(TOKEN);
  });

  it('on SIGTERM lets an in-flight request finish, ends live tails, and exits cleanly', async () => {
    const c = showOnFailure(child!);
    const port = await listeningPort(c);
    const auth = { Authorization: `Bearer ${TOKEN}` };
    // The seeded events are sequenced by the service at start.
    await eventually('the seeded events to be sequenced', async () => {
      const head = JSON.parse((await get(port, '/api/v1/ledger/head', auth)).body) as { position: number };
      return head.position === SEEDED ? true : undefined;
    });

    // A live tail, caught up and waiting for more.
    const tail = await new Promise<{ frames: () => string; ended: Promise<'end' | 'aborted'> }>(
      (resolve, reject) => {
        const req = http.get(
          {
            host: '127.0.0.1',
            port,
            path: `/api/v1/ledger/stream?after=${SEEDED - 2}`,
            headers: auth,
            agent: false,
          },
          (res) => {
            if (res.statusCode !== 200) reject(new Error(`the stream answered ${res.statusCode}`));
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => {
              text += chunk;
            });
            const ended = new Promise<'end' | 'aborted'>((done) => {
              res.on('end', () => done('end'));
              res.on('aborted', () => done('aborted'));
              res.on('error', () => done('aborted'));
            });
            resolve({ frames: () => text, ended });
          },
        );
        req.on('error', reject);
      },
    );
    await eventually('the tail to catch up', async () =>
      tail.frames().includes(`id: ${SEEDED}\n`) ? true : undefined,
    );

    // A slow request: verifying the whole chain of SEEDED entries.
    const verifying = get(port, '/api/v1/ledger/verify', auth);
    const verifyId = await eventually('the verify request to arrive', async () =>
      requestIdOf(c, '/api/v1/ledger/verify'),
    );
    const signalledAt = Date.now();
    c.proc.kill('SIGTERM');

    const verified = await verifying;
    expect(verified.status).toBe(200);
    expect(JSON.parse(verified.body)).toMatchObject({ ok: true, verifiedThrough: SEEDED });
    // It was still being answered when the signal was sent: the graceful path was exercised.
    // Judged by the service's own timestamp, not by when its log line reached this process.
    const doneAt = await eventually('the verify request to be logged as completed', async () =>
      completedAt(c, verifyId),
    );
    expect(doneAt).toBeGreaterThan(signalledAt);

    // The live tail is ended by the server (not cut), after exactly the entries it had.
    expect(await tail.ended).toBe('end');
    expect(tail.frames().match(/^id: \d+$/gm)).toEqual([`id: ${SEEDED - 1}`, `id: ${SEEDED}`]);

    // Exit after a graceful close: 0, or the SIGTERM re-raised once everything was closed;
    // never the grace-period exit (1) that a hung shutdown ends in.
    const exit = await c.exited;
    expect(exit.code === 0 || (exit.code === null && exit.signal === 'SIGTERM')).toBe(true);
    expect(c.output()).not.toContain('shutdown grace period over');
    expect(c.output()).not.toContain(TOKEN);
    await expect(get(port, '/health/live')).rejects.toThrow(/ECONNREFUSED/);
  });

  it('starts again on the same database with the ledger intact', async () => {
    child = start(env);
    const port = await listeningPort(child);
    const auth = { Authorization: `Bearer ${TOKEN}` };
    await eventually('/health/ready to answer 200', async () =>
      (await get(port, '/health/ready')).status === 200 ? true : undefined,
    );
    const verified = JSON.parse((await get(port, '/api/v1/ledger/verify', auth)).body);
    expect(verified).toMatchObject({ ok: true, verifiedThrough: SEEDED });
    child.proc.kill('SIGTERM');
    const exit = await child.exited;
    expect(exit.code === 0 || (exit.code === null && exit.signal === 'SIGTERM')).toBe(true);
    expect(child.output()).not.toContain(TOKEN);
  });
});
