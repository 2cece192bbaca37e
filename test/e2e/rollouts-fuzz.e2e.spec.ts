import fc from 'fast-check';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH, startTestApp, type TestApp } from '../support/app.js';
import { bearer, createKey } from '../support/auth.js';

// A fuzz test of every write. Malformed, oversized, wrongly typed and hostile bodies go to every
// write route, each against a live rollout in the state where a valid body would be accepted.
// Whatever is sent, the answer is never a 5xx; a refused request is a 4xx problem+json that names
// the bad field, and leaves the event table (so the ledger) exactly as it was. Hostile text that
// is a valid value is stored and read back byte for byte; NUL and lone surrogates, which Postgres
// cannot store, are refused naming the field; __proto__/constructor/prototype keys are refused or
// dropped, and pollute nothing.

const R = '/api/v1/rollouts';
/**
 * Runs of each property; enough to shake out each route, few enough to stay quick on PGlite.
 * `FUZZ_RUNS=600` searches harder for a rare counterexample.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 40);
const RESERVED = ['__proto__', 'constructor', 'prototype'];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type State = 'none' | 'planned' | 'in_progress' | 'step_running' | 'rolling_back';

const PLAN = {
  title: 'Upgrade identity stack',
  scope: 'stack-wide',
  environment: 'production',
  products: [{ product: 'identity', fromVersion: '3.2.0', toVersion: '3.3.0' }],
  compatibility: [
    {
      product: 'identity',
      reference: 'compat/identity-3.3',
      result: 'compatible',
      checkedAt: '2026-11-20T10:00:00Z',
    },
  ],
  releaseNotes: [{ product: 'identity', version: '3.3.0', reference: 'notes/3.3.0', reviewedBy: 'maria' }],
  sequence: [
    { id: 's1', order: 1, product: 'identity', layer: 'app', action: 'roll pods', reversible: true },
  ],
  sharedTruthChanges: 'version-truth publishes identity 3.3.0',
  rollbackBoundary: { reversibleState: 'pods', irreversibleAfterStepId: 's1' },
  verification: { pre: ['version-truth'], post: ['version-truth'], representativePaths: ['sign in'] },
};

interface WriteRoute {
  name: string;
  method: 'post' | 'put';
  /** After /rollouts/{id}; undefined for POST /rollouts itself. */
  tail?: string;
  /** The state of the live rollout, in which `valid` is accepted. */
  state: State;
  valid: Record<string, Json>;
  /** Top-level fields that must be there. */
  required: string[];
  /** Fields that take any JSON value (no type to get wrong). */
  anyJson?: string[];
}

const ROUTES: WriteRoute[] = [
  { name: 'POST /rollouts', method: 'post', state: 'none', valid: PLAN, required: [] },
  { name: 'PUT /:id/plan', method: 'put', tail: '/plan', state: 'planned', valid: PLAN, required: [] },
  {
    name: 'POST /:id/approvals',
    method: 'post',
    tail: '/approvals',
    state: 'planned',
    valid: { comment: 'looks good' },
    required: [],
  },
  {
    name: 'POST /:id/readbacks',
    method: 'post',
    tail: '/readbacks',
    state: 'in_progress',
    valid: {
      phase: 'during',
      surface: 'version-truth',
      expected: { identity: '3.3.0' },
      observed: { identity: '3.3.0' },
      verdict: 'pass',
      stepId: 's1',
    },
    required: ['phase', 'surface', 'expected', 'observed', 'verdict'],
    anyJson: ['expected', 'observed'],
  },
  { name: 'POST /:id/start', method: 'post', tail: '/start', state: 'planned', valid: {}, required: [] },
  {
    name: 'POST /:id/steps/:stepId/start',
    method: 'post',
    tail: '/steps/s1/start',
    state: 'in_progress',
    valid: {},
    required: [],
  },
  {
    name: 'POST /:id/steps/:stepId/complete',
    method: 'post',
    tail: '/steps/s1/complete',
    state: 'step_running',
    valid: {},
    required: [],
  },
  {
    name: 'POST /:id/steps/:stepId/fail',
    method: 'post',
    tail: '/steps/s1/fail',
    state: 'step_running',
    valid: { reason: 'pods crashloop' },
    required: ['reason'],
  },
  {
    name: 'POST /:id/path-verifications',
    method: 'post',
    tail: '/path-verifications',
    state: 'in_progress',
    valid: { path: 'user signs in', verdict: 'pass', evidence: 'synthetic run 7' },
    required: ['path', 'verdict'],
  },
  {
    name: 'POST /:id/rollbacks',
    method: 'post',
    tail: '/rollbacks',
    state: 'in_progress',
    valid: { reason: 'crashloop', toStepId: 's1' },
    required: ['reason'],
  },
  {
    name: 'POST /:id/rollbacks/complete',
    method: 'post',
    tail: '/rollbacks/complete',
    state: 'rolling_back',
    valid: {},
    required: [],
  },
  {
    name: 'POST /:id/complete',
    method: 'post',
    tail: '/complete',
    state: 'in_progress',
    valid: {},
    required: [],
  },
  {
    name: 'POST /:id/abort',
    method: 'post',
    tail: '/abort',
    state: 'planned',
    valid: { reason: 'change freeze' },
    required: ['reason'],
  },
];

