import { randomUUID } from 'node:crypto';
import { SSE_METADATA } from '@nestjs/common/constants.js';
import { sql } from 'kysely';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '../../src/auth/principal.js';
import { type SamplePlatform, startSamplePlatform } from '../fixtures/sample-platform.js';
import { ADMIN_TOKEN, AUTH, startTestApp, type TestApp } from '../support/app.js';
import { bearer, createKey } from '../support/auth.js';
import { controllerRoutes } from '../support/controller-routes.js';

// Role matrix: every endpoint × every caller (no key, and a stored key of each role). The table
// below is the expected policy, written out by hand; the first tests prove it lists every route
// the app serves (from the OpenAPI document and from Nest's own controller metadata), so a new
// route cannot be added without deciding who may call it. Each call is a real one: writes go to
// a rollout of their own in the state the write needs, so an allowed caller gets the route's
// success status, and a refused one changes nothing.

type Caller = 'none' | Role;
const CALLERS: readonly Caller[] = ['none', 'engineer', 'auditor', 'admin', 'ingest'];

type Access = 'public' | readonly Role[];
const READERS: readonly Role[] = ['admin', 'engineer', 'auditor'];
const WRITERS: readonly Role[] = ['admin', 'engineer'];
const AUDITORS: readonly Role[] = ['admin', 'auditor'];
const ADMIN_ONLY: readonly Role[] = ['admin'];
const INGESTERS: readonly Role[] = ['admin', 'ingest'];

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

interface Call {
  url: string;
  body?: object;
  headers?: Record<string, string>;
}

interface RouteCase {
  method: Method;
  /** As the OpenAPI document writes it: /api/v1/rollouts/{id}. */
  route: string;
  access: Access;
  /** The status an allowed caller gets for the prepared call. */
  ok: number;
  /** Sets up what the call needs (as the ADMIN_TOKEN, unless said) and returns the call itself. */
  prepare: (caller: Caller) => Promise<Call>;
  /** Served by the Swagger setup, not by a controller: absent from the document and from Nest. */
  docs?: true;
  /** A Server-Sent Events stream: never ends, so it is read over a real socket and cut. */
  sse?: true;
  /**
   * A page of the auditor console: not in the OpenAPI document; without a valid key it sends
   * the browser to sign in (303) instead of a 401, and a refusal is an HTML page.
   */
  console?: true;
}

const R = '/api/v1/rollouts';
const PLAN = { title: 'role matrix', sequence: [{ id: 's1', order: 1 }] };
const READBACK = {
  phase: 'pre',
  surface: 'version-truth',
  expected: { a: '1' },
  observed: { a: '1' },
  verdict: 'pass',
};

/** A valid CloudEvent carrying a CDEvent that names no rollout (it lands on the unattributed stream). */
const cloudEvent = () => ({
  specversion: '1.0',
  id: randomUUID(),
  source: '/role-matrix',
  type: 'dev.cdevents.environment.modified.0.2.0',
  datacontenttype: 'application/json',
  data: {
    context: {
      version: '0.4.1',
      id: randomUUID(),
      source: '/role-matrix',
      type: 'dev.cdevents.environment.modified.0.2.0',
      timestamp: new Date().toISOString(),
    },
    subject: { id: 'role-matrix-env', type: 'environment', content: {} },
  },
});

let t: TestApp;
let baseUrl: string;
const keys = {} as Record<Role, string>;
/** A rollout that exists, for the read routes. */
let readable: string;
let signingKeyId: string;
let projection: string;
/** The platform the app snapshots, and one snapshot of it, for the snapshot routes. */
let platform: SamplePlatform;
let snapshotId: string;

async function admin(method: 'post' | 'put', url: string, body?: object, expected = 200) {
  const res = await request(t.server)[method](url).set(AUTH).send(body);
  expect(res.status, `${method} ${url}: ${JSON.stringify(res.body)}`).toBe(expected);
  return res.body as { id: string };
}

