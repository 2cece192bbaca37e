import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { READ_ROLES, ROLES, ROLES_KEY, type Role } from '../../src/auth/principal.js';
import { IS_PUBLIC } from '../../src/auth/public.decorator.js';
import { MAX_JSON_DEPTH } from '../../src/common/strict-json.js';
import { APP_CONFIG, type AppConfig, loadConfig } from '../../src/config/config.js';
import { AUTH, settleLedger, startTestApp, type TestApp } from '../support/app.js';
import { bearer, createKey } from '../support/auth.js';
import { controllerRoutes } from '../support/controller-routes.js';
import { plan as PLAN } from '../support/rollout-events.js';

// Hostile clients. Every route the server answers is read from Fastify's own route table (and
// checked against Nest's controllers and the OpenAPI document, so the list cannot drift), and
// each gets the hostile requests a client on the internet can send: no key, a made-up, expired
// or revoked key, a key of the wrong role; a huge header; for writes a huge body, bad JSON,
// duplicate keys and wrong media types; path traversal in every path parameter. Each answer is a
// 4xx (never a 5xx, never a stack or SQL text) and has no effect: no event recorded, no key made
// or revoked, the ledger head where it was. Then SQL and Unicode edge cases in every text field
// of a plan (refused naming the field, or stored and read back exactly), a slow body
// (slowloris: 408), rate limiting on every route (429), security headers, and no CORS.

const BODY_LIMIT = 64 * 1024;
const R = '/api/v1/rollouts';
const EVIL_ORIGIN = 'https://evil.example.com';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  body: unknown;
}

interface Send {
  headers?: Record<string, string>;
  body?: string | Buffer;
}

/**
 * One request over a socket of its own, with the path sent exactly as written (no client-side
 * normalisation of `..` or percent-escapes, which `fetch` and superagent would do).
 */