let t: TestApp;
let eng: Record<string, string>;
/** The live rollout of each route (none for POST /rollouts). */
const live = new Map<string, string | undefined>();

// ---------------------------------------------------------------------------------------------
// helpers

async function countEvents(): Promise<number> {
  const row = await t.handle.db
    .selectFrom('event')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

async function rolloutIn(state: Exclude<State, 'none'>): Promise<string> {
  const created = await request(t.server).post(R).set(AUTH).send(PLAN).expect(201);
  const id = created.body.id as string;
  const walk = {
    planned: [],
    in_progress: ['start'],
    step_running: ['start', 'steps/s1/start'],
    rolling_back: ['start', 'rollbacks'],
  }[state];
  for (const step of walk) {
    const body = step === 'rollbacks' ? { reason: 'set up' } : undefined;
    await request(t.server).post(`${R}/${id}/${step}`).set(AUTH).send(body).expect(200);
  }
  return id;
}

const urlOf = (route: WriteRoute) => (route.tail ? `${R}/${live.get(route.name)}${route.tail}` : R);

/** Sends a raw body as it is, with the content type given. */
function sendRaw(route: WriteRoute, raw: string, contentType = 'application/json') {
  return request(t.server)[route.method](urlOf(route)).set(eng).set('Content-Type', contentType).send(raw);
}

const sendJson = (route: WriteRoute, body: unknown) => sendRaw(route, JSON.stringify(body));

interface Refusal {
  status: number;
  errors?: { field: string; message: string }[];
}

/** A refusal: a 4xx problem+json (never a 5xx), and not one event more. */
async function expectRefused(
  res: request.Response,
  eventsBefore: number,
  what: string,
  status?: number,
): Promise<Refusal> {
  const said = `${what} → ${res.status} ${JSON.stringify(res.body).slice(0, 500)}`;
  expect(res.status, said).toBeGreaterThanOrEqual(400);
  expect(res.status, said).toBeLessThan(500);
  if (status !== undefined) expect(res.status, said).toBe(status);
  expect(res.headers['content-type'], said).toMatch(/^application\/problem\+json/);
  expect(res.body, said).toMatchObject({ status: res.status, title: expect.any(String) });
  expect(await countEvents(), `${said}: the ledger changed`).toBe(eventsBefore);
  return res.body as Refusal;
}

function expectField(refusal: Refusal, field: string, what: string): void {
  const fields = (refusal.errors ?? []).map((e) => e.field);
  expect(fields, `${what}: ${JSON.stringify(refusal)}`).toContain(field);
}

/** Every path of a valid body with the JSON type of its value (under `anyJson` fields: none). */
function typedPaths(
  value: Json,
  anyJson: string[] = [],
  path: (string | number)[] = [],
): { path: (string | number)[]; kind: string }[] {
  if (path.length === 1 && anyJson.includes(String(path[0]))) return [];
  const here = path.length > 0 ? [{ path, kind: Array.isArray(value) ? 'array' : typeof value }] : [];
  const children: [string | number, Json][] = Array.isArray(value)
    ? value.map((v, i) => [i, v])
    : value !== null && typeof value === 'object'
      ? Object.entries(value)
      : [];
  return [...here, ...children.flatMap(([k, v]) => typedPaths(v, anyJson, [...path, k]))];
}

function setAt(body: Json, path: (string | number)[], value: Json | undefined): Json {
  const copy = structuredClone(body);
  let at = copy as Record<string | number, Json>;
  for (const seg of path.slice(0, -1)) at = at[seg] as Record<string | number, Json>;
  const last = path.at(-1) as string | number;
  if (value === undefined) delete at[last];
  else at[last] = value;
  return copy;
}

const safeKey = fc.stringMatching(/^[a-z][a-zA-Z0-9_-]{0,12}$/);
/** Any JSON without a reserved key (those are refused by the JSON parser, or dropped). */
const plainJson = fc
  .jsonValue({ maxDepth: 2 })
  .filter((v) => !RESERVED.some((k) => JSON.stringify(v).includes(`"${k}"`))) as fc.Arbitrary<Json>;
/** Cuts text to at most `max` UTF-16 units without splitting a character, as a trimmed field keeps it. */
function cut(text: string, max: number): string {
  let out = '';
  for (const ch of text) {
    if (out.length + ch.length > max) break;
    out += ch;
  }
  return out.trimEnd();
}
const smallString = fc.string({ maxLength: 8 });
const wrongOf: Record<string, fc.Arbitrary<Json>> = {
  string: fc.oneof(
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(smallString, { maxLength: 2 }),
    fc.dictionary(safeKey, smallString, { maxKeys: 2 }),
    // malformed, not mistyped: empty, blank, longer than any text field allows
    fc.constantFrom('', '   ', 'x'.repeat(4001)),
  ),
  number: fc.oneof(
    smallString,
    fc.boolean(),
    fc.constant(null),
    fc.array(fc.integer(), { maxLength: 2 }),
    fc.constantFrom(1.5, -1, 1e12),
  ),
  boolean: fc.oneof(smallString, fc.integer(), fc.constant(null), fc.constant<Json>([true]), fc.constant({})),
  array: fc.oneof(smallString, fc.integer(), fc.boolean(), fc.constant(null), fc.constant({})),
  object: fc.oneof(smallString, fc.integer(), fc.boolean(), fc.constant(null), fc.constant<Json>([])),
};

/** A valid body with one thing wrong, and the field the answer must name. */
function brokenBody(route: WriteRoute): fc.Arbitrary<{ body: Json; field: string; how: string }> {
  const paths = typedPaths(route.valid, route.anyJson);
  const objectPaths = [
    [] as (string | number)[],
    ...paths.filter((p) => p.kind === 'object').map((p) => p.path),
  ];
  const known = (at: (string | number)[]) => {
    let v: Json = route.valid;
    for (const seg of at) v = (v as Record<string | number, Json>)[seg] as Json;
    return Object.keys(v as object);
  };
  const options: fc.Arbitrary<{ body: Json; field: string; how: string }>[] = [
    // an unknown field, at the top or in any nested object
    fc
      .tuple(fc.constantFrom(...objectPaths), safeKey, plainJson)
      .filter(([at, key]) => !known(at).includes(key))
      .map(([at, key, value]) => ({
        body: setAt(route.valid, [...at, key], value),
        field: [...at, key].join('.'),
        how: 'unknown field',
      })),
  ];
  if (paths.length > 0) {
    options.push(
      fc.constantFrom(...paths).chain((p) =>
        (wrongOf[p.kind] as fc.Arbitrary<Json>).map((value) => ({
          body: setAt(route.valid, p.path, value),
          field: p.path.join('.'),
          how: `${p.kind} replaced by ${JSON.stringify(value).slice(0, 40)}`,
        })),
      ),
    );
  }
  if (route.required.length > 0) {
    options.push(
      fc.constantFrom(...route.required).map((key) => ({
        body: setAt(route.valid, [key], undefined),
        field: key,
        how: 'required field missing',
      })),
    );
  }
  return fc.oneof(...options);
}

/** Any JSON at all that cannot be a valid body of this route: not an object, or one with a stray key. */
function strayBody(route: WriteRoute): fc.Arbitrary<string> {
  const known = Object.keys(route.valid);
  return fc
    .oneof(fc.anything({ maxDepth: 3 }), fc.jsonValue({ maxDepth: 3 }))
    .map((v) => JSON.stringify(v) ?? 'null')
    .filter((raw) => {
      const parsed = JSON.parse(raw) as unknown;
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return true;
      // Any key the route does not know makes it invalid, a reserved one included (refused).
      return Object.keys(parsed).some((k) => !known.includes(k));
    });
}

/** 10,000 levels of nesting as JSON text. */
const deepArray = (levels: number) => `${'['.repeat(levels)}1${']'.repeat(levels)}`;
const deepObject = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;

/** A body of the route with `raw` JSON text as the value of `field`. */
function withRawField(route: WriteRoute, field: string, raw: string): { raw: string; field: string } {
  const rest = JSON.stringify(Object.fromEntries(Object.entries(route.valid).filter(([k]) => k !== field)));
  return { raw: `{${JSON.stringify(field)}:${raw}${rest === '{}' ? '}' : `,${rest.slice(1)}`}`, field };
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  t = await startTestApp({ env: { RATE_LIMIT_MAX: '1000000' } });
  eng = bearer((await createKey(t.server, { role: 'engineer', name: 'fuzzer' })).key);
  for (const route of ROUTES)
    live.set(route.name, route.state === 'none' ? undefined : await rolloutIn(route.state));
});
afterAll(() => t?.close());

