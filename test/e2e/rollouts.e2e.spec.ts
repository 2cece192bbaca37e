import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH, startTestApp, type TestApp } from '../support/app.js';
import { bearer, type CreatedKey, createKey } from '../support/auth.js';
import { UUID_V7, uuidv7Ms } from '../support/ids.js';
import { eventually } from '../support/wait.js';

// The rollout REST contract, end to end over HTTP: every endpoint's happy path, every 4xx class,
// If-Match races, Idempotency-Key retries, asOf reads and verbatim storage of hostile text.

const BASE = '/api/v1/rollouts';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const HEX64 = /^[0-9a-f]{64}$/;
const ADMIN_ACTOR = { id: 'env:ADMIN_TOKEN', name: 'ADMIN_TOKEN', role: 'admin' };

type Method = 'get' | 'post' | 'put';
type Headers = Record<string, string>;
type Body = Record<string, unknown> | unknown[] | undefined;

const PLAN = {
  title: 'Upgrade identity stack',
  scope: 'stack-wide',
  environment: 'production',
  products: [
    { product: 'identity', fromVersion: '3.2.0', toVersion: '3.3.0' },
    { product: 'portal-docs', fromVersion: '2026.3', toVersion: '2026.4' },
  ],
  compatibility: [
    { product: 'identity', reference: 'compatibility/identity-3.3', result: 'compatible' },
    { product: 'portal-docs', reference: 'compatibility/portal-docs-2026.4', result: 'compatible' },
  ],
  releaseNotes: [
    { product: 'identity', version: '3.3.0', reference: 'release-notes/identity/3.3.0', reviewedBy: 'maria' },
    { product: 'portal-docs', version: '2026.4', reference: 'release-notes/portal-docs/2026.4' },
  ],
  sequence: [
    { id: 'migrate-schema', order: 1, product: 'identity', action: 'additive migration', reversible: true },
    { id: 'roll-identity', order: 2, product: 'identity', action: 'roll pods to 3.3.0', reversible: true },
    { id: 'publish-docs', order: 3, layer: 'docs', action: 'publish docs 2026.4', reversible: false },
  ],
  sharedTruthChanges: 'version-truth publishes identity 3.3.0 after roll-identity',
  rollbackBoundary: { reversibleState: 'identity pods and schema', irreversibleAfterStepId: 'roll-identity' },
  verification: {
    pre: ['version-truth', 'observability-readiness'],
    post: ['version-truth', 'observability-readiness'],
    representativePaths: ['user signs in through the portal'],
  },
};

const READBACK = {
  phase: 'pre',
  surface: 'version-truth',
  expected: { identity: '3.2.0' },
  observed: { identity: '3.2.0' },
  verdict: 'pass',
};

/** Valid but hostile text: SQL, quotes, emoji (with ZWJ), zero-width, bidi overrides, markup, combining marks. */
const HOSTILE =
  `Robert'); DROP TABLE event; -- " OR 1=1 /* */ $$ \\x00 %_ 🚀👩🏽‍💻 zero\u200bwidth\u200djoin\ufeffbom ` +
  `rtl\u202eevil\u202c עברית العربية <script>alert('x')</script> &amp; e\u0301 ${'\u{1F600}'}`;

let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({ env: { SEQUENCER_POLL_MS: '20' } });
  // Listening once lets supertest send truly concurrent requests to one server.
  await t.app.listen(0, '127.0.0.1');
});
afterAll(() => t?.close());

// ---------------------------------------------------------------------------------------------
// helpers

function call(method: Method, path: string, body?: Body, headers: Headers = {}, auth: Headers = AUTH) {
  const req = request(t.server)[method](path).set(auth).set(headers);
  return body === undefined ? req : req.send(body as object);
}
const get = (path: string, headers: Headers = {}) => call('get', path, undefined, headers);
const post = (path: string, body?: Body, headers: Headers = {}) => call('post', path, body, headers);
const put = (path: string, body?: Body, headers: Headers = {}) => call('put', path, body, headers);