/** Waits (with a generous deadline, not a timed assertion) until the rollout has a ledger position. */
async function sequenced(id: string): Promise<void> {
  const until = Date.now() + 30_000;
  for (;;) {
    const res = await request(t.server).get(`${R}/${id}`).set(AUTH).expect(200);
    if (res.body.lastPosition !== null) return;
    if (Date.now() > until) throw new Error(`rollout ${id} was never sequenced`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

type State = 'planned' | 'in_progress' | 'step_running' | 'rolling_back';

/** A new rollout in the given state (made by the ADMIN_TOKEN); its id. */
async function rolloutIn(state: State): Promise<string> {
  const { id } = await admin('post', R, PLAN, 201);
  if (state === 'planned') return id;
  await admin('post', `${R}/${id}/start`);
  if (state === 'step_running') await admin('post', `${R}/${id}/steps/s1/start`);
  if (state === 'rolling_back') await admin('post', `${R}/${id}/rollbacks`, { reason: 'set up' });
  return id;
}

const at = (state: State, tail: string, body?: object) => async (): Promise<Call> => ({
  url: `${R}/${await rolloutIn(state)}${tail}`,
  body,
});
const plain = (url: string | (() => string), body?: object) => async (): Promise<Call> => ({
  url: typeof url === 'string' ? url : url(),
  body,
});

/** The expected policy. Keep in the order a reader would look for a route. */
const TABLE: RouteCase[] = [
  // health: public
  { method: 'GET', route: '/health/live', access: 'public', ok: 200, prepare: plain('/health/live') },
  { method: 'GET', route: '/health/ready', access: 'public', ok: 200, prepare: plain('/health/ready') },

  // API description: readers
  {
    method: 'GET',
    route: '/api/openapi.json',
    access: READERS,
    ok: 200,
    docs: true,
    prepare: plain('/api/openapi.json'),
  },
  {
    method: 'GET',
    route: '/api/openapi.yaml',
    access: READERS,
    ok: 200,
    docs: true,
    prepare: plain('/api/openapi.yaml'),
  },
  { method: 'GET', route: '/api/docs', access: READERS, ok: 200, docs: true, prepare: plain('/api/docs') },
  {
    method: 'GET',
    route: '/api/docs/swagger-ui.css',
    access: READERS,
    ok: 200,
    docs: true,
    prepare: plain('/api/docs/swagger-ui.css'),
  },

  // metrics: readers
  { method: 'GET', route: '/metrics', access: READERS, ok: 200, prepare: plain('/metrics') },

  // rollouts, reads: readers
  { method: 'GET', route: R, access: READERS, ok: 200, prepare: plain(`${R}?limit=5`) },
  { method: 'GET', route: `${R}/{id}`, access: READERS, ok: 200, prepare: plain(() => `${R}/${readable}`) },
  {
    method: 'GET',
    route: `${R}/{id}/events`,
    access: READERS,
    ok: 200,
    prepare: plain(() => `${R}/${readable}/events`),
  },

  // rollouts, writes: engineer (and admin)
  { method: 'POST', route: R, access: WRITERS, ok: 201, prepare: plain(R, PLAN) },
  {
    method: 'PUT',
    route: `${R}/{id}/plan`,
    access: WRITERS,
    ok: 200,
    prepare: at('planned', '/plan', { ...PLAN, title: 'revised' }),
  },
  {
    method: 'POST',
    route: `${R}/{id}/approvals`,
    access: WRITERS,
    ok: 200,
    prepare: at('planned', '/approvals', { comment: 'ok' }),
  },
  {
    method: 'POST',
    route: `${R}/{id}/readbacks`,
    access: WRITERS,
    ok: 200,
    prepare: at('planned', '/readbacks', READBACK),
  },
  { method: 'POST', route: `${R}/{id}/start`, access: WRITERS, ok: 200, prepare: at('planned', '/start') },
  {
    method: 'POST',
    route: `${R}/{id}/steps/{stepId}/start`,
    access: WRITERS,
    ok: 200,
    prepare: at('in_progress', '/steps/s1/start'),
  },
  {
    method: 'POST',
    route: `${R}/{id}/steps/{stepId}/complete`,
    access: WRITERS,
    ok: 200,
    prepare: at('step_running', '/steps/s1/complete'),
  },
  {
    method: 'POST',
    route: `${R}/{id}/steps/{stepId}/fail`,
    access: WRITERS,
    ok: 200,
    prepare: at('step_running', '/steps/s1/fail', { reason: 'broke' }),
  },
  {
    method: 'POST',
    route: `${R}/{id}/path-verifications`,
    access: WRITERS,
    ok: 200,
    prepare: at('in_progress', '/path-verifications', { path: 'user signs in', verdict: 'pass' }),
  },
  {
    method: 'POST',
    route: `${R}/{id}/rollbacks`,
    access: WRITERS,
    ok: 200,
    prepare: at('in_progress', '/rollbacks', { reason: 'undo' }),
  },
  {
    method: 'POST',
    route: `${R}/{id}/rollbacks/complete`,
    access: WRITERS,
    ok: 200,
    prepare: at('rolling_back', '/rollbacks/complete'),
  },
  {
    method: 'POST',
    route: `${R}/{id}/complete`,
    access: WRITERS,
    ok: 200,
    prepare: at('in_progress', '/complete'),
  },
  {
    method: 'POST',
    route: `${R}/{id}/abort`,
    access: WRITERS,
    ok: 200,
    prepare: at('planned', '/abort', { reason: 'freeze' }),
  },

  // ledger: readers
  { method: 'GET', route: '/api/v1/ledger', access: READERS, ok: 200, prepare: plain('/api/v1/ledger') },
  {
    method: 'GET',
    route: '/api/v1/ledger/head',
    access: READERS,
    ok: 200,
    prepare: plain('/api/v1/ledger/head'),
  },
  {
    method: 'GET',
    route: '/api/v1/ledger/checkpoints',
    access: READERS,
    ok: 200,
    prepare: plain('/api/v1/ledger/checkpoints'),
  },
  {
    method: 'GET',
    route: '/api/v1/ledger/public-key',
    access: READERS,
    ok: 200,
    prepare: plain('/api/v1/ledger/public-key'),
  },
  {
    method: 'GET',
    route: '/api/v1/ledger/public-keys',
    access: READERS,
    ok: 200,
    prepare: plain('/api/v1/ledger/public-keys'),
  },
  {
    method: 'GET',
    route: '/api/v1/ledger/public-keys/{keyId}',
    access: READERS,
    ok: 200,
    prepare: plain(() => `/api/v1/ledger/public-keys/${signingKeyId}`),
  },
  {
    method: 'GET',
    route: '/api/v1/ledger/verify',
    access: READERS,
    ok: 200,
    prepare: plain('/api/v1/ledger/verify'),
  },
  {
    method: 'GET',
    route: '/api/v1/ledger/stream',
    access: READERS,
    ok: 200,
    sse: true,
    prepare: plain('/api/v1/ledger/stream'),
  },

  // reports: readers; ledger exports: auditor (and admin), not engineer
  {
    method: 'GET',
    route: '/api/v1/reports/rollouts/{id}',
    access: READERS,
    ok: 200,
    // An engineer reads the reports of the rollouts it recorded: it asks about one of its own.
    // A report counts sequenced events only: the rollout is in the ledger before it is asked.
    prepare: async (caller) => {
      const as = caller === 'engineer' ? bearer(keys.engineer) : AUTH;
      const created = await request(t.server).post(R).set(as).send(PLAN).expect(201);
      await sequenced(created.body.id);
      return { url: `/api/v1/reports/rollouts/${created.body.id}` };
    },
  },
  {
    method: 'GET',
    route: '/api/v1/reports/compliance',
    access: AUDITORS,
    ok: 200,
    prepare: plain('/api/v1/reports/compliance'),
  },
  {
    method: 'GET',
    route: '/api/v1/exports/ledger',
    access: AUDITORS,
    ok: 200,
    prepare: plain('/api/v1/exports/ledger'),
  },

  // ingestion: the ingest role (and admin) sends CloudEvents; readers list what matched no
  // rollout; engineers attach it to one
  {
    method: 'POST',
    route: '/api/v1/ingest/cloudevents',
    access: INGESTERS,
    ok: 202,
    prepare: async () => ({
      url: '/api/v1/ingest/cloudevents',
      headers: { 'Content-Type': 'application/cloudevents+json' },
      body: cloudEvent(),
    }),
  },
  {
    method: 'GET',
    route: '/api/v1/ingest/unattributed',
    access: READERS,
    ok: 200,
    prepare: plain('/api/v1/ingest/unattributed'),
  },
  {
    method: 'POST',
    route: '/api/v1/ingest/unattributed/{id}/attach',
    access: WRITERS,
    ok: 200,
    // An unattributed CloudEvent of its own (sent by admin, naming no rollout) and a rollout.
    prepare: async () => {
      const sent = await request(t.server)
        .post('/api/v1/ingest/cloudevents')
        .set(AUTH)
        .set('Content-Type', 'application/cloudevents+json')
        .send(cloudEvent())
        .expect(202);
      const id = await rolloutIn('in_progress');
      return {
        url: `/api/v1/ingest/unattributed/${sent.body.events[0].eventIds[0]}/attach`,
        body: { rolloutId: id },
      };
    },
  },

  // API keys: admin only
  {
    method: 'POST',
    route: '/api/v1/api-keys',
    access: ADMIN_ONLY,
    ok: 201,
    prepare: plain('/api/v1/api-keys', { role: 'auditor', name: 'made-in-the-matrix' }),
  },
  {
    method: 'GET',
    route: '/api/v1/api-keys',
    access: ADMIN_ONLY,
    ok: 200,
    prepare: plain('/api/v1/api-keys'),
  },
  {
    method: 'DELETE',
    route: '/api/v1/api-keys/{id}',
    access: ADMIN_ONLY,
    ok: 204,
    // A key of its own to revoke: never one of the callers'.
    prepare: async () => ({
      url: `/api/v1/api-keys/${(await createKey(t.server, { role: 'auditor', name: 'to-revoke' })).id}`,
    }),
  },

  // shared-truth snapshots and drift: readers; taking a snapshot: writers
  {
    method: 'POST',
    route: '/api/v1/snapshots',
    access: WRITERS,
    ok: 200,
    prepare: plain('/api/v1/snapshots', {}),
  },
  {
    method: 'GET',
    route: '/api/v1/snapshots',
    access: READERS,
    ok: 200,
    prepare: plain('/api/v1/snapshots'),
  },
  {
    method: 'GET',
    route: '/api/v1/snapshots/{id}',
    access: READERS,
    ok: 200,
    prepare: plain(() => `/api/v1/snapshots/${snapshotId}`),
  },
  { method: 'GET', route: '/api/v1/drift', access: READERS, ok: 200, prepare: plain('/api/v1/drift') },
  {
    method: 'GET',
    route: '/api/v1/drift/timeline',
    access: READERS,
    ok: 200,
    prepare: plain('/api/v1/drift/timeline'),
  },

  // the service's own shared-truth surfaces: readers
  ...[
    '/api/v1/platform/version-truth',
    '/api/v1/contracts/drift',
    '/api/v1/observability/readiness',
    '/api/v1/recovery/readiness',
  ].map((route): RouteCase => ({ method: 'GET', route, access: READERS, ok: 200, prepare: plain(route) })),

  // the auditor console: pages for auditors (and admins); signing in and out is open to all
  {
    method: 'GET',
    route: '/console/sign-in',
    access: 'public',
    ok: 200,
    console: true,
    prepare: plain('/console/sign-in'),
  },
  {
    method: 'POST',
    route: '/console/sign-in',
    access: 'public',
    ok: 303,
    console: true,
    prepare: plain('/console/sign-in', { key: ADMIN_TOKEN }),
  },
  {
    method: 'POST',
    route: '/console/sign-out',
    access: 'public',
    ok: 303,
    console: true,
    prepare: plain('/console/sign-out'),
  },
  { method: 'GET', route: '/console', access: AUDITORS, ok: 303, console: true, prepare: plain('/console') },
  ...['/console/rollouts', '/console/compliance', '/console/drift', '/console/integrity'].map(
    (route): RouteCase => ({
      method: 'GET',
      route,
      access: AUDITORS,
      ok: 200,
      console: true,
      prepare: plain(route),
    }),
  ),
  {
    method: 'GET',
    route: '/console/rollouts/{id}',
    access: AUDITORS,
    ok: 200,
    console: true,
    prepare: plain(() => `/console/rollouts/${readable}`),
  },
  {
    method: 'GET',
    route: '/console/rollouts/{id}/report/{format}',
    access: AUDITORS,
    ok: 200,
    console: true,
    prepare: plain(() => `/console/rollouts/${readable}/report/csv`),
  },
  {
    method: 'GET',
    route: '/console/compliance/report/{format}',
    access: AUDITORS,
    ok: 200,
    console: true,
    prepare: plain('/console/compliance/report/json'),
  },
  {
    method: 'POST',
    route: '/console/integrity/verify',
    access: AUDITORS,
    ok: 201,
    console: true,
    prepare: plain('/console/integrity/verify', {}),
  },

  // projections: admin only
  {
    method: 'GET',
    route: '/api/v1/admin/projections',
    access: ADMIN_ONLY,
    ok: 200,
    prepare: plain('/api/v1/admin/projections'),
  },
  {
    method: 'POST',
    route: '/api/v1/admin/projections/{name}/rebuild',
    access: ADMIN_ONLY,
    ok: 202,
    prepare: plain(() => `/api/v1/admin/projections/${projection}/rebuild`),
  },
];

const opKey = (method: string, route: string) => `${method.toUpperCase()} ${route}`;
const tableKeys = (filter: (c: RouteCase) => boolean) =>
  TABLE.filter(filter).map((c) => opKey(c.method, c.route));

function allowed(access: Access, caller: Caller): boolean {
  if (access === 'public') return true;
  return caller !== 'none' && access.includes(caller);
}

function authOf(caller: Caller): Record<string, string> {
  return caller === 'none' ? {} : bearer(keys[caller]);
}

/** Every write the app could make: events and API keys. A refused call must change neither. */
async function sideEffects(): Promise<{ events: number; keys: number; revoked: number }> {
  const { rows } = await sql<{ events: string; keys: string; revoked: string }>`
    select (select count(*) from event) as events,
           (select count(*) from api_key) as keys,
           (select count(*) from api_key where revoked_at is not null) as revoked`.execute(t.handle.db);
  const row = rows[0];
  return { events: Number(row?.events), keys: Number(row?.keys), revoked: Number(row?.revoked) };
}

interface Answer {
  status: number;
  contentType: string;
  body: Record<string, unknown>;
  text: string;
  location?: string;
}

/** Opens the stream over a real socket, takes the status line and headers, and cuts it. */
async function sseCall(url: string, caller: Caller): Promise<Answer> {
  const abort = new AbortController();
  const res = await fetch(`${baseUrl}${url}`, {
    headers: { Accept: 'text/event-stream', ...authOf(caller) },
    signal: abort.signal,
  });
  const contentType = res.headers.get('content-type') ?? '';
  let body: Record<string, unknown> = {};
  if (res.status === 200) abort.abort();
  else body = (await res.json()) as Record<string, unknown>;
  return { status: res.status, contentType, body, text: '' };
}

async function send(c: RouteCase, call: Call, caller: Caller, method: Method | 'HEAD'): Promise<Answer> {
  if (c.sse) return sseCall(call.url, caller);
  const verb = method.toLowerCase() as 'get' | 'post' | 'put' | 'delete' | 'head';
  let req = request(t.server)
    [verb](call.url)
    .set(authOf(caller))
    .set(call.headers ?? {});
  if (call.body !== undefined) req = req.send(call.body);
  const res = await req;
  return {
    status: res.status,
    contentType: res.headers['content-type'] ?? '',
    body: res.body,
    text: res.text ?? '',
    location: res.headers.location,
  };
}

beforeAll(async () => {
  platform = await startSamplePlatform({ versions: { gateway: '1.0.0' } });
  // Snapshots only when asked: 03:00 UTC on 29 February never comes during a run.
  t = await startTestApp({
    env: { SNAPSHOT_TARGETS: `matrix=${platform.url}`, SNAPSHOT_CRON: '0 0 3 29 2 *' },
  });
  await t.app.listen(0, '127.0.0.1');
  baseUrl = (await t.app.getUrl()).replace('[::1]', '127.0.0.1');
  for (const role of ['engineer', 'auditor', 'admin', 'ingest'] as const) {
    keys[role] = (await createKey(t.server, { role, name: `matrix-${role}` })).key;
  }
  readable = await rolloutIn('in_progress');
  await sequenced(readable);
  const pub = await request(t.server).get('/api/v1/ledger/public-keys').set(AUTH).expect(200);
  signingKeyId = pub.body.current;
  const proj = await request(t.server).get('/api/v1/admin/projections').set(AUTH).expect(200);
  projection = proj.body.projections[0].name;
  const taken = await request(t.server).post('/api/v1/snapshots').set(AUTH).send({}).expect(200);
  snapshotId = taken.body.snapshots[0].snapshotId;
});
afterAll(async () => {
  await t?.close();
  await platform?.close();
});

describe('the expectation table covers every route', () => {
  it('lists every operation of the OpenAPI document, and none that is not there', async () => {
    const { body } = await request(t.server).get('/api/openapi.json').set(AUTH).expect(200);
    const documented = Object.entries(body.paths as Record<string, Record<string, unknown>>).flatMap(
      ([path, ops]) =>
        Object.keys(ops)
          .filter((m) => ['get', 'post', 'put', 'patch', 'delete', 'head', 'options'].includes(m))
          .map((m) => opKey(m, path)),
    );
    expect(documented.length).toBeGreaterThan(20);
    const listed = tableKeys((c) => !c.docs && !c.console);
    const missing = documented.filter((op) => !listed.includes(op));
    expect(missing, 'routes in the OpenAPI document without an expectation in TABLE').toEqual([]);
    const stale = listed.filter((op) => !documented.includes(op));
    expect(stale, 'TABLE entries the OpenAPI document does not have').toEqual([]);
    expect(new Set(listed).size, 'an operation is listed twice').toBe(listed.length);
  });

  it("lists every handler of every Nest controller, documented or not (from Nest's own metadata)", () => {
    const routes: string[] = [];
    for (const { method, path, handler } of controllerRoutes(t)) {
      const route = path.replace(/\/:([^/]+)/g, '/{$1}');
      routes.push(opKey(method, route));
      if (Reflect.getMetadata(SSE_METADATA, handler)) {
        const listed = TABLE.find((c) => opKey(c.method, c.route) === opKey(method, route));
        expect(listed?.sse, `${route} is a stream: mark it sse`).toBe(true);
      }
    }
    expect(routes.length).toBeGreaterThan(20);
    const listed = tableKeys(() => true);
    expect(
      routes.filter((op) => !listed.includes(op)),
      'controller routes without an expectation in TABLE',
    ).toEqual([]);
    expect(
      tableKeys((c) => !c.docs).filter((op) => !routes.includes(op)),
      'TABLE entries no controller serves',
    ).toEqual([]);
  });

  it('names a policy for each of the five callers on each route: the table is the whole matrix', () => {
    const cells = TABLE.flatMap((c) => CALLERS.map((caller) => `${opKey(c.method, c.route)} ${caller}`));
    expect(new Set(cells).size).toBe(TABLE.length * CALLERS.length);
    // No route is left open by accident: only the health checks, and signing in to (and out of)
    // the console, are public.
    expect(TABLE.filter((c) => c.access === 'public').map((c) => opKey(c.method, c.route))).toEqual([
      'GET /health/live',
      'GET /health/ready',
      'GET /console/sign-in',
      'POST /console/sign-in',
      'POST /console/sign-out',
    ]);
    // The write-only ingest role reads nothing: it only sends CloudEvents.
    expect(
      TABLE.filter((c) => c.access !== 'public' && c.access.includes('ingest')).map((c) =>
        opKey(c.method, c.route),
      ),
    ).toEqual(['POST /api/v1/ingest/cloudevents']);
  });
});

describe.each(TABLE.map((c) => [opKey(c.method, c.route), c] as const))('%s', (_, c) => {
  it.each(CALLERS)('as %s', async (caller) => {
    const call = await c.prepare(caller);
    const before = await sideEffects();
    const answer = await send(c, call, caller, c.method);
    const what = `${c.method} ${call.url} as ${caller}: ${answer.status} ${JSON.stringify(answer.body)}`;

    if (allowed(c.access, caller)) {
      expect([401, 403], what).not.toContain(answer.status);
      expect(answer.status, what).toBe(c.ok);
      if (c.sse) expect(answer.contentType).toMatch(/^text\/event-stream/);
      return;
    }
    const expected = caller === 'none' ? (c.console ? 303 : 401) : 403;
    expect(answer.status, what).toBe(expected);
    if (c.console) {
      if (expected === 303) expect(answer.location, what).toMatch(/^\/console\/sign-in\?next=/);
      else {
        expect(answer.contentType, what).toMatch(/^text\/html/);
        expect(answer.text, what).toContain(`role ${caller}`);
      }
    } else {
      expect(answer.contentType, what).toMatch(/^application\/problem\+json/);
      expect(answer.body).toMatchObject({ status: expected, detail: expect.any(String) });
      if (expected === 403) expect(answer.body.detail).toContain(`role ${caller}`);
    }
    // A refused call records nothing, creates no key and revokes none.
    expect(await sideEffects(), what).toEqual(before);
  });

  if (c.method === 'GET' && !c.sse) {
    // Fastify answers HEAD for every GET route: the same guard must run.
    it('HEAD is allowed exactly where GET is', async () => {
      for (const caller of CALLERS) {
        const call = await c.prepare(caller);
        const head = await send(c, call, caller, 'HEAD');
        const expected = allowed(c.access, caller) ? c.ok : caller === 'none' ? (c.console ? 303 : 401) : 403;
        expect(head.status, `HEAD ${call.url} as ${caller}`).toBe(expected);
      }
    });
  }
});

describe('keys that are not valid are no better than none', () => {
  it('a made-up, revoked or malformed key gets 401 on every non-public route', async () => {
    const revoked = await createKey(t.server, { role: 'admin', name: 'revoked-admin' });
    await request(t.server).delete(`/api/v1/api-keys/${revoked.id}`).set(AUTH).expect(204);
    const bad = [bearer(revoked.key), bearer(`ul_${randomUUID()}`), { Authorization: 'Bearer' }];
    for (const c of TABLE.filter((x) => x.access !== 'public' && !x.sse)) {
      const call = await c.prepare('none');
      for (const header of bad) {
        const before = await sideEffects();
        const verb = c.method.toLowerCase() as 'get' | 'post' | 'put' | 'delete';
        let req = request(t.server)
          [verb](call.url)
          .set(header)
          .set(call.headers ?? {});
        if (call.body !== undefined) req = req.send(call.body);
        const res = await req;
        // A console page sends the browser to sign in instead.
        expect(res.status, `${c.method} ${call.url} with ${header.Authorization}`).toBe(
          c.console ? 303 : 401,
        );
        expect(await sideEffects()).toEqual(before);
      }
    }
  });
});