describe.each(ROUTES.map((r) => [r.name, r] as const))('%s', (_, route) => {
  it('a valid body with one field wrongly typed, malformed, unknown or missing: 400 naming that field', async () => {
    await fc.assert(
      fc.asyncProperty(brokenBody(route), async ({ body, field, how }) => {
        const before = await countEvents();
        const res = await sendJson(route, body);
        const refusal = await expectRefused(res, before, `${route.name} with ${how}`, 400);
        expectField(refusal, field, `${route.name} with ${how}`);
      }),
      { numRuns: RUNS },
    );
  });

  it('any JSON that is not a body of this route (fc.anything, fc.jsonValue): a 4xx, never a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(strayBody(route), async (raw) => {
        const before = await countEvents();
        const res = await sendRaw(route, raw);
        const refusal = await expectRefused(res, before, `${route.name} with ${raw.slice(0, 200)}`);
        const parsed = JSON.parse(raw) as unknown;
        const isObject = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed);
        // What reached validation names the body, or a stray field; a body the JSON parser
        // refused (a __proto__ key) has no fields to name.
        if (!raw.includes('"__proto__"') && !raw.includes('"constructor"')) {
          expect(refusal.errors?.length, raw).toBeGreaterThan(0);
          if (!isObject) expectField(refusal, '(body)', raw);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('NUL and lone surrogates in any text field or key: 400 naming the field', async () => {
    const texts = typedPaths(route.valid, route.anyJson).filter((p) => p.kind === 'string');
    const cases: { body: Json; field: string }[] = [];
    for (const bad of ['a\u0000b', '\u0000', 'x\ud800', '\udc00y', 'ok\ud83d']) {
      for (const p of texts) cases.push({ body: setAt(route.valid, p.path, bad), field: p.path.join('.') });
      cases.push({ body: setAt(route.valid, ['stray'], bad), field: 'stray' });
      cases.push({ body: setAt(route.valid, [`k${bad}`], 1), field: `k${bad}` });
      for (const json of route.anyJson ?? []) {
        cases.push({ body: setAt(route.valid, [json], { note: bad }), field: `${json}.note` });
        cases.push({ body: setAt(route.valid, [json], [1, { [bad]: true }]), field: `${json}.1.${bad}` });
      }
    }
    for (const { body, field } of cases) {
      const before = await countEvents();
      const res = await sendJson(route, body);
      const what = `${route.name} with ${JSON.stringify(field)} holding NUL or a lone surrogate`;
      expectField(await expectRefused(res, before, what, 400), field, what);
    }
  });

  it('a constructor or prototype key, anywhere: 400 naming it, nothing recorded (never dropped silently)', async () => {
    // Nest's pipe used to delete such keys and record the rest: a readback's `observed` value
    // lost a key without a word. (A __proto__ key is refused by the JSON parser itself.)
    const cases: { body?: Json; raw?: string; field: string }[] = [];
    for (const key of ['constructor', 'prototype']) {
      cases.push({ body: setAt(route.valid, [key], 1), field: key });
      // In a body of the wrong shape the shape is named first, as for any other body.
      cases.push({ body: [{ [key]: 1 }], field: '(body)' });
      // Escaped in the text: the same key once decoded.
      cases.push({
        raw: withRawField(route, key, '1').raw.replace(
          `"${key}"`,
          `"\\u00${key.charCodeAt(0).toString(16)}${key.slice(1)}"`,
        ),
        field: key,
      });
      for (const json of route.anyJson ?? []) {
        cases.push({ body: setAt(route.valid, [json], { [key]: 'x' }), field: `${json}.${key}` });
        cases.push({
          body: setAt(route.valid, [json], [1, { ok: { [key]: true } }]),
          field: `${json}.1.ok.${key}`,
        });
      }
    }
    for (const { body, raw, field } of cases) {
      const before = await countEvents();
      const res = raw === undefined ? await sendJson(route, body as Json) : await sendRaw(route, raw);
      const what = `${route.name} with the key ${JSON.stringify(field)} (${raw ?? 'as JSON'})`;
      expectField(await expectRefused(res, before, what, 400), field, what);
    }
  });

  /** Commands whose body may be left out entirely (`curl -X POST …/start`). */
  const bodyOptional = (r: WriteRoute) => Object.keys(r.valid).length === 0 || r.name.endsWith('/approvals');

  it('raw bodies: broken JSON, non-objects, text/plain, other media types, > 1 MiB, 10,000 levels deep', async () => {
    const deep = [deepArray(10_000), deepObject(10_000)];
    const cases: { raw: string; type?: string; status?: number; field?: string }[] = [
      { raw: '{' },
      { raw: '{"reason": "x",}' },
      { raw: "{'reason': 'x'}" },
      { raw: '{"reason": "x"} {"reason": "y"}' },
      { raw: 'nul' },
      // An empty JSON body is no body: refused only where a body is required.
      ...(bodyOptional(route) ? [] : [{ raw: '' }, { raw: '  \n' }]),
      { raw: '\u0000' },
      { raw: '[]', status: 400, field: '(body)' },
      { raw: JSON.stringify([route.valid]), status: 400, field: '(body)' },
      { raw: '"a string"', status: 400, field: '(body)' },
      { raw: '42', status: 400, field: '(body)' },
      { raw: 'null', status: 400, field: '(body)' },
      { raw: 'true', status: 400, field: '(body)' },
      { raw: 'hello', type: 'text/plain' },
      { raw: JSON.stringify(route.valid), type: 'text/plain' },
      { raw: '<reason>x</reason>', type: 'application/xml', status: 415 },
      // the API speaks JSON only: a form is an unsupported media type
      { raw: 'stray=x', type: 'application/x-www-form-urlencoded', status: 415 },
      {
        raw: '--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--',
        type: 'multipart/form-data; boundary=b',
        status: 415,
      },
      // over the 1 MiB body limit, as valid JSON
      { raw: JSON.stringify({ ...route.valid, padding: 'x'.repeat(1_100_000) }), status: 413 },
      // nested past any schema: a top-level array or object, and as the value of a field
      ...deep.map((raw) => ({ raw, status: 400 })),
      // … and as the value of the first field, of a stray one and of each field that takes any JSON
      // (a recursive schema: 10,000 levels overflowed the call stack there, a 500)
      ...[Object.keys(route.valid)[0] ?? 'x', 'stray', ...(route.anyJson ?? [])].flatMap((field) =>
        deep.map((raw) => ({ ...withRawField(route, field, raw), status: 400 })),
      ),
      // as deep as fits in 1 MiB
      { raw: deepArray(500_000), status: 400 },
      // duplicate keys: JSON.parse keeps the last, and that one is what is validated
      { raw: '{"stray": 1, "stray": 2}', status: 400, field: 'stray' },
      ...Object.entries(route.valid)
        .slice(0, 1)
        .map(([field, value]) => ({
          ...withRawField(route, field, `${JSON.stringify(value)}, ${JSON.stringify(field)}: 5`),
          status: 400,
        })),
      // numbers JSON can write but a double cannot hold
      ...[Object.keys(route.valid)[0] ?? 'x', ...(route.anyJson ?? [])].flatMap((field) =>
        ['1e400', '-1e400'].map((raw) => ({ ...withRawField(route, field, raw), status: 400 })),
      ),
    ];
    for (const { raw, type, status, field } of cases) {
      const before = await countEvents();
      const res = await sendRaw(route, raw, type);
      const what = `${route.name} with ${type ?? 'application/json'} ${JSON.stringify(raw.slice(0, 60))}`;
      const refusal = await expectRefused(res, before, what, status);
      if (field) expectField(refusal, field, what);
    }
  });

  it('__proto__, constructor and prototype keys anywhere: refused (never dropped) and never polluting', async () => {
    const inject = (at: (string | number)[], key: string, value: Json) =>
      JSON.stringify(setAt(route.valid, [...at, 'INJECTED_KEY'], value)).replace(
        '"INJECTED_KEY"',
        `"${key}"`,
      );
    const nested = typedPaths(route.valid)
      .filter((p) => p.kind === 'object')
      .map((p) => p.path);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom([] as (string | number)[], ...nested),
        fc.constantFrom(...RESERVED),
        fc.oneof(
          fc.constant({ polluted: true } as Json),
          fc.constant({ prototype: { polluted: true } } as Json),
          fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
        ),
        async (at, key, value) => {
          const raw = inject(at, key, value);
          const before = await countEvents();
          const res = await sendRaw(route, raw);
          const what = `${route.name} with ${raw.slice(0, 200)}`;
          expect(res.status, `${what} → ${JSON.stringify(res.body)}`).toBeLessThan(500);
          expect(({} as Record<string, unknown>).polluted, what).toBeUndefined();
          expect(Object.hasOwn(Object.prototype, 'polluted'), what).toBe(false);
          // Refused, never dropped: a key left out would make the ledger record less than was sent.
          await expectRefused(res, before, what, 400);
        },
      ),
      {
        numRuns: 15,
        examples: [
          [[], '__proto__', { polluted: true }],
          [[], 'constructor', { prototype: { polluted: true } }],
          [[], 'prototype', { polluted: true }],
          [[], 'constructor', { polluted: true }],
          ...nested
            .slice(0, 1)
            .map((at): [(string | number)[], string, Json] => [at, '__proto__', { polluted: true }]),
        ],
      },
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
  });

  it('after all of it, the live rollout is where it was and takes the valid body', async () => {
    const before = await countEvents();
    const id = live.get(route.name);
    const version = id ? (await request(t.server).get(`${R}/${id}`).set(AUTH).expect(200)).body.version : 0;
    const res = await sendJson(route, route.valid);
    expect(res.status, JSON.stringify(res.body)).toBe(route.state === 'none' ? 201 : 200);
    expect(res.body.version).toBe(version + 1);
    expect(await countEvents()).toBe(before + 1);
  });
});