function rawRequest(port: number, method: string, path: string, send: Send = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        // Framed by its length: Node sends a DELETE body unframed otherwise.
        headers: {
          ...send.headers,
          ...(send.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(send.body)) }),
        },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
        });
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path}: no answer in 30 s`)));
    req.on('error', (err) => reject(new Error(`${method} ${path.slice(0, 120)}: ${err.message}`)));
    req.end(send.body);
  });
}

// ---------------------------------------------------------------------------------------------
// the routes, from the app itself

interface Route {
  method: string;
  /** As Fastify has it: /api/v1/rollouts/:id, /api/docs/*. */
  path: string;
  /** Open to anyone (@Public). */
  isPublic: boolean;
  /** The roles that may call it besides admin (@Roles, else the readers). */
  roles: readonly Role[];
  /** A page of the auditor console: without a valid key it sends the browser to sign in. */
  console: boolean;
}

/** Every method and path in Fastify's route table, read from its printed tree. */
function fastifyRoutes(t: TestApp): { method: string; path: string }[] {
  const tree = t.app.getHttpAdapter().getInstance().printRoutes({ commonPrefix: false });
  const out: { method: string; path: string }[] = [];
  const labels: string[] = [];
  for (const line of tree.split('\n')) {
    const m = /^((?:│ {3}| {4})*)(?:├── |└── )(.+?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    labels.length = (m[1] as string).length / 4;
    labels.push(m[2] as string);
    for (const method of (m[3] ?? '').split(', ').filter(Boolean)) {
      out.push({ method, path: labels.join('') });
    }
  }
  return out;
}

/** Each controller handler's method, path (Fastify style), @Public and @Roles, from Nest's metadata. */
function nestHandlers(t: TestApp): Map<string, { isPublic: boolean; roles: readonly Role[] }> {
  const out = new Map<string, { isPublic: boolean; roles: readonly Role[] }>();
  for (const { method, path, type, handler } of controllerRoutes(t)) {
    // As Nest's Reflector.getAllAndOverride: the handler's, else the controller's.
    const meta = <T>(key: string): T | undefined =>
      Reflect.getMetadata(key, handler) ?? Reflect.getMetadata(key, type);
    out.set(`${method} ${path}`, {
      isPublic: meta<boolean>(IS_PUBLIC) === true,
      roles: meta<Role[]>(ROLES_KEY) ?? READ_ROLES,
    });
  }
  return out;
}

/** The route as the OpenAPI document writes it: /api/v1/rollouts/{id}. */
const openApiPath = (path: string) => path.replace(/:(\w+)/g, '{$1}');

// ---------------------------------------------------------------------------------------------
// what a refusal must look like

/** Texts that only a leaked stack or database error would put in an answer. */
const LEAKS: RegExp[] = [
  /\n\s+at .+:\d+:\d+/,
  /node_modules/,
  /\/src\/[\w/.-]+\.[jt]s/,
  /syntax error at or near/i,
  /invalid input syntax for/i,
  /invalid byte sequence/i,
  /unsupported Unicode escape sequence/i,
  /violates [\w ]*constraint/i,
  /duplicate key value/i,
  /SQLSTATE/i,
  /relation "[^"]*" does not exist/i,
  /\bkysely\b/i,
  /pg-protocol|PGlite|postgres error/i,
];

/** A 4xx in `allowed` (any 4xx when not given): never a 5xx, never a stack or SQL text. */
function expectRefused(res: Answer, what: string, allowed?: number[]): void {
  const said = `${what} → ${res.status} ${res.text.slice(0, 400)}`;
  expect(res.status, said).toBeGreaterThanOrEqual(400);
  expect(res.status, said).toBeLessThan(500);
  if (allowed) expect(allowed, said).toContain(res.status);
  for (const leak of LEAKS) expect(res.text, `${said}: leaks ${leak}`).not.toMatch(leak);
}

/** The 400 problem names `field` among its errors. */
function expectField(res: Answer, field: string, what: string): void {
  const fields = ((res.body as { errors?: { field: string }[] })?.errors ?? []).map((e) => e.field);
  expect(fields, `${what} → ${res.text.slice(0, 400)}`).toContain(field);
}

/** Helmet's headers, on answers and refusals alike; and no CORS, which is not configured here. */
function expectHardened(res: Answer, what: string): void {
  expect(res.headers['x-content-type-options'], what).toBe('nosniff');
  expect(res.headers['x-frame-options'], what).toBe('SAMEORIGIN');
  expect(res.headers['referrer-policy'], what).toBe('no-referrer');
  expect(res.headers['strict-transport-security'], what).toMatch(/max-age=/);
  expect(res.headers['content-security-policy'], what).toMatch(/default-src 'self'/);
  expect(res.headers['x-powered-by'], what).toBeUndefined();
  expect(res.headers['access-control-allow-origin'], what).toBeUndefined();
  expect(res.headers['access-control-allow-credentials'], what).toBeUndefined();
}

// ---------------------------------------------------------------------------------------------

let t: TestApp;
let port: number;
let routes: Route[];
const keys = {} as Record<Role, string>;
let expiredKey: string;
let revokedKey: string;
/** Live things the path parameters name, so that a request that got through would have an effect. */
const live = {
  rollout: '',
  signingKeyId: '',
  projection: '',
  unattributed: '',
  /** A key of its own, that a DELETE which got through would revoke. */
  victimKey: '',
};

/** A live value for a path parameter of a route; a new kind of parameter must be named here. */
function paramValue(path: string, param: string): string {
  if (param === '*') return 'swagger-ui.css';
  if (param === 'stepId') return 's1';
  if (param === 'keyId') return live.signingKeyId;
  if (param === 'name') return live.projection;
  if (param === 'format') return 'csv';
  if (param === 'id') {
    if (path.startsWith('/api/v1/api-keys/')) return live.victimKey;
    if (path.startsWith('/api/v1/ingest/unattributed/')) return live.unattributed;
    if (path.startsWith('/api/v1/snapshots/')) return randomUUID();
    if (/^\/(api\/v1\/(reports\/)?rollouts|console\/rollouts)\//.test(path)) return live.rollout;
  }
  throw new Error(`no live value for the parameter "${param}" of ${path}: name one in paramValue()`);
}

const paramsOf = (path: string) => [...path.matchAll(/:(\w+)|\*/g)].map((m) => m[1] ?? '*');

/** The route's path with live values, or with `override` for one parameter (sent as written). */
function urlOf(route: Route, override?: { param: string; raw: string }): string {
  return route.path.replace(/:(\w+)|\*/g, (_, name: string | undefined) => {
    const param = name ?? '*';
    return override?.param === param ? override.raw : encodeURIComponent(paramValue(route.path, param));
  });
}

const call = (method: string, path: string, send?: Send) => rawRequest(port, method, path, send);

/** Every write the app could make: events, keys, revocations, the ledger. */
async function effects(db = t) {
  const { rows } = await sql<{ events: string; keys: string; revoked: string; head: string | null }>`
    select (select count(*) from event) as events,
           (select count(*) from api_key) as keys,
           (select count(*) from api_key where revoked_at is not null) as revoked,
           (select max(position) from ledger) as head`.execute(db.handle.db);
  const row = rows[0];
  return {
    events: Number(row?.events),
    keys: Number(row?.keys),
    revoked: Number(row?.revoked),
    head: Number(row?.head ?? 0),
  };
}

/**
 * A check that nothing changed since it was made: one query per hostile request (what holds
 * after one is what held before the next).
 *
 * @example
 * const unchanged = await noEffects();
 * await call('POST', url, hostile);
 * await unchanged('POST url with a hostile body');
 */
async function noEffects(): Promise<(what: string) => Promise<void>> {
  const before = await effects();
  return async (what) => {
    expect(await effects(), `${what}: had an effect`).toEqual(before);
  };
}

const isWrite = (method: string) => ['POST', 'PUT', 'PATCH', 'DELETE'].includes(method);

beforeAll(async () => {
  t = await startTestApp({ env: { RATE_LIMIT_MAX: '10000000', BODY_LIMIT_BYTES: String(BODY_LIMIT) } });
  await t.app.listen(0, '127.0.0.1');
  port = (t.app.getHttpServer().address() as net.AddressInfo).port;

  const handlers = nestHandlers(t);
  routes = fastifyRoutes(t).map(({ method, path }) => {
    // HEAD is answered by the GET handler; the Swagger UI routes are not controllers and follow
    // the rule of every route without @Roles (the readers).
    const policy = handlers.get(`${method === 'HEAD' ? 'GET' : method} ${path}`);
    return {
      method,
      path,
      isPublic: policy?.isPublic ?? false,
      roles: policy?.roles ?? READ_ROLES,
      console: path === '/console' || path.startsWith('/console/'),
    };
  });

  for (const role of ROLES) keys[role] = (await createKey(t.server, { role, name: `hostile-${role}` })).key;
  const expired = await createKey(t.server, { role: 'admin', name: 'expired-admin' });
  await sql`update api_key set expires_at = now() - interval '1 minute' where id = ${expired.id}`.execute(
    t.handle.db,
  );
  expiredKey = expired.key;
  // Used once (so it is in the auth cache), then revoked: it must stop working at once.
  const revoked = await createKey(t.server, { role: 'admin', name: 'revoked-admin' });
  expect((await call('GET', '/api/v1/ledger/head', { headers: bearer(revoked.key) })).status).toBe(200);
  expect((await call('DELETE', `/api/v1/api-keys/${revoked.id}`, { headers: AUTH })).status).toBe(204);
  revokedKey = revoked.key;
  live.victimKey = (await createKey(t.server, { role: 'auditor', name: 'victim' })).id;

  const created = await call('POST', R, {
    headers: { ...AUTH, 'content-type': 'application/json' },
    body: JSON.stringify({ title: 'live', sequence: [{ id: 's1', order: 1 }] }),
  });
  expect(created.status, created.text).toBe(201);
  live.rollout = (created.body as { id: string }).id;
  expect((await call('POST', `${R}/${live.rollout}/start`, { headers: AUTH })).status).toBe(200);

  const ingested = await call('POST', '/api/v1/ingest/cloudevents', {
    headers: { ...AUTH, 'content-type': 'application/cloudevents+json' },
    body: JSON.stringify({
      specversion: '1.0',
      id: randomUUID(),
      source: '/hostile',
      type: 'dev.cdevents.environment.modified.0.2.0',
      datacontenttype: 'application/json',
      data: {
        context: {
          version: '0.4.1',
          id: randomUUID(),
          source: '/hostile',
          type: 'dev.cdevents.environment.modified.0.2.0',
          timestamp: new Date().toISOString(),
        },
        subject: { id: 'hostile-env', type: 'environment', content: {} },
      },
    }),
  });
  expect(ingested.status, ingested.text).toBe(202);
  live.unattributed = (ingested.body as { events: { eventIds: string[] }[] }).events[0]?.eventIds[0] ?? '';

  live.signingKeyId = (
    (await call('GET', '/api/v1/ledger/public-keys', { headers: AUTH })).body as {
      current: string;
    }
  ).current;
  live.projection = (
    (await call('GET', '/api/v1/admin/projections', { headers: AUTH })).body as {
      projections: { name: string }[];
    }
  ).projections[0]?.name as string;
  // Everything above is in the ledger before any hostile request: the head must then stand still.
  await settleLedger(t);
});
afterAll(() => t?.close());

describe('the routes come from the app', () => {
  it('Fastify serves every Nest controller route and every documented operation, and the list is whole', async () => {
    const served = new Set(routes.map((r) => `${r.method} ${r.path}`));
    const handlers = [...nestHandlers(t).keys()];
    expect(handlers.length).toBeGreaterThan(40);
    expect(handlers.filter((h) => !served.has(h))).toEqual([]);

    const doc = await call('GET', '/api/openapi.json', { headers: AUTH });
    const documented = Object.entries((doc.body as { paths: Record<string, object> }).paths).flatMap(
      ([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(documented.length).toBeGreaterThan(30);
    const servedAsDocumented = new Set(routes.map((r) => `${r.method} ${openApiPath(r.path)}`));
    expect(documented.filter((op) => !servedAsDocumented.has(op))).toEqual([]);

    // Only the health checks and the console's sign-in and sign-out are open.
    expect(
      routes
        .filter((r) => r.isPublic && r.method !== 'HEAD')
        .map((r) => `${r.method} ${r.path}`)
        .sort(),
    ).toEqual([
      'GET /console/sign-in',
      'GET /health/live',
      'GET /health/ready',
      'POST /console/sign-in',
      'POST /console/sign-out',
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// the matrix: every route × every hostile request

describe('every route', () => {
  it('refuses a missing, made-up, malformed, expired or revoked key (401) and the wrong role (403), with no effect', async () => {
    expect(routes.length).toBeGreaterThan(60);
    const invalid: [string, Record<string, string>][] = [
      ['no key', {}],
      ['a made-up key', bearer(`ul_${randomBytes(32).toString('base64url')}`)],
      [
        'a key one character off',
        bearer(`${keys.admin.slice(0, -1)}${keys.admin.endsWith('A') ? 'B' : 'A'}`),
      ],
      ['the ADMIN_TOKEN one character off', bearer('test-admin-token-0123456780')],
      ['a malformed header', { Authorization: 'Bearer' }],
      ['another scheme', { Authorization: `Basic ${keys.admin}` }],
      ['an expired key', bearer(expiredKey)],
      ['a revoked key', bearer(revokedKey)],
    ];
    let checked = 0;
    const unchanged = await noEffects();
    for (const route of routes.filter((r) => !r.isPublic)) {
      const url = urlOf(route);
      const callers: [string, Record<string, string>, number][] = invalid.map(([what, h]) => [
        what,
        h,
        route.console ? 303 : 401,
      ]);
      for (const role of ROLES.filter((r) => r !== 'admin' && !route.roles.includes(r))) {
        callers.push([`a key of the role ${role}`, bearer(keys[role]), 403]);
      }
      for (const [who, headers, status] of callers) {
        const res = await call(route.method, url, { headers: { ...headers, Origin: EVIL_ORIGIN } });
        const what = `${route.method} ${url} with ${who}`;
        expect(res.status, `${what}: ${res.text.slice(0, 300)}`).toBe(status);
        if (status === 303) expect(res.headers.location, what).toMatch(/^\/console\/sign-in/);
        else expectRefused(res, what);
        if (route.method !== 'HEAD' && status === 401 && !route.console) {
          expect(res.headers['content-type'], what).toMatch(/^application\/problem\+json/);
          expect(res.headers['www-authenticate'], what).toMatch(/^(Bearer|Basic) realm=/);
        }
        expectHardened(res, what);
        await unchanged(what);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(500);
  });

  it('refuses a 64 KB header (431) and a 64 KB URL (414 or 431), with no effect', async () => {
    // Not HEAD: Fastify's raw 431 carries a body, which a HEAD client reads as the next answer.
    for (const route of routes.filter((r) => r.method !== 'HEAD')) {
      const url = urlOf(route);
      const before = await effects();
      const huge = await call(route.method, url, {
        headers: { ...AUTH, 'X-Padding': 'a'.repeat(64 * 1024) },
      });
      expectRefused(huge, `${route.method} ${url} with a 64 KB header`, [431]);
      const many = Object.fromEntries(
        Array.from({ length: 2000 }, (_, i) => [`x-h${i}`, 'abcdefghijklmnop']),
      );
      const lots = await call(route.method, url, { headers: { ...AUTH, ...many } });
      expectRefused(lots, `${route.method} ${url} with 2,000 headers`, [431]);
      const long = await call(route.method, `${url}?q=${'a'.repeat(64 * 1024)}`, { headers: AUTH });
      expectRefused(long, `${route.method} ${url} with a 64 KB query`, [414, 431]);
      expect(await effects(), `${route.method} ${url}`).toEqual(before);
    }
  });

  it('sends no CORS headers on any route, nor to a preflight: CORS_ORIGINS is not set', async () => {
    expect(t.app.get<symbol, AppConfig>(APP_CONFIG).corsOrigins).toBeUndefined();
    for (const route of routes.filter((r) => r.method !== 'HEAD')) {
      const url = urlOf(route);
      const preflight = await call('OPTIONS', url, {
        headers: {
          Origin: EVIL_ORIGIN,
          'Access-Control-Request-Method': route.method,
          'Access-Control-Request-Headers': 'authorization, content-type',
        },
      });
      const what = `OPTIONS ${url} from ${EVIL_ORIGIN}`;
      expectRefused(preflight, what, [401, 404]);
      expect(preflight.headers['access-control-allow-methods'], what).toBeUndefined();
      expectHardened(preflight, what);
    }
  });

  it('writes: a body over BODY_LIMIT_BYTES (413), bad JSON (400), duplicate keys (400 naming the key), too deep (400), other media types (415): no effect', async () => {
    const writes = routes.filter((r) => isWrite(r.method));
    expect(writes.length).toBeGreaterThan(20);
    const json = 'application/json';
    const deep = `{"a":${'['.repeat(MAX_JSON_DEPTH + 1)}${']'.repeat(MAX_JSON_DEPTH + 1)}}`;
    const cases: { what: string; type: string; body: string; status: number[]; field?: string }[] = [
      {
        what: 'a body over the limit',
        type: json,
        body: JSON.stringify({ reason: 'x'.repeat(BODY_LIMIT) }),
        status: [413],
      },
      { what: 'truncated JSON', type: json, body: '{"reason": "x"', status: [400] },
      { what: 'a trailing comma', type: json, body: '{"reason": "x",}', status: [400] },
      { what: 'single quotes', type: json, body: "{'reason': 'x'}", status: [400] },
      { what: 'two documents', type: json, body: '{"reason": "x"} {"reason": "y"}', status: [400] },
      { what: 'a NUL byte', type: json, body: '{"reason": "x"}\u0000', status: [400] },
      { what: 'NaN', type: json, body: '{"reason": NaN}', status: [400] },
      {
        what: 'a duplicate key',
        type: json,
        body: '{"reason": "x", "reason": "y"}',
        status: [400],
        field: 'reason',
      },
      {
        what: 'a duplicate key written with an escape',
        type: json,
        body: '{"reason": "x", "\\u0072eason": "y"}',
        status: [400],
        field: 'reason',
      },
      {
        what: 'a nested duplicate key',
        type: json,
        body: '{"data": [{"ok": 1}, {"k": 1, "k": 2}]}',
        status: [400],
        field: 'data.1.k',
      },
      { what: 'nesting past the cap', type: json, body: deep, status: [400], field: 'a' },
      { what: 'text/plain', type: 'text/plain', body: '{"reason": "x"}', status: [415] },
      { what: 'XML', type: 'application/xml', body: '<reason>x</reason>', status: [415] },
      { what: 'no media type at all', type: '', body: '{"reason": "x"}', status: [415] },
      {
        what: 'multipart',
        type: 'multipart/form-data; boundary=b',
        body: '--b\r\nContent-Disposition: form-data; name="reason"\r\n\r\nx\r\n--b--',
        status: [415],
      },
    ];
    const unchanged = await noEffects();
    for (const route of writes) {
      const url = urlOf(route);
      for (const c of cases) {
        const headers: Record<string, string> = { ...AUTH };
        if (c.type) headers['content-type'] = c.type;
        const res = await call(route.method, url, { headers, body: c.body });
        const what = `${route.method} ${url} with ${c.what}`;
        expectRefused(res, what, c.status);
        if (c.field && !route.console) expectField(res, c.field, what);
        if (!route.console) expect(res.headers['content-type'], what).toMatch(/^application\/problem\+json/);
        expectHardened(res, what);
        await unchanged(what);
      }
      // The console takes forms (its sign-in and buttons); everything else answers a form with 415.
      if (!route.console) {
        const form = await call(route.method, url, {
          headers: { ...AUTH, 'content-type': 'application/x-www-form-urlencoded' },
          body: 'reason=x',
        });
        expectRefused(form, `${route.method} ${url} with a form`, [415]);
        await unchanged(`${route.method} ${url} with a form`);
      }
    }
  });

  it('CloudEvents: duplicate keys in a structured or batched event are a 400 naming the key, nothing ingested', async () => {
    const event = (id: string) =>
      `{"specversion": "1.0", "id": "${id}", "id": "${randomUUID()}", "source": "/hostile", "type": "dev.cdevents.environment.modified.0.2.0", "data": {}}`;
    for (const [type, body, field] of [
      ['application/cloudevents+json', event(randomUUID()), 'id'],
      ['application/cloudevents-batch+json', `[${event(randomUUID())}]`, '0.id'],
    ] as const) {
      const before = await effects();
      const res = await call('POST', '/api/v1/ingest/cloudevents', {
        headers: { ...AUTH, 'content-type': type },
        body,
      });
      expectRefused(res, `${type} with a duplicate key`, [400]);
      expectField(res, field, type);
      expect(await effects()).toEqual(before);
    }
  });

  it('refuses path traversal, NUL, bad escapes and SQL in every path parameter (400 or 404), with no effect', async () => {
    const HOSTILE_SEGMENTS = [
      '..',
      '%2e%2e',
      '..%2f..%2f..%2fetc%2fpasswd',
      '%2e%2e%2f%2e%2e%2fetc%2fpasswd',
      '..%252f..%252fetc%252fpasswd',
      '..%5c..%5cwindows%5cwin.ini',
      '....%2f%2f....%2f%2fetc%2fpasswd',
      '%00',
      'abc%00def',
      '..%00',
      '%c0%ae%c0%ae%c0%af',
      '%ff%fe',
      '%',
      '%zz',
      "'%20OR%20'1'%3D'1",
      '1%3B%20DROP%20TABLE%20event%3B--',
      '%e2%80%ae%e2%80%8f',
      '%ed%a0%80',
    ];
    // HEAD runs the GET route's own handler: the GET is enough here.
    const withParams = routes.filter((r) => paramsOf(r.path).length > 0 && r.method !== 'HEAD');
    expect(withParams.length).toBeGreaterThan(10);
    const unchanged = await noEffects();
    for (const route of withParams) {
      for (const param of paramsOf(route.path)) {
        const raws = [
          ...HOSTILE_SEGMENTS,
          // raw dot segments, which no client-side normalisation removed
          ...(param === '*' ? ['../../../../etc/passwd', '..%2f..%2f..%2fpackage.json'] : []),
        ];
        for (const raw of raws) {
          const url = urlOf(route, { param, raw });
          const res = await call(route.method, url, { headers: AUTH });
          const what = `${route.method} ${url}`;
          // Static files (Swagger UI's) may also answer 403 to a path outside their folder.
          expectRefused(res, what, param === '*' ? [400, 403, 404] : [400, 404]);
          expect(res.text, what).not.toMatch(/root:x:0:0|"name": "upgrade-ledger"|\[fonts\]/);
          await unchanged(what);
        }
        const long = urlOf(route, { param, raw: 'a'.repeat(10_000) });
        expectRefused(
          await call(route.method, long, { headers: AUTH }),
          `${route.method} a 10,000-character ${param}`,
          param === '*' ? [400, 403, 404, 414] : [400, 404, 414],
        );
      }
    }
    // The live things are still there, untouched.
    const view = await call('GET', `${R}/${live.rollout}`, { headers: AUTH });
    expect((view.body as { status: string }).status).toBe('in_progress');
    const list = await call('GET', '/api/v1/api-keys', { headers: AUTH });
    const victim = (list.body as { keys: { id: string; status: string }[] }).keys.find(
      (k) => k.id === live.victimKey,
    );
    expect(victim?.status).toBe('active');
  });

  it('refuses hostile query strings and headers on the list and write routes: never a 5xx', async () => {
    // As sent on the wire: SQL, NUL, a lone surrogate's bytes, a bare %, an RTL override, overlong UTF-8.
    const values = [
      '%27%3B%20DROP%20TABLE%20event%3B%20--',
      '%27%20OR%20%271%27%3D%271',
      'a%00b',
      '%ED%A0%80',
      '%',
      '%E2%80%AE',
      '%C0%AE',
    ];
    for (const name of ['q', 'environment', 'product', 'status', 'from', 'cursor', 'limit', 'nosuch']) {
      for (const value of values) {
        const url = `${R}?${name}=${value}`;
        const res = await call('GET', url, { headers: AUTH });
        const what = `GET ${url}`;
        expect(res.status, `${what} → ${res.text.slice(0, 300)}`).toBeLessThan(500);
        if (res.status >= 400) expectRefused(res, what, [400]);
      }
    }
    for (const [header, value] of [
      ['Idempotency-Key', "'; DROP TABLE event; --"],
      ['If-Match', "'1' OR '1'='1'"],
      ['X-Request-Id', "'; DROP TABLE event; --"],
      ['Accept', "text/html'; DROP TABLE event; --"],
    ] as const) {
      const before = await effects();
      const res = await call('POST', `${R}/${live.rollout}/approvals`, {
        headers: { ...AUTH, 'content-type': 'application/json', [header]: value },
        body: '{"comment": "header probe"}',
      });
      const what = `POST approvals with ${header}: ${value}`;
      expect(res.status, `${what} → ${res.text.slice(0, 300)}`).toBeLessThan(500);
      for (const leak of LEAKS) expect(res.text, what).not.toMatch(leak);
      if (res.status >= 400) expect(await effects(), what).toEqual(before);
      expect(res.headers['x-request-id'], what).not.toContain("'");
    }
    // Whatever was accepted is in the ledger before the next no-effect check reads its head.
    await settleLedger(t);
  });
});

// ---------------------------------------------------------------------------------------------
// SQL and Unicode in every text field of a plan

/** Every path to a string in a JSON value: ['sequence', 0, 'id'], … */
function stringPaths(value: Json, path: (string | number)[] = []): (string | number)[][] {
  if (typeof value === 'string') return [path];
  if (Array.isArray(value)) return value.flatMap((v, i) => stringPaths(v, [...path, i]));
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) => stringPaths(v, [...path, k]));
  }
  return [];
}

function setAt(body: Json, path: (string | number)[], value: Json): Json {
  const copy = structuredClone(body);
  let at = copy as Record<string | number, Json>;
  for (const seg of path.slice(0, -1)) at = at[seg] as Record<string | number, Json>;
  at[path.at(-1) as string | number] = value;
  return copy;
}

const SQL = [
  "'; DROP TABLE event; --",
  "' OR '1'='1' --",
  '"; DELETE FROM api_key; TRUNCATE ledger CASCADE; --',
  "$$; UPDATE api_key SET role = 'admin'; $$ \\'; DROP TABLE stream; --",
  "%' UNION SELECT key_hash FROM api_key WHERE '1' LIKE '%",
];

/** Unicode that is legal but awkward, mid-string (text fields are trimmed, so not at the ends). */
const AWKWARD = [
  ['an RTL override', 'a\u202eevil\u202cb'],
  ['bidi isolates and marks', 'a\u2066x\u2069\u200fb'],
  ['stacked combining marks', `Z${'\u0336\u0301\u0327\u0489'.repeat(40)}z`],
  ['emoji with ZWJ and modifiers', 'a👩🏽‍💻🏳️‍🌈🇺🇦b'],
  ['astral characters', 'a𝔘𝔫𝔦𝔠𝔬𝔡𝔢𐍈\u{10FFFD}b'],
  ['noncharacters', 'a\uffff\ufffe\ufdd0b'],
  ['zero-width characters, a BOM, line separators', 'a\u200b\u200d\u2060\ufeff\u2028\u2029b'],
  ['C0 and C1 controls, private use', 'a\u0001\u001f\u007f\u0085\u009f\ue000\u{10FFFF}b'],
  ['precomposed and decomposed', 'caf\u00e9 cafe\u0301'],
  ['overlong: 5,000 characters', `a${'x'.repeat(4998)}b`],
  ['overlong: 2,000 emoji', '🚀'.repeat(2000)],
] as const;

/** Unstorable in Postgres text and jsonb: always a 400 naming the field, never a 500. */
const UNSTORABLE = [
  ['NUL', 'a\u0000b'],
  ['a lone high surrogate', 'a\ud800b'],
  ['a lone low surrogate', 'a\udc00b'],
  ['a reversed surrogate pair', 'a\udc00\ud800b'],
] as const;

describe('text fields of a plan', () => {
  const paths = stringPaths(PLAN as unknown as Json);

  /** Posts the plan with `value` at `path`: 201 and read back exactly, or a 400 naming the field. */
  async function createWith(path: (string | number)[], value: string, mustRefuse = false) {
    const body = setAt(PLAN as unknown as Json, path, value);
    const field = path.join('.');
    const what = `POST ${R} with ${JSON.stringify(value.slice(0, 60))} in ${field}`;
    const res = await call('POST', R, {
      headers: { ...AUTH, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (res.status === 201 && !mustRefuse) {
      const id = (res.body as { id: string }).id;
      const got = await call('GET', `${R}/${id}`, { headers: AUTH });
      const stored = (got.body as { plan: Json }).plan;
      expect(stored, what).toEqual(body);
      // Byte for byte, not merely equal after some normalisation.
      const read = path.reduce<Json>(
        (v, seg) => (v as Record<string | number, Json>)[seg] as Json,
        stored as Json,
      );
      expect(Buffer.from(String(read), 'utf8').equals(Buffer.from(value, 'utf8')), what).toBe(true);
      return 'stored' as const;
    }
    expectRefused(res, what, [400]);
    expectField(res, field, what);
    return 'refused' as const;
  }

  it('the plan has text fields to try: free text, identifiers, enums, dates', () => {
    expect(paths.length).toBeGreaterThan(25);
    expect(paths.map((p) => p.join('.'))).toEqual(
      expect.arrayContaining(['title', 'environment', 'sequence.0.id', 'compatibility.0.result']),
    );
  });

  it('SQL in every string field, one at a time: refused naming the field or stored verbatim, never run', async () => {
    const before = await effects();
    const outcomes = { stored: 0, refused: 0 };
    for (const path of paths) for (const value of SQL) outcomes[await createWith(path, value)]++;
    // Both happen: free text keeps the SQL as text, identifiers and enums refuse it.
    expect(outcomes.stored).toBeGreaterThan(0);
    expect(outcomes.refused).toBeGreaterThan(0);
    // Each accepted plan is one event; nothing else was written, nothing dropped or deleted.
    const after = await effects();
    expect(after.events).toBe(before.events + outcomes.stored);
    expect([after.keys, after.revoked]).toEqual([before.keys, before.revoked]);
    const { rows } = await sql<{ n: string }>`select count(*) as n from api_key where role = 'admin'`.execute(
      t.handle.db,
    );
    expect(Number(rows[0]?.n)).toBe(3); // hostile-admin, expired-admin, revoked-admin
    for (const table of ['event', 'stream', 'ledger', 'api_key', 'checkpoint']) {
      await expect(
        sql`select 1 from ${sql.table(table)} limit 1`.execute(t.handle.db),
      ).resolves.toBeDefined();
    }
    await settleLedger(t);
    const verified = await call('GET', '/api/v1/ledger/verify', { headers: AUTH });
    expect(verified.status, verified.text).toBe(200);
    expect(verified.body).toMatchObject({ ok: true });
    expect((await call('GET', '/api/v1/ledger/head', { headers: bearer(keys.auditor) })).status).toBe(200);
  });

  it('awkward Unicode in every string field: refused naming the field, or stored and read back byte for byte', async () => {
    const outcomes = { stored: 0, refused: 0 };
    for (const path of paths) {
      for (const [, value] of AWKWARD) outcomes[await createWith(path, value)]++;
    }
    expect(outcomes.stored).toBeGreaterThan(0);
    expect(outcomes.refused).toBeGreaterThan(0);
    await settleLedger(t);
  });

  it('NUL and lone surrogates in every string field: a 400 naming the field (Postgres cannot store them), nothing recorded', async () => {
    const before = await effects();
    for (const path of paths) {
      for (const [, value] of UNSTORABLE) expect(await createWith(path, value, true)).toBe('refused');
    }
    expect(await effects()).toEqual(before);
  });

  it('bytes that are not UTF-8 in a JSON body: a 400, never recorded as U+FFFD', async () => {
    const unchanged = await noEffects();
    const sequences = [
      [0xff],
      [0xc0, 0xaf],
      [0xed, 0xa0, 0x80],
      [0xe2, 0x82],
      [0xf4, 0x90, 0x80, 0x80],
      [0x80],
    ];
    for (const bytes of sequences) {
      const body = Buffer.concat([
        Buffer.from('{"title": "a'),
        Buffer.from(bytes),
        Buffer.from('b", "sequence": [{"id": "s1", "order": 1}]}'),
      ]);
      const res = await call('POST', R, { headers: { ...AUTH, 'content-type': 'application/json' }, body });
      const what = `POST ${R} with the bytes ${Buffer.from(bytes).toString('hex')} in the title`;
      expectRefused(res, what, [400]);
      expectField(res, '(body)', what);
      await unchanged(what);
    }
    // The same text in UTF-8 is fine, a BOM included: the check is on the bytes, not the characters.
    const ok = await call('POST', R, {
      headers: { ...AUTH, 'content-type': 'application/json' },
      body: Buffer.from('{"title": "a\u00e9\ud83d\ude80b"}'),
    });
    expect(ok.status, ok.text).toBe(201);
    await settleLedger(t);
  });
});

// ---------------------------------------------------------------------------------------------
// slow bodies and rate limits: an app of their own, with a short request timeout and a small allowance

describe('an app with REQUEST_TIMEOUT_MS=1500 and RATE_LIMIT_MAX=5', () => {
  const TIMEOUT = 1500;
  const MAX = 5;
  let tight: TestApp;
  let tightPort: number;

  beforeAll(async () => {
    tight = await startTestApp({
      env: {
        REQUEST_TIMEOUT_MS: String(TIMEOUT),
        RATE_LIMIT_MAX: String(MAX),
        RATE_LIMIT_WINDOW_MS: '3600000',
      },
    });
    await tight.app.listen(0, '127.0.0.1');
    tightPort = (tight.app.getHttpServer().address() as net.AddressInfo).port;
  });
  afterAll(() => tight?.close());

  /**
   * Sends the head of a request, then one byte a second of a body that would take `length`
   * seconds; resolves with what the server said (or that it hung up) and when. The socket is
   * always destroyed, and the whole thing gives up after `giveUpMs`, so it can never hang.
   */
  async function dribble(
    head: string,
    giveUpMs: number,
  ): Promise<{ said: string; closed: boolean; ms: number }> {
    const socket = net.connect(tightPort, '127.0.0.1');
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        const done = (closed: boolean) =>
          resolve({ said: Buffer.concat(chunks).toString('utf8'), closed, ms: Date.now() - started });
        socket.on('data', (c: Buffer) => chunks.push(c));
        socket.on('close', () => done(true));
        socket.on('error', () => done(true));
        socket.on('connect', () => {
          socket.write(head);
          timer = setInterval(() => {
            if (Date.now() - started > giveUpMs) {
              reject(new Error(`no answer and no hang-up in ${giveUpMs} ms`));
              return;
            }
            if (socket.writable) socket.write('a');
          }, 1000);
        });
      });
    } finally {
      clearInterval(timer);
      socket.destroy();
    }
  }

  it('answers a slow body (slowloris) with 408 and closes the connection; nothing is recorded', async () => {
    const key = (await createKey(tight.server, { role: 'engineer', name: 'slowloris' })).key;
    const before = await effects(tight);
    const head =
      `POST ${R} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${key}\r\n` +
      'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"title": "';
    const answer = await dribble(head, 15_000);
    expect(answer.closed).toBe(true);
    expect(answer.said).toMatch(/^HTTP\/1\.1 408 /);
    // It waited for the timeout at least (the limit is on the request, not on the first byte).
    expect(answer.ms).toBeGreaterThanOrEqual(TIMEOUT - 100);
    // And slow headers are cut the same way.
    const headers = await dribble(`GET /api/v1/ledger HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: `, 15_000);
    expect(headers.closed).toBe(true);
    expect(headers.said).toMatch(/^(HTTP\/1\.1 408 |$)/);
    expect(await effects(tight)).toEqual(before);
  }, 40_000);

  it('REQUEST_TIMEOUT_MS is validated like every variable, and reaches the HTTP server', () => {
    expect(loadConfig({}).requestTimeoutMs).toBe(30_000);
    for (const bad of ['0', '-1', '1.5', '1e4', 'soon', '99999999999']) {
      expect(() => loadConfig({ REQUEST_TIMEOUT_MS: bad }), bad).toThrow(/REQUEST_TIMEOUT_MS/);
    }
    const server = tight.app.getHttpServer() as unknown as Record<string, number>;
    expect(server.requestTimeout).toBe(TIMEOUT);
    // Never longer than the whole request's limit (Node would swap them), and checked often enough.
    expect(server.headersTimeout).toBeLessThanOrEqual(TIMEOUT);
    expect(server.connectionsCheckingInterval).toBeLessThanOrEqual(1000);
  });

  it('answers 429 with Retry-After on every route but the health checks once a key has used its allowance, with no effect', async () => {
    const key = (await createKey(tight.server, { role: 'admin', name: 'greedy' })).key;
    for (let i = 0; i < MAX; i++) {
      expect(
        (await rawRequest(tightPort, 'GET', '/api/v1/ledger/head', { headers: bearer(key) })).status,
      ).toBe(200);
    }
    const before = await effects(tight);
    let limited = 0;
    for (const route of routes) {
      const url = urlOf(route);
      const res = await rawRequest(tightPort, route.method, url, { headers: bearer(key) });
      const what = `${route.method} ${url} after the allowance`;
      if (route.path.startsWith('/health/')) {
        expect(res.status, what).toBe(200);
        continue;
      }
      expectRefused(res, what, [429]);
      expect(Number(res.headers['retry-after']), what).toBeGreaterThan(0);
      if (route.method !== 'HEAD' && !route.console) {
        expect(res.headers['content-type'], what).toMatch(/^application\/problem\+json/);
        expect(res.body, what).toMatchObject({ status: 429 });
      }
      expectHardened(res, what);
      limited++;
    }
    expect(limited).toBeGreaterThan(60);
    expect(await effects(tight)).toEqual(before);
  });
});