async function create(plan: Body = PLAN, headers: Headers = {}): Promise<string> {
  const res = await post(BASE, plan, headers);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

interface EventView {
  position: number | null;
  streamVersion: number;
  eventId: string;
  type: string;
  data: Record<string, unknown>;
  actor: Record<string, unknown> | null;
  metadata: Record<string, unknown>;
  recordedAt: string;
  hash: string;
}

async function eventsOf(id: string): Promise<EventView[]> {
  const res = await get(`${BASE}/${id}/events`).expect(200);
  return res.body.events as EventView[];
}

async function versionOf(id: string): Promise<number> {
  const res = await get(`${BASE}/${id}`).expect(200);
  expect(res.headers.etag).toBe(`"${res.body.version}"`);
  return res.body.version as number;
}

/** Posts each write and checks it answered 200 with the next version. */
async function walk(id: string, writes: [string, Body?][]): Promise<number> {
  let version = 0;
  for (const [path, body] of writes) {
    const res = await post(`${BASE}/${id}/${path}`, body);
    expect(res.status, `${path}: ${JSON.stringify(res.body)}`).toBe(200);
    version = res.body.version as number;
  }
  return version;
}

function expectProblem(res: request.Response, status: number, fields?: string[]): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({
    type: expect.stringMatching(/^https:\/\//),
    title: expect.any(String),
    status,
    detail: expect.any(String),
  });
  if (fields) {
    expect(res.body.errors, JSON.stringify(res.body)).toEqual(
      expect.arrayContaining(fields.map((field) => ({ field, message: expect.any(String) }))),
    );
  }
}

/** The rollout's GET body once every event of it has a ledger position. */
async function sequencedState(id: string): Promise<{ body: Record<string, unknown>; etag: string }> {
  return eventually(`rollout ${id} to be sequenced`, async () => {
    const events = await eventsOf(id);
    if (events.some((e) => e.position === null)) return undefined;
    const res = await get(`${BASE}/${id}`).expect(200);
    return res.body.lastPosition === events.at(-1)?.position
      ? { body: res.body as Record<string, unknown>, etag: res.headers.etag as string }
      : undefined;
  });
}

/** An ISO time strictly after every event recorded so far and strictly before any later one. */
async function timeBetween(): Promise<string> {
  const at = Date.now();
  while (Date.now() <= at + 1) await new Promise((r) => setTimeout(r, 2));
  const iso = new Date(at + 1).toISOString();
  return iso;
}

// ---------------------------------------------------------------------------------------------

describe('happy path of every endpoint', () => {
  it('POST /rollouts without an Idempotency-Key names the rollout in time order (UUIDv7)', async () => {
    const before = Date.now();
    const first = (await post(BASE, PLAN).expect(201)).body.id as string;
    await new Promise((resolve) => setTimeout(resolve, 3));
    const second = (await post(BASE, PLAN).expect(201)).body.id as string;
    const after = Date.now();
    for (const id of [first, second]) {
      expect(id).toMatch(UUID_V7);
      expect(uuidv7Ms(id)).toBeGreaterThanOrEqual(before);
      expect(uuidv7Ms(id)).toBeLessThanOrEqual(after);
    }
    // Made milliseconds apart, the later one sorts after: its index entries land at the end.
    expect(second > first).toBe(true);
  });

  it('POST /rollouts records the plan: 201, Location, ETag "1", { id, version, status }', async () => {
    const res = await post(BASE, PLAN).expect(201);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toEqual({ id: expect.stringMatching(UUID), version: 1, status: 'planned' });
    const id = res.body.id as string;
    expect(res.headers.location).toBe(`${BASE}/${id}`);
    expect(res.headers.etag).toBe('"1"');
    expect(res.headers['idempotent-replayed']).toBeUndefined();

    const got = await get(res.headers.location as string).expect(200);
    expect(got.headers.etag).toBe('"1"');
    expect(got.body).toEqual({
      id,
      exists: true,
      status: 'planned',
      plan: PLAN,
      planRevision: 1,
      approvals: [],
      steps: [
        { id: 'migrate-schema', planned: true, status: 'pending', attempts: 0 },
        { id: 'roll-identity', planned: true, status: 'pending', attempts: 0 },
        { id: 'publish-docs', planned: true, status: 'pending', attempts: 0 },
      ],
      readbacks: [],
      pathVerifications: [],
      rollbacks: [],
      createdAt: expect.stringMatching(ISO_MS),
      updatedAt: got.body.createdAt,
      version: 1,
      missingPlanParts: [],
      lastPosition: got.body.lastPosition === null ? null : expect.any(Number),
    });
  });

  it('accepts a plan with parts missing and lists them (a version bump only)', async () => {
    const id = await create({ products: [{ product: 'identity', toVersion: '3.3.0' }] });
    const got = await get(`${BASE}/${id}`).expect(200);
    expect(got.body.missingPlanParts).toEqual([
      'title',
      'scope',
      'environment',
      'compatibility',
      'releaseNotes',
      'sequence',
      'sharedTruthChanges',
      'rollbackBoundary',
      'verification',
    ]);
    const empty = await create({});
    expect((await get(`${BASE}/${empty}`).expect(200)).body.missingPlanParts).toHaveLength(10);
  });

  it('walks every write endpoint: 200, the next version as ETag and body, and the state and events it records', async () => {
    const id = await create();
    const revised = { ...PLAN, title: 'Upgrade identity stack (revised)' };
    const writes: [Method, string, Body, string, Record<string, unknown>][] = [
      ['put', 'plan', revised, 'planned', { plan: revised }],
      ['post', 'approvals', { comment: 'lgtm' }, 'planned', { approver: 'ADMIN_TOKEN', comment: 'lgtm' }],
      ['post', 'readbacks', READBACK, 'planned', READBACK],
      ['post', 'start', undefined, 'in_progress', {}],
      ['post', 'steps/migrate-schema/start', {}, 'in_progress', { stepId: 'migrate-schema' }],
      ['post', 'steps/migrate-schema/complete', undefined, 'in_progress', { stepId: 'migrate-schema' }],
      ['post', 'steps/roll-identity/start', undefined, 'in_progress', { stepId: 'roll-identity' }],
      [
        'post',
        'steps/roll-identity/fail',
        { reason: 'pods crashloop' },
        'in_progress',
        { stepId: 'roll-identity', reason: 'pods crashloop' },
      ],
      [
        'post',
        'rollbacks',
        { reason: 'crashloop', toStepId: 'roll-identity' },
        'rolling_back',
        { reason: 'crashloop', toStepId: 'roll-identity' },
      ],
      ['post', 'rollbacks/complete', {}, 'in_progress', {}],
      ['post', 'steps/roll-identity/start', undefined, 'in_progress', { stepId: 'roll-identity' }],
      [
        'post',
        'readbacks',
        { ...READBACK, phase: 'during', stepId: 'roll-identity', verdict: 'warn' },
        'in_progress',
        { ...READBACK, phase: 'during', stepId: 'roll-identity', verdict: 'warn' },
      ],
      ['post', 'steps/roll-identity/complete', undefined, 'in_progress', { stepId: 'roll-identity' }],
      ['post', 'steps/publish-docs/start', undefined, 'in_progress', { stepId: 'publish-docs' }],
      ['post', 'steps/publish-docs/complete', undefined, 'in_progress', { stepId: 'publish-docs' }],
      [
        'post',
        'readbacks',
        { ...READBACK, phase: 'post', expected: { identity: '3.3.0' }, observed: { identity: '3.3.0' } },
        'in_progress',
        { ...READBACK, phase: 'post', expected: { identity: '3.3.0' }, observed: { identity: '3.3.0' } },
      ],
      [
        'post',
        'path-verifications',
        { path: 'user signs in through the portal', verdict: 'pass', evidence: 'synthetic run 4711' },
        'in_progress',
        { path: 'user signs in through the portal', verdict: 'pass', evidence: 'synthetic run 4711' },
      ],
      ['post', 'complete', {}, 'completed', {}],
    ];
    const types = [
      'PlanRevised',
      'PlanApproved',
      'ReadbackRecorded',
      'RolloutStarted',
      'StepStarted',
      'StepCompleted',
      'StepStarted',
      'StepFailed',
      'RollbackStarted',
      'RollbackCompleted',
      'StepStarted',
      'ReadbackRecorded',
      'StepCompleted',
      'StepStarted',
      'StepCompleted',
      'ReadbackRecorded',
      'PathVerified',
      'RolloutCompleted',
    ];

    let expectedVersion = 1;
    for (const [method, path, body, status] of writes) {
      expectedVersion++;
      const res = await call(method, `${BASE}/${id}/${path}`, body);
      expect(res.status, `${method} ${path}: ${JSON.stringify(res.body)}`).toBe(200);
      expect(res.body).toEqual({ id, version: expectedVersion, status });
      expect(res.headers.etag).toBe(`"${expectedVersion}"`);
      expect(res.headers['idempotent-replayed']).toBeUndefined();
    }

    const got = await get(`${BASE}/${id}`).expect(200);
    expect(got.headers.etag).toBe(`"${writes.length + 1}"`);
    const at = expect.stringMatching(ISO_MS);
    expect(got.body).toMatchObject({
      id,
      status: 'completed',
      plan: revised,
      planRevision: 2,
      version: writes.length + 1,
      approvals: [{ approver: 'ADMIN_TOKEN', comment: 'lgtm', at }],
      steps: [
        {
          id: 'migrate-schema',
          planned: true,
          status: 'completed',
          attempts: 1,
          startedAt: at,
          completedAt: at,
        },
        {
          id: 'roll-identity',
          planned: true,
          status: 'completed',
          attempts: 2,
          startedAt: at,
          completedAt: at,
        },
        {
          id: 'publish-docs',
          planned: true,
          status: 'completed',
          attempts: 1,
          startedAt: at,
          completedAt: at,
        },
      ],
      rollbacks: [{ reason: 'crashloop', toStepId: 'roll-identity', startedAt: at, completedAt: at }],
      pathVerifications: [
        { path: 'user signs in through the portal', verdict: 'pass', evidence: 'synthetic run 4711', at },
      ],
      startedAt: at,
      completedAt: at,
    });
    expect(got.body.steps[1].failureReason).toBeUndefined();
    expect(got.body.readbacks.map((r: { phase: string; verdict: string; stepId?: string }) => r)).toEqual([
      { ...READBACK, at },
      { ...READBACK, phase: 'during', verdict: 'warn', stepId: 'roll-identity', at },
      { ...READBACK, phase: 'post', expected: { identity: '3.3.0' }, observed: { identity: '3.3.0' }, at },
    ]);

    const events = await eventsOf(id);
    expect(events.map((e) => e.type)).toEqual(['RolloutPlanned', ...types]);
    expect(events.map((e) => e.streamVersion)).toEqual(events.map((_, i) => i + 1));
    expect(events[0]?.data).toEqual({ rolloutId: id, plan: PLAN });
    writes.forEach(([, , , , data], i) => {
      expect(events[i + 1]?.data, types[i]).toEqual(data);
    });
    for (const e of events) {
      expect(e.eventId).toMatch(UUID);
      expect(e.hash).toMatch(HEX64);
      expect(e.recordedAt).toMatch(ISO_MS);
      expect(e.actor).toEqual(ADMIN_ACTOR);
      expect(e.metadata).toMatchObject({ actor: ADMIN_ACTOR, source: 'rest', requestId: expect.any(String) });
      // The request digest is internal bookkeeping of idempotency, never shown.
      expect(e.metadata).not.toHaveProperty('requestDigest');
    }
  });

  it('POST /:id/abort closes a rollout in flight with its reason', async () => {
    const id = await create();
    await walk(id, [['start'], ['steps/migrate-schema/start']]);
    const res = await post(`${BASE}/${id}/abort`, { reason: 'change freeze' }).expect(200);
    expect(res.body).toEqual({ id, version: 4, status: 'aborted' });
    expect(res.headers.etag).toBe('"4"');
    const got = await get(`${BASE}/${id}`).expect(200);
    expect(got.body).toMatchObject({
      status: 'aborted',
      abortReason: 'change freeze',
      abortedAt: expect.any(String),
    });
    expect((await eventsOf(id)).at(-1)).toMatchObject({
      type: 'RolloutAborted',
      data: { reason: 'change freeze' },
    });
  });

  it('an unplanned step is recorded and flagged, not refused', async () => {
    const id = await create();
    await walk(id, [['start'], ['steps/hotfix-1/start'], ['steps/hotfix-1/complete']]);
    const got = await get(`${BASE}/${id}`).expect(200);
    expect(got.body.steps).toContainEqual(
      expect.objectContaining({ id: 'hotfix-1', planned: false, status: 'completed' }),
    );
  });

  describe('actors', () => {
    let engineer: CreatedKey;
    let auditor: CreatedKey;
    beforeAll(async () => {
      engineer = await createKey(t.server, { name: 'ci-deployer', role: 'engineer' });
      auditor = await createKey(t.server, { name: 'audit-desk', role: 'auditor' });
    });

    it('records the calling key as the actor of every write, and the caller-given X-Request-Id', async () => {
      const asEngineer = bearer(engineer.key);
      const created = await call('post', BASE, PLAN, { 'X-Request-Id': 'req-plan-1' }, asEngineer).expect(
        201,
      );
      const id = created.body.id as string;
      await call(
        'post',
        `${BASE}/${id}/approvals`,
        {},
        { 'X-Request-Id': 'req-approve-1' },
        asEngineer,
      ).expect(200);
      await post(`${BASE}/${id}/start`).expect(200);

      const events = await eventsOf(id);
      const actor = { id: `key:${engineer.id}`, name: 'ci-deployer', role: 'engineer' };
      expect(events.map((e) => [e.type, e.actor, e.metadata.requestId])).toEqual([
        ['RolloutPlanned', actor, 'req-plan-1'],
        ['PlanApproved', actor, 'req-approve-1'],
        ['RolloutStarted', ADMIN_ACTOR, expect.any(String)],
      ]);
      expect(events.every((e) => JSON.stringify(e.metadata.actor) === JSON.stringify(e.actor))).toBe(true);
      // The approver is the calling key, whatever the body says.
      expect((await get(`${BASE}/${id}`).expect(200)).body.approvals).toEqual([
        { approver: 'ci-deployer', at: expect.any(String) },
      ]);
    });

    it('403: an auditor may read rollouts but not write them', async () => {
      const id = await create();
      const asAuditor = bearer(auditor.key);
      for (const [method, path, body] of [
        ['post', BASE, PLAN],
        ['put', `${BASE}/${id}/plan`, PLAN],
        ['post', `${BASE}/${id}/start`, undefined],
        ['post', `${BASE}/${id}/abort`, { reason: 'no' }],
      ] as [Method, string, Body][]) {
        expectProblem(await call(method, path, body, {}, asAuditor), 403);
      }
      await call('get', `${BASE}/${id}`, undefined, {}, asAuditor).expect(200);
      await call('get', `${BASE}/${id}/events`, undefined, {}, asAuditor).expect(200);
      await call('get', BASE, undefined, {}, asAuditor).expect(200);
      expect(await versionOf(id)).toBe(1);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('400: malformed requests are problem+json naming the field, and record nothing', () => {
  let id: string;
  beforeAll(async () => {
    id = await create();
    await walk(id, [['start'], ['steps/migrate-schema/start']]);
  });

  it('refuses a body that is not JSON', async () => {
    for (const raw of ['{"title": ', '{title: 1}', 'null x']) {
      const res = await request(t.server)
        .post(BASE)
        .set(AUTH)
        .set('Content-Type', 'application/json')
        .send(raw);
      expectProblem(res, 400);
    }
    const res = await request(t.server)
      .post(`${BASE}/${id}/readbacks`)
      .set(AUTH)
      .set('Content-Type', 'application/json')
      .send('{"phase":"pre",');
    expectProblem(res, 400);
  });

  it.each([
    ['an array for a plan', [PLAN], ['(body)']],
    ['a number for the title', { title: 42 }, ['title']],
    ['a blank title', { title: '   ' }, ['title']],
    ['an unknown top-level key', { ...PLAN, titel: 'typo' }, ['titel']],
    ['a step order that is not a number', { sequence: [{ id: 'a', order: 'first' }] }, ['sequence.0.order']],
    [
      'a negative step order',
      {
        sequence: [
          { id: 'a', order: 1 },
          { id: 'b', order: -1 },
        ],
      },
      ['sequence.1.order'],
    ],
    ['an unknown key in a step', { sequence: [{ id: 'a', order: 1, ordre: 2 }] }, ['sequence.0.ordre']],
    [
      'a step id used twice',
      {
        sequence: [
          { id: 'a', order: 1 },
          { id: 'a', order: 2 },
        ],
      },
      ['sequence.1.id'],
    ],
    ['a product without toVersion', { products: [{ product: 'identity' }] }, ['products.0.toVersion']],
    [
      'an unknown compatibility result',
      { compatibility: [{ product: 'x', reference: 'r', result: 'maybe' }] },
      ['compatibility.0.result'],
    ],
    ['an unknown surface', { verification: { pre: ['version-truth', 'nope'] } }, ['verification.pre.1']],
    ['an environment with a space', { environment: 'prod env' }, ['environment']],
    ['a boundary with an unknown key', { rollbackBoundary: { after: 'x' } }, ['rollbackBoundary.after']],
    ['two bad fields', { title: 1, scope: 'galaxy' }, ['title', 'scope']],
  ])('POST /rollouts with %s', async (_, body, fields) => {
    expectProblem(await post(BASE, body as Body), 400, fields);
  });

  it.each([
    ['put', 'plan', { sequence: [{ id: 'a', order: 1.5 }] }, ['sequence.0.order']],
    ['put', 'plan', { title: 'x', extra: true }, ['extra']],
    ['post', 'approvals', { comment: 5 }, ['comment']],
    ['post', 'approvals', { approver: 'someone-else' }, ['approver']],
    ['post', 'readbacks', {}, ['phase', 'surface', 'verdict']],
    ['post', 'readbacks', { ...READBACK, phase: 'mid' }, ['phase']],
    ['post', 'readbacks', { ...READBACK, surface: 'version_truth' }, ['surface']],
    ['post', 'readbacks', { ...READBACK, verdict: 'ok' }, ['verdict']],
    ['post', 'readbacks', { ...READBACK, stepId: '../etc' }, ['stepId']],
    ['post', 'readbacks', { ...READBACK, by: 'me' }, ['by']],
    ['post', 'start', { force: true }, ['force']],
    ['post', 'steps/roll-identity/start', { x: 1 }, ['x']],
    ['post', 'steps/migrate-schema/complete', { ok: true }, ['ok']],
    ['post', 'steps/migrate-schema/fail', {}, ['reason']],
    ['post', 'steps/migrate-schema/fail', { reason: '   ' }, ['reason']],
    ['post', 'path-verifications', { path: 'sign in', verdict: 'warn' }, ['verdict']],
    ['post', 'path-verifications', { verdict: 'pass' }, ['path']],
    ['post', 'rollbacks', { reason: 'r', toStepId: '-bad' }, ['toStepId']],
    ['post', 'rollbacks', {}, ['reason']],
    ['post', 'rollbacks/complete', { now: true }, ['now']],
    ['post', 'complete', { force: 1 }, ['force']],
    ['post', 'abort', {}, ['reason']],
    ['post', 'abort', { reason: 7 }, ['reason']],
  ])('%s /:id/%s with %j', async (method, path, body, fields) => {
    const before = await versionOf(id);
    expectProblem(await call(method as Method, `${BASE}/${id}/${path}`, body as Body), 400, fields);
    expect(await versionOf(id)).toBe(before);
  });

  it('refuses a NUL character (not storable) with 400, not 500', async () => {
    expectProblem(await post(BASE, { title: 'a\u0000b' }), 400, ['title']);
    expectProblem(await post(`${BASE}/${id}/readbacks`, { ...READBACK, observed: { v: 'a\u0000b' } }), 400, [
      'observed.v',
    ]);
  });

  it.each([
    ['get', 'not-a-uuid'],
    ['get', 'not-a-uuid/events'],
    ['get', '12345678-1234-1234-1234-1234567890zz'],
    ['put', 'not-a-uuid/plan'],
    ['post', 'not-a-uuid/start'],
    ['post', 'not-a-uuid/steps/a/start'],
    ['post', 'not-a-uuid/abort'],
  ])('refuses a rollout id that is not a UUID: %s /rollouts/%s', async (method, path) => {
    const body = path.endsWith('plan') ? PLAN : path.endsWith('abort') ? { reason: 'x' } : undefined;
    expectProblem(await call(method as Method, `${BASE}/${path}`, body), 400, ['id']);
  });

  it.each([['-leading-dash'], ['a%20b'], ['x'.repeat(101)], ['%C3%A9t%C3%A9'], ['a~b']])(
    'refuses a step id %s',
    async (stepId) => {
      const before = await versionOf(id);
      for (const action of ['start', 'complete', 'fail']) {
        const body = action === 'fail' ? { reason: 'x' } : undefined;
        expectProblem(await post(`${BASE}/${id}/steps/${stepId}/${action}`, body), 400, ['stepId']);
      }
      expect(await versionOf(id)).toBe(before);
    },
  );

  it.each([['abc'], ['"v1"'], ['"1", "2"'], ['-1'], ['"1.5"']])('refuses If-Match: %s', async (ifMatch) => {
    const before = await versionOf(id);
    expectProblem(await post(`${BASE}/${id}/readbacks`, READBACK, { 'If-Match': ifMatch }), 400, [
      'If-Match',
    ]);
    expect(await versionOf(id)).toBe(before);
  });

  it('refuses an Idempotency-Key that is not 1-200 printable ASCII characters', async () => {
    const before = await versionOf(id);
    for (const key of ['has space', 'k'.repeat(201), 'tab\tkey']) {
      expectProblem(await post(`${BASE}/${id}/readbacks`, READBACK, { 'Idempotency-Key': key }), 400, [
        'Idempotency-Key',
      ]);
    }
    expectProblem(await post(BASE, PLAN, { 'Idempotency-Key': 'k'.repeat(201) }), 400, ['Idempotency-Key']);
    expect(await versionOf(id)).toBe(before);
  });

  it.each([
    ['asOf=yesterday', 'asOf'],
    ['asOf=2026-13-01T00:00:00Z', 'asOf'],
    ['asOf=2026-01-01', 'asOf'],
    ['asOf=-1', 'asOf'],
    ['asOf=1.5', 'asOf'],
    ['asOf=', 'asOf'],
    ['as_of=3', 'as_of'],
  ])('refuses GET /:id?%s', async (query, field) => {
    expectProblem(await get(`${BASE}/${id}?${query}`), 400, [field]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('401: no key, or a key that is not valid', () => {
  const someId = randomUUID();
  it.each([
    ['post', BASE, PLAN],
    ['put', `${BASE}/${someId}/plan`, PLAN],
    ['post', `${BASE}/${someId}/approvals`, {}],
    ['post', `${BASE}/${someId}/readbacks`, READBACK],
    ['post', `${BASE}/${someId}/start`, undefined],
    ['post', `${BASE}/${someId}/steps/a/start`, undefined],
    ['post', `${BASE}/${someId}/steps/a/complete`, undefined],
    ['post', `${BASE}/${someId}/steps/a/fail`, { reason: 'x' }],
    ['post', `${BASE}/${someId}/path-verifications`, { path: 'p', verdict: 'pass' }],
    ['post', `${BASE}/${someId}/rollbacks`, { reason: 'x' }],
    ['post', `${BASE}/${someId}/rollbacks/complete`, undefined],
    ['post', `${BASE}/${someId}/complete`, undefined],
    ['post', `${BASE}/${someId}/abort`, { reason: 'x' }],
    ['get', `${BASE}/${someId}`, undefined],
    ['get', `${BASE}/${someId}?asOf=1`, undefined],
    ['get', `${BASE}/${someId}/events`, undefined],
    ['get', BASE, undefined],
  ])('%s %s', async (method, path, body) => {
    for (const auth of [
      {},
      { Authorization: 'Bearer ul_not-a-real-key' },
      { Authorization: 'Basic YTpi' },
    ] as Headers[]) {
      const res = await call(method as Method, path, body as Body, {}, auth);
      expectProblem(res, 401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('404: a rollout that does not exist (a valid UUID)', () => {
  const unknown = randomUUID();
  it.each([
    ['get', '', undefined],
    ['get', '?asOf=1', undefined],
    ['get', `?asOf=${encodeURIComponent(new Date().toISOString())}`, undefined],
    ['get', '/events', undefined],
    ['put', '/plan', PLAN],
    ['post', '/approvals', {}],
    ['post', '/readbacks', READBACK],
    ['post', '/start', undefined],
    ['post', '/steps/migrate-schema/start', undefined],
    ['post', '/steps/migrate-schema/complete', undefined],
    ['post', '/steps/migrate-schema/fail', { reason: 'x' }],
    ['post', '/path-verifications', { path: 'p', verdict: 'pass' }],
    ['post', '/rollbacks', { reason: 'x' }],
    ['post', '/rollbacks/complete', undefined],
    ['post', '/complete', undefined],
    ['post', '/abort', { reason: 'x' }],
  ])('%s /rollouts/<unknown>%s', async (method, suffix, body) => {
    const res = await call(method as Method, `${BASE}/${unknown}${suffix}`, body as Body);
    expectProblem(res, 404);
    expect(res.body.type).toMatch(/not-found$/);
    expect(res.body.detail).toContain(unknown);
  });

  it('a refused write to an unknown rollout creates nothing', async () => {
    await post(`${BASE}/${unknown}/abort`, { reason: 'x' }, { 'Idempotency-Key': 'abort-unknown' }).expect(
      404,
    );
    expectProblem(await get(`${BASE}/${unknown}/events`), 404);
    // The key was not spent on the refused write.
    await post(`${BASE}/${unknown}/abort`, { reason: 'x' }, { 'Idempotency-Key': 'abort-unknown' }).expect(
      404,
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('409: transitions that cannot be true are refused and record nothing', () => {
  async function expectConflict(id: string, method: Method, path: string, body: Body, state: string) {
    const before = await versionOf(id);
    const res = await call(method, `${BASE}/${id}/${path}`, body);
    expectProblem(res, 409);
    expect(res.body).toMatchObject({ type: expect.stringMatching(/invalid-transition$/), state });
    expect(await versionOf(id)).toBe(before);
    return res;
  }

  it('before the start: steps, rollbacks and completion are refused', async () => {
    const id = await create();
    await expectConflict(id, 'post', 'steps/migrate-schema/start', undefined, 'planned');
    await expectConflict(id, 'post', 'steps/migrate-schema/complete', undefined, 'planned');
    await expectConflict(id, 'post', 'rollbacks', { reason: 'x' }, 'planned');
    await expectConflict(id, 'post', 'rollbacks/complete', undefined, 'planned');
    await expectConflict(id, 'post', 'complete', undefined, 'planned');
  });

  it('in flight: a step never started, starting twice, a step twice, revising or approving after the start', async () => {
    const id = await create();
    await walk(id, [['start'], ['steps/migrate-schema/start']]);
    const pending = await expectConflict(
      id,
      'post',
      'steps/roll-identity/complete',
      undefined,
      'in_progress',
    );
    expect(pending.body.detail).toContain('is pending');
    const never = await expectConflict(id, 'post', 'steps/not-in-plan/complete', undefined, 'in_progress');
    expect(never.body.detail).toContain('never started');
    await expectConflict(id, 'post', 'steps/not-in-plan/fail', { reason: 'x' }, 'in_progress');
    await expectConflict(id, 'post', 'start', undefined, 'in_progress');
    await expectConflict(id, 'post', 'steps/migrate-schema/start', undefined, 'in_progress');
    await expectConflict(id, 'put', 'plan', PLAN, 'in_progress');
    await expectConflict(id, 'post', 'approvals', {}, 'in_progress');
    await expectConflict(id, 'post', 'complete', undefined, 'in_progress');
    await expectConflict(id, 'post', 'rollbacks/complete', undefined, 'in_progress');
    await walk(id, [['steps/migrate-schema/complete']]);
    await expectConflict(id, 'post', 'steps/migrate-schema/complete', undefined, 'in_progress');
    await expectConflict(id, 'post', 'steps/migrate-schema/start', undefined, 'in_progress');
    await walk(id, [['rollbacks', { reason: 'x' }]]);
    await expectConflict(id, 'post', 'rollbacks', { reason: 'again' }, 'rolling_back');
    await expectConflict(id, 'post', 'steps/roll-identity/start', undefined, 'rolling_back');
    await expectConflict(id, 'post', 'complete', undefined, 'rolling_back');
  });

  const closedWrites: [Method, string, Body][] = [
    ['put', 'plan', PLAN],
    ['post', 'approvals', {}],
    ['post', 'readbacks', READBACK],
    ['post', 'start', undefined],
    ['post', 'steps/migrate-schema/start', undefined],
    ['post', 'steps/migrate-schema/complete', undefined],
    ['post', 'steps/migrate-schema/fail', { reason: 'x' }],
    ['post', 'path-verifications', { path: 'p', verdict: 'pass' }],
    ['post', 'rollbacks', { reason: 'x' }],
    ['post', 'rollbacks/complete', undefined],
    ['post', 'complete', undefined],
    ['post', 'abort', { reason: 'x' }],
  ];

  it('every write to a completed rollout is refused', async () => {
    const id = await create();
    await walk(id, [['start'], ['complete']]);
    for (const [method, path, body] of closedWrites)
      await expectConflict(id, method, path, body, 'completed');
  });

  it('every write to an aborted rollout is refused', async () => {
    const id = await create();
    await walk(id, [['abort', { reason: 'cancelled' }]]);
    for (const [method, path, body] of closedWrites) await expectConflict(id, method, path, body, 'aborted');
  });
});

// ---------------------------------------------------------------------------------------------

describe('If-Match: optimistic concurrency on the stream version', () => {
  it('412 with expected and actual on a stale version; nothing recorded; the current version is accepted', async () => {
    const id = await create();
    await walk(id, [['approvals', {}]]);
    const stale = await post(`${BASE}/${id}/readbacks`, READBACK, { 'If-Match': '"1"' });
    expectProblem(stale, 412);
    expect(stale.body).toMatchObject({ expected: 1, actual: 2, stream: `rollout-${id}` });
    const ahead = await put(`${BASE}/${id}/plan`, PLAN, { 'If-Match': '"7"' });
    expectProblem(ahead, 412);
    expect(ahead.body).toMatchObject({ expected: 7, actual: 2 });
    expect(await versionOf(id)).toBe(2);

    // The ETag as given, a weak one, or a bare number.
    const ok = await post(`${BASE}/${id}/readbacks`, READBACK, { 'If-Match': '"2"' }).expect(200);
    expect(ok.headers.etag).toBe('"3"');
    await put(`${BASE}/${id}/plan`, PLAN, { 'If-Match': 'W/"3"' }).expect(200);
    await post(`${BASE}/${id}/start`, undefined, { 'If-Match': '4' }).expect(200);
    expect(await versionOf(id)).toBe(5);
  });

  it('two writers with the same If-Match race: exactly one wins, the other gets 412, one event is recorded', async () => {
    const id = await create();
    for (let round = 0; round < 4; round++) {
      const version = await versionOf(id);
      const bodies = [
        { ...READBACK, observed: { writer: 'a', round } },
        { ...READBACK, observed: { writer: 'b', round } },
      ];
      const results = await Promise.all(
        bodies.map((body) => post(`${BASE}/${id}/readbacks`, body, { 'If-Match': `"${version}"` })),
      );
      expect(results.map((r) => r.status).sort()).toEqual([200, 412]);
      const winner = results.findIndex((r) => r.status === 200);
      const loser = results[1 - winner]!;
      expect(results[winner]!.body).toEqual({ id, version: version + 1, status: 'planned' });
      expectProblem(loser, 412);
      expect(loser.body).toMatchObject({ expected: version, actual: version + 1 });
      const events = await eventsOf(id);
      expect(events).toHaveLength(version + 1);
      expect(events.at(-1)?.data).toEqual(bodies[winner]);
    }
  });

  it('two state changes racing with the same If-Match (start vs abort): one wins, the state is the winner’s', async () => {
    const id = await create();
    const [start, abort] = await Promise.all([
      post(`${BASE}/${id}/start`, undefined, { 'If-Match': '"1"' }),
      post(`${BASE}/${id}/abort`, { reason: 'race' }, { 'If-Match': '"1"' }),
    ]);
    expect([start.status, abort.status].sort()).toEqual([200, 412]);
    const got = await get(`${BASE}/${id}`).expect(200);
    expect(got.body.version).toBe(2);
    expect(got.body.status).toBe(start.status === 200 ? 'in_progress' : 'aborted');
  });

  it('without If-Match, concurrent writers all succeed, each with its own version', async () => {
    const id = await create();
    const results = await Promise.all(
      [0, 1, 2].map((n) => post(`${BASE}/${id}/readbacks`, { ...READBACK, observed: { n } })),
    );
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(results.map((r) => r.body.version).sort()).toEqual([2, 3, 4]);
    expect(await eventsOf(id)).toHaveLength(4);
  });
});

// ---------------------------------------------------------------------------------------------

describe('Idempotency-Key: a write is safe to retry', () => {
  const key = () => `idem-${randomUUID()}`;

  it('the same write three times: the same answer, Idempotent-Replayed on the retries, one event', async () => {
    const id = await create();
    const k = key();
    const results = [];
    for (let i = 0; i < 3; i++)
      results.push(await post(`${BASE}/${id}/readbacks`, READBACK, { 'Idempotency-Key': k }));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    for (const r of results) {
      expect(r.body).toEqual({ id, version: 2, status: 'planned' });
      expect(r.headers.etag).toBe('"2"');
    }
    expect(results.map((r) => r.headers['idempotent-replayed'])).toEqual([undefined, 'true', 'true']);
    const events = await eventsOf(id);
    expect(events).toHaveLength(2);
    expect(events[1]?.metadata.idempotencyKey).toBe(k);
  });

  it.each([
    ['a readback', 'readbacks', READBACK],
    ['the start', 'start', undefined],
    ['an approval', 'approvals', { comment: 'ok' }],
    ['the abort', 'abort', { reason: 'stop' }],
  ])('%s sent three times at once: one event, the same answer to all', async (_, path, body) => {
    for (let round = 0; round < 3; round++) {
      const id = await create();
      const k = key();
      const results = await Promise.all(
        [0, 1, 2].map(() => post(`${BASE}/${id}/${path}`, body, { 'Idempotency-Key': k })),
      );
      expect(
        results.map((r) => r.status),
        JSON.stringify(results.map((r) => r.body)),
      ).toEqual([200, 200, 200]);
      const first = results[0]!;
      for (const r of results) {
        expect(r.body).toEqual(first.body);
        expect(r.headers.etag).toBe('"2"');
      }
      expect(first.body.version).toBe(2);
      expect(results.filter((r) => r.headers['idempotent-replayed'] === 'true')).toHaveLength(2);
      expect(await eventsOf(id)).toHaveLength(2);
    }
  });

  it('retries arriving while the first is being written (staggered) all get the replay, never a 409', async () => {
    // A retry that looked for its key before the original committed, then read the stream after
    // it, used to decide "already started" / "already exists" instead of replaying.
    const staggered = (send: () => request.Test) =>
      Promise.all(
        Array.from({ length: 8 }, (_, i) => new Promise((r) => setTimeout(r, i * 3)).then(() => send())),
      );
    for (let round = 0; round < 3; round++) {
      const id = await create({});
      const k = key();
      const starts = await staggered(() => post(`${BASE}/${id}/start`, undefined, { 'Idempotency-Key': k }));
      expect(
        starts.map((r) => r.status),
        JSON.stringify(starts.map((r) => r.body)),
      ).toEqual(starts.map(() => 200));
      for (const r of starts) expect(r.body).toEqual({ id, version: 2, status: 'in_progress' });
      expect(await eventsOf(id)).toHaveLength(2);

      const c = key();
      const creates = await staggered(() => post(BASE, {}, { 'Idempotency-Key': c }));
      expect(
        creates.map((r) => r.status),
        JSON.stringify(creates.map((r) => r.body)),
      ).toEqual(creates.map(() => 201));
      expect(new Set(creates.map((r) => JSON.stringify(r.body))).size).toBe(1);
      expect(await eventsOf(creates[0]!.body.id)).toHaveLength(1);
    }
  });

  it('a create retried with the same key names the same rollout (also at once); another key, another rollout', async () => {
    const k = key();
    const first = await post(BASE, PLAN, { 'Idempotency-Key': k }).expect(201);
    const again = await post(BASE, PLAN, { 'Idempotency-Key': k }).expect(201);
    expect(again.body).toEqual(first.body);
    expect(again.headers.location).toBe(first.headers.location);
    expect(again.headers.etag).toBe('"1"');
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(await eventsOf(first.body.id)).toHaveLength(1);

    const k2 = key();
    const together = await Promise.all([0, 1, 2].map(() => post(BASE, PLAN, { 'Idempotency-Key': k2 })));
    expect(
      together.map((r) => r.status),
      JSON.stringify(together.map((r) => r.body)),
    ).toEqual([201, 201, 201]);
    expect(new Set(together.map((r) => r.body.id)).size).toBe(1);
    expect(together[0]!.body.id).not.toBe(first.body.id);
    expect(await eventsOf(together[0]!.body.id)).toHaveLength(1);
  });

  it('the same key with another body, route or rollout is a 409 problem and records nothing', async () => {
    const id = await create();
    const other = await create();
    const k = key();
    await post(`${BASE}/${id}/readbacks`, READBACK, { 'Idempotency-Key': k }).expect(200);
    const refusals = [
      await post(`${BASE}/${id}/readbacks`, { ...READBACK, verdict: 'fail' }, { 'Idempotency-Key': k }),
      await post(`${BASE}/${id}/approvals`, {}, { 'Idempotency-Key': k }),
      await post(`${BASE}/${other}/readbacks`, READBACK, { 'Idempotency-Key': k }),
    ];
    for (const res of refusals) {
      expectProblem(res, 409);
      expect(res.body.type).toMatch(/idempotency-conflict$/);
    }
    expect(await eventsOf(id)).toHaveLength(2);
    expect(await eventsOf(other)).toHaveLength(1);

    const c = key();
    await post(BASE, PLAN, { 'Idempotency-Key': c }).expect(201);
    expectProblem(await post(BASE, { ...PLAN, title: 'another plan' }, { 'Idempotency-Key': c }), 409);
  });

  it('a retry after later writes (even after completion, even with its If-Match) answers as the first time', async () => {
    const id = await create();
    const k = key();
    const first = await post(`${BASE}/${id}/start`, undefined, {
      'Idempotency-Key': k,
      'If-Match': '"1"',
    }).expect(200);
    await walk(id, [['steps/migrate-schema/start'], ['steps/migrate-schema/complete'], ['complete']]);
    const retry = await post(`${BASE}/${id}/start`, undefined, { 'Idempotency-Key': k, 'If-Match': '"1"' });
    expect(retry.status, JSON.stringify(retry.body)).toBe(200);
    expect(retry.body).toEqual(first.body);
    expect(retry.body).toEqual({ id, version: 2, status: 'in_progress' });
    expect(retry.headers.etag).toBe('"2"');
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(await eventsOf(id)).toHaveLength(5);
  });

  it('keys are per caller: another key holder using the same Idempotency-Key writes its own event', async () => {
    const engineer = await createKey(t.server, { name: 'other-pipeline', role: 'engineer' });
    const id = await create();
    const k = key();
    await post(`${BASE}/${id}/readbacks`, READBACK, { 'Idempotency-Key': k }).expect(200);
    const theirs = await call(
      'post',
      `${BASE}/${id}/readbacks`,
      READBACK,
      { 'Idempotency-Key': k },
      bearer(engineer.key),
    );
    expect(theirs.status).toBe(200);
    expect(theirs.headers['idempotent-replayed']).toBeUndefined();
    expect(await eventsOf(id)).toHaveLength(3);
  });
});

// ---------------------------------------------------------------------------------------------

describe('asOf: the rollout as it was', () => {
  it('returns the earlier state exactly, by ledger position and by time, after later events', async () => {
    const id = await create();
    await walk(id, [
      ['approvals', { comment: 'go' }],
      ['readbacks', READBACK],
    ]);
    const early = await sequencedState(id);
    const earlyTime = await timeBetween();

    await walk(id, [['start'], ['steps/migrate-schema/start']]);
    const middle = await sequencedState(id);
    const middleTime = await timeBetween();

    await walk(id, [
      ['steps/migrate-schema/fail', { reason: 'disk full' }],
      ['abort', { reason: 'give up' }],
    ]);
    const late = await sequencedState(id);

    expect(early.body.version).toBe(3);
    expect(middle.body.version).toBe(5);
    expect(late.body).toMatchObject({ version: 7, status: 'aborted' });

    for (const [snapshot, time] of [
      [early, earlyTime],
      [middle, middleTime],
    ] as const) {
      const byPosition = await get(`${BASE}/${id}?asOf=${snapshot.body.lastPosition}`).expect(200);
      expect(byPosition.body).toEqual(snapshot.body);
      expect(byPosition.headers.etag).toBe(snapshot.etag);
      const byTime = await get(`${BASE}/${id}?asOf=${encodeURIComponent(time)}`).expect(200);
      expect(byTime.body).toEqual(snapshot.body);
      expect(byTime.headers.etag).toBe(snapshot.etag);
    }
    // A time with an offset names the same instant.
    const offsetTime = new Date(earlyTime).toISOString().replace('Z', '+00:00');
    expect((await get(`${BASE}/${id}?asOf=${encodeURIComponent(offsetTime)}`).expect(200)).body).toEqual(
      early.body,
    );

    // Now, and asOf the last position, and asOf a position after it: the current state.
    expect((await get(`${BASE}/${id}`).expect(200)).body).toEqual(late.body);
    expect((await get(`${BASE}/${id}?asOf=${late.body.lastPosition}`).expect(200)).body).toEqual(late.body);
    expect((await get(`${BASE}/${id}?asOf=999999999`).expect(200)).body).toEqual(late.body);

    // Before the rollout existed: not found.
    const events = await eventsOf(id);
    expectProblem(await get(`${BASE}/${id}?asOf=${(events[0]!.position as number) - 1}`), 404);
    expectProblem(await get(`${BASE}/${id}?asOf=0`), 404);
    const before = new Date(Date.parse(events[0]!.recordedAt) - 1).toISOString();
    expectProblem(await get(`${BASE}/${id}?asOf=${encodeURIComponent(before)}`), 404);
  });

  it('every position of a stream yields the state after exactly that many events', async () => {
    const id = await create();
    await walk(id, [['start'], ['steps/migrate-schema/start'], ['steps/migrate-schema/complete']]);
    await sequencedState(id);
    const events = await eventsOf(id);
    for (const e of events) {
      const res = await get(`${BASE}/${id}?asOf=${e.position}`).expect(200);
      expect(res.body).toMatchObject({
        version: e.streamVersion,
        lastPosition: e.position,
        updatedAt: e.recordedAt,
      });
      expect(res.headers.etag).toBe(`"${e.streamVersion}"`);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('hostile but valid text is stored verbatim', () => {
  it('in a plan title, readback values, comments and reasons: read back byte-identical', async () => {
    const observed = {
      [HOSTILE]: HOSTILE,
      "'; DELETE FROM ledger; --": [
        '\u202e',
        '🙂',
        1.5,
        null,
        true,
        { '<img src=x onerror=alert(1)>': '\u200b' },
      ],
      'key with "quotes" and \\backslashes\\': 'line1\nline2\ttab\r\n',
    };
    const id = await create({ ...PLAN, title: HOSTILE, sharedTruthChanges: HOSTILE });
    await walk(id, [
      ['approvals', { comment: HOSTILE }],
      ['readbacks', { ...READBACK, expected: HOSTILE, observed }],
      ['readbacks', { ...READBACK, expected: [HOSTILE], observed: HOSTILE }],
      ['start'],
      ['path-verifications', { path: HOSTILE, verdict: 'fail', evidence: HOSTILE }],
      ['abort', { reason: HOSTILE }],
    ]);

    const same = (value: unknown) => {
      expect(typeof value).toBe('string');
      expect(Buffer.from(value as string, 'utf8').equals(Buffer.from(HOSTILE, 'utf8'))).toBe(true);
    };
    const got = (await get(`${BASE}/${id}`).expect(200)).body;
    same(got.plan.title);
    same(got.plan.sharedTruthChanges);
    same(got.approvals[0].comment);
    same(got.readbacks[0].expected);
    expect(got.readbacks[0].observed).toEqual(observed);
    same(got.readbacks[0].observed[HOSTILE]);
    expect(Object.keys(got.readbacks[0].observed).sort()).toEqual(Object.keys(observed).sort());
    same(got.readbacks[1].expected[0]);
    same(got.readbacks[1].observed);
    same(got.pathVerifications[0].path);
    same(got.pathVerifications[0].evidence);
    same(got.abortReason);

    const events = await eventsOf(id);
    same((events[0]!.data.plan as { title: string }).title);
    expect(events[2]!.data).toEqual({ ...READBACK, expected: HOSTILE, observed });
    same((events.at(-1)!.data as { reason: string }).reason);
  });
});

describe('If-Match on a rollout that does not exist', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  it('is a 404 (unknown), not a 412', async () => {
    const res = await request(t.server)
      .post('/api/v1/rollouts/00000000-0000-4000-8000-000000000000/start')
      .set(AUTH)
      .set('If-Match', '"3"')
      .send({});
    expect(res.status).toBe(404);
  });
});

describe('commands without a body, as curl sends them', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  it('accept Content-Type: application/json with an empty body, or no body at all', async () => {
    const created = await request(t.server)
      .post('/api/v1/rollouts')
      .set(AUTH)
      .send({ title: 'curl', sequence: [{ id: 's1', order: 1, product: 'gateway' }] })
      .expect(201);
    const id = created.body.id;
    // Exactly what `curl -X POST -H 'Content-Type: application/json' URL` sends.
    const start = await request(t.server)
      .post(`/api/v1/rollouts/${id}/start`)
      .set(AUTH)
      .set('Content-Type', 'application/json')
      .send('');
    expect(start.status, JSON.stringify(start.body)).toBe(200);
    expect(start.body.status).toBe('in_progress');
    // And with no Content-Type and no body.
    await request(t.server).post(`/api/v1/rollouts/${id}/steps/s1/start`).set(AUTH).expect(200);
    // A command that needs a body still says so.
    const abort = await request(t.server)
      .post(`/api/v1/rollouts/${id}/abort`)
      .set(AUTH)
      .set('Content-Type', 'application/json')
      .send('');
    expect(abort.status).toBe(400);
  });
});