// ---------------------------------------------------------------------------------------------

/** Hostile text that is nonetheless a valid value: none of it may be changed on the way. */
const HOSTILE = [
  "'; drop table event; --",
  'Robert\'); DROP TABLE rollout_summary_v1;-- " OR 1=1 /* */ $$ $1 %_ \\x00 \\u0000',
  'rtl\u202eevil\u202c override',
  'emoji 🚀👩🏽‍💻🏳️‍🌈 and astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
  '<script>alert("x")</script> &amp; &lt;',
  'tab\there\r\nCRLF\nLF\u000bVT\u0007BEL\u001bESC end',
  'zero\u200bwidth\u200djoin\ufeffbom\u00a0nbsp',
  'precomposed é',
  'decomposed e\u0301',
  `long${'ľ🚀x'.repeat(224)}`, // 900 UTF-16 code units
  '{"json": "in a string"}',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4j-style lookup, as text on purpose
  '%00 %s %n ${jndi:ldap://x} {{7*7}}',
];

describe('hostile text that is a valid value', () => {
  /** Posts, then checks GET /:id and GET /:id/events give the exact text back. */
  async function roundTrip(
    id: string,
    tail: string,
    body: Record<string, Json>,
    check: (data: Json) => void,
  ) {
    const res = await request(t.server).post(`${R}/${id}${tail}`).set(eng).send(body);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const events = await request(t.server).get(`${R}/${id}/events`).set(eng).expect(200);
    check(events.body.events.at(-1).data);
    return (await request(t.server).get(`${R}/${id}`).set(eng).expect(200)).body;
  }

  it('is stored verbatim in every text field of a plan and read back byte-identical', async () => {
    expect(HOSTILE.find((s) => s.startsWith('long'))?.length).toBe(900);
    for (const s of HOSTILE) {
      const short = cut(s, 300);
      const plan = {
        ...PLAN,
        title: short,
        sharedTruthChanges: s,
        products: [{ product: 'identity', fromVersion: cut(s, 100), toVersion: cut(s, 100) }],
        compatibility: [{ product: 'identity', reference: s, result: 'unknown' }],
        releaseNotes: [{ product: 'identity', version: cut(s, 100), reference: s, reviewedBy: cut(s, 200) }],
        sequence: [{ id: 's1', order: 1, layer: cut(s, 200), action: s }],
        rollbackBoundary: { reversibleState: s },
        verification: { representativePaths: [s, short] },
      };
      const created = await request(t.server).post(R).set(eng).send(plan);
      expect(created.status, `${JSON.stringify(s)}: ${JSON.stringify(created.body)}`).toBe(201);
      const id = created.body.id as string;
      const got = await request(t.server).get(`${R}/${id}`).set(eng).expect(200);
      expect(got.body.plan).toEqual(plan);
      expect(got.body.plan.title).toBe(short);
      expect(Buffer.from(got.body.plan.sharedTruthChanges, 'utf8').equals(Buffer.from(s, 'utf8'))).toBe(true);
      const events = await request(t.server).get(`${R}/${id}/events`).set(eng).expect(200);
      expect(events.body.events[0].data.plan).toEqual(plan);
      expect(events.body.events[0].data.plan.rollbackBoundary.reversibleState).toBe(s);
    }
  });

  it('is stored verbatim by every other write with text, and in readback JSON keys and values', async () => {
    const id = await rolloutIn('planned');
    for (const s of HOSTILE) {
      const view = await roundTrip(id, '/approvals', { comment: s }, (data) =>
        expect((data as { comment: string }).comment).toBe(s),
      );
      expect(view.approvals.at(-1).comment).toBe(s);
    }
    await request(t.server).post(`${R}/${id}/start`).set(eng).expect(200);
    for (const s of HOSTILE) {
      const json = { [s]: s, list: [s, { [cut(s, 50)]: [s] }], é: 1, 'e\u0301': 2 };
      const readback = {
        phase: 'during',
        surface: 'contracts-drift',
        expected: json,
        observed: s,
        verdict: 'warn',
      };
      const view = await roundTrip(id, '/readbacks', readback, (data) => {
        expect(data).toEqual(readback);
        const keys = Object.keys((data as { expected: object }).expected);
        expect(keys).toContain(s);
        // Not normalised: the precomposed and the decomposed key are two keys.
        expect(keys).toContain('é');
        expect(keys).toContain('e\u0301');
      });
      expect(view.readbacks.at(-1)).toMatchObject(readback);
      const verification = { path: s, verdict: 'fail', evidence: s };
      await roundTrip(id, '/path-verifications', verification, (data) => expect(data).toEqual(verification));
      await request(t.server).post(`${R}/${id}/steps/s1/start`).set(eng).expect(200);
      await roundTrip(id, '/steps/s1/fail', { reason: s }, (data) =>
        expect(data).toEqual({ stepId: 's1', reason: s }),
      );
      await roundTrip(id, '/rollbacks', { reason: s, toStepId: 's1' }, (data) =>
        expect(data).toEqual({ reason: s, toStepId: 's1' }),
      );
      await request(t.server).post(`${R}/${id}/rollbacks/complete`).set(eng).expect(200);
    }
    const view = await roundTrip(id, '/abort', { reason: HOSTILE[0] as string }, (data) =>
      expect(data).toEqual({ reason: HOSTILE[0] }),
    );
    expect(view.abortReason).toBe(HOSTILE[0]);
    expect(view.rollbacks.map((r: { reason: string }) => r.reason)).toEqual(HOSTILE);
  });

  it('keeps "é" and "e\\u0301" apart: no Unicode normalisation on the way in or out', async () => {
    const id = await rolloutIn('in_progress');
    const composed = await roundTrip(
      id,
      '/path-verifications',
      { path: 'caf\u00e9', verdict: 'pass' },
      () => {},
    );
    const decomposed = await roundTrip(
      id,
      '/path-verifications',
      { path: 'cafe\u0301', verdict: 'pass' },
      () => {},
    );
    const paths = decomposed.pathVerifications.map((p: { path: string }) => p.path);
    expect(paths).toEqual(['caf\u00e9', 'cafe\u0301']);
    expect(paths[0]).not.toBe(paths[1]);
    expect(composed.pathVerifications).toHaveLength(1);
  });

  it('any well-formed Unicode (fast-check, full range) round-trips through readbacks exactly', async () => {
    const id = await rolloutIn('in_progress');
    const text = fc
      .string({ unit: 'grapheme', minLength: 1, maxLength: 40 })
      .map((s) => s.replaceAll('\u0000', ''));
    const key = text.filter((s) => !RESERVED.includes(s));
    const trimmed = text.filter((s) => s.length > 0 && s.trim() === s);
    await fc.assert(
      fc.asyncProperty(key, text, trimmed, async (key, value, path) => {
        const readback = {
          phase: 'post',
          surface: 'observability-readiness',
          expected: { [key]: value, k: [value] },
          observed: value,
          verdict: 'pass',
        };
        await roundTrip(id, '/readbacks', readback, (data) => expect(data).toEqual(readback));
        const verification = { path, verdict: 'pass' };
        await roundTrip(id, '/path-verifications', verification, (data) =>
          expect(data).toEqual(verification),
        );
      }),
      { numRuns: 30 },
    );
  });

  it('duplicate keys: refused with a 400 naming the key, never read as the last one (JSON.parse would)', async () => {
    const id = await rolloutIn('planned');
    const raw = '{"comment": "first", "comment": "second"}';
    const before = await countEvents();
    const res = await request(t.server)
      .post(`${R}/${id}/approvals`)
      .set(eng)
      .set('Content-Type', 'application/json')
      .send(raw);
    expectField(await expectRefused(res, before, 'approvals with "comment" twice', 400), 'comment', raw);
  });
});

describe('the other writes', () => {
  it('POST /api-keys: wrong types, NUL, lone surrogates and deep nesting are 400 naming the field; no key made', async () => {
    const countKeys = async () =>
      Number(
        (
          await t.handle.db
            .selectFrom('api_key')
            .select((eb) => eb.fn.countAll<string>().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const cases: [Json, string][] = [
      [{ role: 'auditor', name: 'a\u0000b' }, 'name'],
      [{ role: 'auditor', name: 'a\ud800b' }, 'name'],
      [{ role: 'auditor', name: 5 }, 'name'],
      [{ role: 'superuser', name: 'x' }, 'role'],
      [{ role: ['admin'], name: 'x' }, 'role'],
      [{ role: 'auditor', name: 'x', expiresInDays: '5' }, 'expiresInDays'],
      [{ role: 'auditor', name: 'x', expiresAt: 5 }, 'expiresAt'],
      [{ role: 'auditor', name: 'x', extra: true }, 'extra'],
      [[{ role: 'auditor', name: 'x' }], '(body)'],
    ];
    for (const [body, field] of cases) {
      const keys = await countKeys();
      const res = await request(t.server)
        .post('/api/v1/api-keys')
        .set(AUTH)
        .send(body as object);
      const what = `POST /api-keys ${JSON.stringify(body)}`;
      expect(res.status, `${what}: ${JSON.stringify(res.body)}`).toBe(400);
      expectField(res.body, field, what);
      expect(await countKeys()).toBe(keys);
    }
    await fc.assert(
      fc.asyncProperty(fc.anything({ maxDepth: 3 }), async (v) => {
        const raw = JSON.stringify(v) ?? 'null';
        const keys = await countKeys();
        const res = await request(t.server)
          .post('/api/v1/api-keys')
          .set(AUTH)
          .set('Content-Type', 'application/json')
          .send(raw);
        expect(res.status, `${raw}: ${JSON.stringify(res.body)}`).toBe(400);
        expect(await countKeys()).toBe(keys);
      }),
      { numRuns: RUNS },
    );
    const deep = await request(t.server)
      .post('/api/v1/api-keys')
      .set(AUTH)
      .set('Content-Type', 'application/json')
      .send(`{"role":"auditor","name":${deepArray(10_000)}}`);
    expect(deep.status).toBe(400);
    expectField(deep.body, 'name', 'deep name');
  });

  it('list filters with NUL are a 400 naming the parameter, not a database error', async () => {
    const res = await request(t.server).get(`${R}?q=a%00b`).set(eng);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expectField(res.body, 'q', 'q with NUL');
  });
});
