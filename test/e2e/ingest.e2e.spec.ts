import { randomUUID } from 'node:crypto';
import { type CloudEvent, emitterFor, HTTP, httpTransport, Mode } from 'cloudevents';
import { sql } from 'kysely';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH, startTestApp, type TestApp } from '../support/app.js';
import { bearer, createKey } from '../support/auth.js';
import { cdevent, cloudEventOf, type Kind } from '../support/cdevents.js';
import { waitFor } from '../support/wait.js';

// CDEvents over CloudEvents, end to end, with the cloudevents SDK as the real client: every
// recognised type in binary and structured mode lands as the right rollout event; batch mode;
// redelivery and concurrent delivery record once; the role matrix of the endpoint.

const INGEST = '/api/v1/ingest/cloudevents';
const R = '/api/v1/rollouts';

/** A plan moving the service of the specification's examples (`mySubject123`) in `test123`. */
const plan = (environment = 'test123') => ({
  title: 'Ship mySubject123 2.0',
  environment,
  products: [{ product: 'mySubject123', fromVersion: '1.0.0', toVersion: '2.0.0' }],
  sequence: [{ id: 'deploy', order: 1, product: 'mySubject123' }],
});

type Given = 'planned' | 'in_progress' | 'step_running';

let t: TestApp;
let sink: string;
const keys = {} as Record<'ingest' | 'engineer' | 'auditor', string>;

beforeAll(async () => {
  t = await startTestApp({ env: { SEQUENCER_POLL_MS: '20' } });
  await t.app.listen(0, '127.0.0.1');
  sink = `${(await t.app.getUrl()).replace('[::1]', '127.0.0.1')}${INGEST}`;
  for (const role of ['ingest', 'engineer', 'auditor'] as const) {
    keys[role] = (await createKey(t.server, { role, name: `ingest-${role}` })).key;
  }
});
afterAll(() => t?.close());

// ---------------------------------------------------------------------------------------------
// helpers

/** A rollout of `plan()` brought to the given state over REST; its id. */
async function rolloutIn(given: Given, environment?: string): Promise<string> {
  const created = await request(t.server).post(R).set(AUTH).send(plan(environment)).expect(201);
  const id = created.body.id as string;
  if (given === 'planned') return id;
  await request(t.server).post(`${R}/${id}/start`).set(AUTH).expect(200);
  if (given === 'step_running')
    await request(t.server).post(`${R}/${id}/steps/deploy/start`).set(AUTH).expect(200);
  return id;
}

interface Answer {
  events: {
    source: string;
    id: string;
    eventIds: string[];
    recordedAs: string[];
    streamId: string;
    rolloutId: string | null;
    reason?: string;
    duplicate: boolean;
  }[];
}

/** Sends a CloudEvent with the SDK's own HTTP emitter, over a real connection. */
async function emit(mode: Mode, event: CloudEvent<unknown>, key = keys.ingest): Promise<Answer> {
  const send = emitterFor(httpTransport(sink), { binding: HTTP, mode });
  const response = (await send(event, { headers: bearer(key) })) as { body: string };
  return JSON.parse(response.body) as Answer;
}

async function eventsOf(rolloutId: string) {
  const res = await request(t.server).get(`${R}/${rolloutId}/events`).set(AUTH).expect(200);
  return res.body.events as {
    eventId: string;
    type: string;
    data: Record<string, unknown>;
    metadata: Record<string, unknown>;
    actor: { role: string };
  }[];
}

/**
 * Waits until the rollout list shows this many rollouts in the environment: an event that names
 * no rollout is matched against the list (then against each candidate's own stream).
 */
async function listed(environment: string, count: number): Promise<void> {
  await waitFor(`${count} rollouts listed in ${environment}`, async () => {
    const res = await request(t.server).get(R).query({ environment }).set(AUTH).expect(200);
    return res.body.items.length === count;
  });
}

async function eventCount(): Promise<number> {
  const { rows } = await sql<{ n: string }>`select count(*) as n from event`.execute(t.handle.db);
  return Number(rows[0]?.n);
}

/** The CloudEvent as the SDK serialises it in structured mode: what the ledger must keep verbatim. */
const structuredForm = (event: CloudEvent<unknown>) =>
  JSON.parse(HTTP.structured(event).body as string) as Record<string, unknown>;

// ---------------------------------------------------------------------------------------------

interface Case {
  kind: Kind;
  version: string;
  mode: Mode;
  given: Given;
  extensions?: Record<string, string>;
  /** The events it records on the rollout, in order, and what the first one says. */
  recorded: string[];
  data: Record<string, unknown>;
}

const CASES: Case[] = [
  {
    kind: 'service.deployed',
    version: '0.1.0',
    mode: Mode.BINARY,
    given: 'step_running',
    recorded: ['StepCompleted'],
    data: { stepId: 'deploy' },
  },
  {
    kind: 'service.deployed',
    version: '0.2.0',
    mode: Mode.STRUCTURED,
    given: 'step_running',
    recorded: ['StepCompleted'],
    data: { stepId: 'deploy' },
  },
  {
    kind: 'service.upgraded',
    version: '0.1.1',
    mode: Mode.STRUCTURED,
    given: 'step_running',
    recorded: ['StepCompleted'],
    data: { stepId: 'deploy' },
  },
  {
    kind: 'service.rolledback',
    version: '0.2.0',
    mode: Mode.BINARY,
    given: 'step_running',
    recorded: ['RollbackStarted', 'RollbackCompleted'],
    data: { toStepId: 'deploy', reason: expect.stringContaining('mySubject123 rolled back in test123') },
  },
  {
    kind: 'service.removed',
    version: '0.1.1',
    mode: Mode.BINARY,
    given: 'in_progress',
    recorded: ['ExternalFactRecorded'],
    data: { kind: 'service.removed', service: 'mySubject123', environment: 'test123' },
  },
  {
    kind: 'environment.modified',
    version: '0.2.0',
    mode: Mode.STRUCTURED,
    given: 'planned',
    recorded: ['ExternalFactRecorded'],
    data: { kind: 'environment.modified', environment: 'test123', url: 'https://example.org/testEnv' },
  },
  {
    kind: 'testcaserun.finished',
    version: '0.1.0',
    mode: Mode.BINARY,
    given: 'in_progress',
    recorded: ['PathVerified'],
    data: { path: 'Login Test', verdict: 'pass', evidence: expect.stringContaining('pass') },
  },
  {
    kind: 'testsuiterun.finished',
    version: '0.2.0',
    mode: Mode.STRUCTURED,
    given: 'in_progress',
    recorded: ['PathVerified'],
    data: {
      path: 'Auth TestSuite',
      verdict: 'fail',
      evidence: expect.stringContaining('Host 123.34.23.32 not found'),
    },
  },
  {
    kind: 'incident.detected',
    version: '0.1.0',
    mode: Mode.BINARY,
    given: 'in_progress',
    recorded: ['ExternalFactRecorded'],
    data: {
      kind: 'incident.detected',
      subjectId: 'incident-123',
      service: 'mySubject123',
      summary: 'incident incident-123 detected in test123 on mySubject123: Response time above 10ms',
    },
  },
  {
    kind: 'incident.resolved',
    version: '0.2.0',
    mode: Mode.STRUCTURED,
    given: 'in_progress',
    recorded: ['ExternalFactRecorded'],
    data: { kind: 'incident.resolved', cdeventType: 'dev.cdevents.incident.resolved.0.2.0' },
  },
  {
    kind: 'pipelinerun.started',
    version: '0.1.0',
    mode: Mode.BINARY,
    given: 'in_progress',
    extensions: { stepid: 'deploy' },
    recorded: ['StepStarted'],
    data: { stepId: 'deploy' },
  },
  {
    kind: 'pipelinerun.finished',
    version: '0.2.0',
    mode: Mode.STRUCTURED,
    given: 'step_running',
    extensions: { stepid: 'deploy' },
    recorded: ['StepFailed'],
    data: { stepId: 'deploy', reason: expect.stringContaining('Something went wrong') },
  },
];

describe('each recognised CDEvent, sent with the cloudevents SDK, lands as the right rollout event', () => {
  it.each(CASES.map((c) => [`${c.kind} ${c.version} (${c.mode})`, c] as const))('%s', async (_, c) => {
    const rolloutId = await rolloutIn(c.given);
    const before = await eventsOf(rolloutId);
    const event = cloudEventOf(c.kind, c.version, { extensions: { rolloutid: rolloutId, ...c.extensions } });

    const answer = await emit(c.mode, event);

    expect(answer.events).toEqual([
      {
        source: event.source,
        id: event.id,
        eventIds: expect.arrayContaining([expect.any(String)]),
        recordedAs: c.recorded,
        streamId: `rollout-${rolloutId}`,
        rolloutId,
        duplicate: false,
      },
    ]);
    const after = await eventsOf(rolloutId);
    const added = after.slice(before.length);
    expect(added.map((e) => e.type)).toEqual(c.recorded);
    expect(added.map((e) => e.eventId)).toEqual(answer.events[0]?.eventIds);
    expect(added[0]?.data).toMatchObject(c.data);
    for (const e of added) {
      // The original CloudEvent, verbatim, and who sent it.
      expect(e.metadata).toMatchObject({ source: 'cloudevents', cloudEventMode: c.mode });
      expect(e.actor.role).toBe('ingest');
      if (c.mode === Mode.STRUCTURED) expect(e.metadata.cloudEvent).toEqual(structuredForm(event));
      else {
        expect(e.metadata.cloudEvent).toMatchObject({
          specversion: '1.0',
          id: event.id,
          source: event.source,
          type: event.type,
          rolloutid: rolloutId,
          data: event.data,
        });
      }
    }
  });

  it('reads the rollout from customData.rolloutId when there is no rolloutid extension', async () => {
    const rolloutId = await rolloutIn('step_running');
    const event = cloudEventOf('service.deployed', '0.2.0', { customData: { rolloutId } });
    const answer = await emit(Mode.BINARY, event);
    expect(answer.events[0]).toMatchObject({ rolloutId, recordedAs: ['StepCompleted'] });
  });

  it('finds the single in-flight rollout moving the service in the environment when none is named', async () => {
    const environment = `env-${randomUUID().slice(0, 8)}`;
    await rolloutIn('planned', environment); // not in flight: not a candidate
    const rolloutId = await rolloutIn('step_running', environment);
    await listed(environment, 2);
    const event = cloudEventOf('service.upgraded', '0.2.0', {
      content: { environment: { id: environment } },
    });
    const answer = await emit(Mode.STRUCTURED, event);
    expect(answer.events[0]).toMatchObject({ rolloutId, recordedAs: ['StepCompleted'] });

    // Two in flight: ambiguous, so it is kept aside, not guessed.
    const other = await rolloutIn('in_progress', environment);
    await listed(environment, 3);
    const incident = cloudEventOf('incident.detected', '0.2.0', {
      content: { environment: { id: environment } },
    });
    const second = await emit(Mode.BINARY, incident);
    expect(second.events[0]).toMatchObject({ rolloutId: null, streamId: 'unattributed' });
    expect(second.events[0]?.reason).toContain('2 in-flight rollouts');
    expect(second.events[0]?.reason).toContain(other);
  });

  it('keeps an incident outside the rollout window off the rollout, with the reason', async () => {
    const rolloutId = await rolloutIn('in_progress');
    const before = await eventsOf(rolloutId);
    const event = cloudEventOf('incident.detected', '0.2.0', {
      timestamp: '2020-01-01T00:00:00.000Z',
      extensions: { rolloutid: rolloutId },
    });
    const answer = await emit(Mode.BINARY, event);
    expect(answer.events[0]).toMatchObject({ rolloutId: null, recordedAs: ['CloudEventUnattributed'] });
    expect(answer.events[0]?.reason).toContain("outside the rollout's window");
    expect(await eventsOf(rolloutId)).toHaveLength(before.length);
  });

  it('keeps what the rollout refuses (a deployment of a step that never started), with the reason', async () => {
    const rolloutId = await rolloutIn('in_progress');
    const event = cloudEventOf('service.deployed', '0.2.0', { extensions: { rolloutid: rolloutId } });
    const answer = await emit(Mode.STRUCTURED, event);
    expect(answer.events[0]).toMatchObject({ streamId: 'unattributed', rolloutId: null });
    expect(answer.events[0]?.reason).toContain('no step moving mySubject123 is running');
  });
});

describe('a rollout id that cannot take the event', () => {
  it('keeps an event naming a rollout that does not exist, or one that is closed', async () => {
    const missing = randomUUID();
    const unknown = await emit(
      Mode.BINARY,
      cloudEventOf('incident.detected', '0.2.0', { extensions: { rolloutid: missing } }),
    );
    expect(unknown.events[0]).toMatchObject({
      streamId: 'unattributed',
      reason: `rollout ${missing} does not exist`,
    });

    const closed = await rolloutIn('in_progress');
    await request(t.server).post(`${R}/${closed}/complete`).set(AUTH).expect(200);
    const before = await eventsOf(closed);
    const late = await emit(
      Mode.STRUCTURED,
      cloudEventOf('environment.modified', '0.2.0', { extensions: { rolloutid: closed } }),
    );
    expect(late.events[0]).toMatchObject({
      streamId: 'unattributed',
      reason: 'the rollout is completed: nothing more can be recorded on it',
    });
    expect(await eventsOf(closed)).toHaveLength(before.length);
  });
});

describe('batch mode', () => {
  it('records each CloudEvent of an application/cloudevents-batch+json body, in order', async () => {
    const rolloutId = await rolloutIn('step_running');
    const batch = [
      cloudEventOf('service.deployed', '0.2.0', { extensions: { rolloutid: rolloutId } }),
      cloudEventOf('testcaserun.finished', '0.2.0', { extensions: { rolloutid: rolloutId } }),
    ];
    const res = await request(t.server)
      .post(INGEST)
      .set(bearer(keys.ingest))
      .set('Content-Type', 'application/cloudevents-batch+json')
      .send(JSON.stringify(batch.map(structuredForm)))
      .expect(202);
    expect(res.body.events.map((e: { recordedAs: string[] }) => e.recordedAs)).toEqual([
      ['StepCompleted'],
      ['PathVerified'],
    ]);
    const types = (await eventsOf(rolloutId)).map((e) => e.type);
    expect(types.slice(-2)).toEqual(['StepCompleted', 'PathVerified']);
  });

  it('records nothing when one CloudEvent of the batch is invalid, and names it', async () => {
    const rolloutId = await rolloutIn('step_running');
    const good = structuredForm(
      cloudEventOf('service.deployed', '0.2.0', { extensions: { rolloutid: rolloutId } }),
    );
    const bad = structuredForm(cloudEventOf('testcaserun.finished', '0.2.0'));
    (bad.data as { subject: { content: { outcome: string } } }).subject.content.outcome = 'maybe';
    const before = await eventCount();
    const res = await request(t.server)
      .post(INGEST)
      .set(bearer(keys.ingest))
      .set('Content-Type', 'application/cloudevents-batch+json')
      .send(JSON.stringify([good, bad]))
      .expect(400);
    expect(res.body.errors).toEqual([
      { field: '[1].data.subject.content.outcome', message: expect.stringContaining('pass') },
    ]);
    expect(await eventCount()).toBe(before);
  });
});

describe('idempotency: CloudEvents source + id name the event', () => {
  it('redelivering the same CloudEvent 3 times (in any mode) leaves one event, and answers the original ids', async () => {
    const rolloutId = await rolloutIn('step_running');
    const event = cloudEventOf('service.deployed', '0.2.0', { extensions: { rolloutid: rolloutId } });
    const first = await emit(Mode.BINARY, event);
    const second = await emit(Mode.STRUCTURED, event);
    const third = await emit(Mode.BINARY, event);

    expect(first.events[0]?.duplicate).toBe(false);
    for (const again of [second, third]) {
      expect(again.events).toEqual([{ ...first.events[0], duplicate: true }]);
    }
    const completed = (await eventsOf(rolloutId)).filter((e) => e.type === 'StepCompleted');
    expect(completed).toHaveLength(1);
  });

  it('a redelivered unattributed CloudEvent stays one event too', async () => {
    const event = cloudEventOf('environment.modified', '0.2.0', {
      content: { name: `nowhere-${randomUUID()}` },
    });
    const first = await emit(Mode.STRUCTURED, event);
    const before = await eventCount();
    for (let i = 0; i < 2; i++) {
      const again = await emit(Mode.STRUCTURED, event);
      expect(again.events).toEqual([{ ...first.events[0], duplicate: true }]);
    }
    expect(await eventCount()).toBe(before);
  });

  it('concurrent deliveries of the same CloudEvent over real connections record it once', async () => {
    const rolloutId = await rolloutIn('in_progress');
    const event = cloudEventOf('testsuiterun.finished', '0.2.0', { extensions: { rolloutid: rolloutId } });
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => emit(i % 2 ? Mode.BINARY : Mode.STRUCTURED, event)),
    );
    const ids = new Set(answers.map((a) => JSON.stringify(a.events[0]?.eventIds)));
    expect(ids.size).toBe(1);
    expect(answers.filter((a) => a.events[0]?.duplicate === false)).toHaveLength(1);
    const verified = (await eventsOf(rolloutId)).filter((e) => e.type === 'PathVerified');
    expect(verified).toHaveLength(1);
  });

  it('concurrent deliveries of an unattributed CloudEvent record it once', async () => {
    const event = cloudEventOf('pipelinerun.started', '0.2.0');
    const before = await eventCount();
    const answers = await Promise.all(Array.from({ length: 6 }, () => emit(Mode.BINARY, event)));
    expect(new Set(answers.map((a) => a.events[0]?.eventIds[0])).size).toBe(1);
    expect(await eventCount()).toBe(before + 1);
  });
});

describe('who may ingest', () => {
  const body = () => structuredForm(cloudEventOf('environment.modified', '0.2.0'));
  const post = (auth: Record<string, string>) =>
    request(t.server).post(INGEST).set(auth).set('Content-Type', 'application/cloudevents+json').send(body());

  it('the ingest key and admin may send CloudEvents', async () => {
    await post(bearer(keys.ingest)).expect(202);
    await post(AUTH).expect(202);
  });

  it('an auditor or engineer key cannot, and nothing is recorded', async () => {
    const before = await eventCount();
    for (const role of ['auditor', 'engineer'] as const) {
      const res = await post(bearer(keys[role])).expect(403);
      expect(res.body.detail).toContain(`role ${role}`);
    }
    await post({}).expect(401);
    expect(await eventCount()).toBe(before);
  });

  it('the ingest key can read nothing and write nothing else', async () => {
    const rolloutId = await rolloutIn('planned');
    const reads = [
      R,
      `${R}/${rolloutId}`,
      `${R}/${rolloutId}/events`,
      '/api/v1/ingest/unattributed',
      '/api/v1/ledger',
      `/api/v1/reports/rollouts/${rolloutId}?format=json`,
      '/api/openapi.json',
    ];
    for (const url of reads) {
      const res = await request(t.server).get(url).set(bearer(keys.ingest));
      expect(res.status, url).toBe(403);
    }
    await request(t.server).post(R).set(bearer(keys.ingest)).send(plan()).expect(403);
    await request(t.server).post(`${R}/${rolloutId}/start`).set(bearer(keys.ingest)).expect(403);
    await request(t.server)
      .post(`/api/v1/ingest/unattributed/${randomUUID()}/attach`)
      .set(bearer(keys.ingest))
      .send({ rolloutId })
      .expect(403);
  });
});

describe('the specification examples are valid as they are', () => {
  it('accepts the example of each type in every version it is known in', async () => {
    const versions: [Kind, string[]][] = [
      ['service.deployed', ['0.1.0', '0.1.1', '0.2.0']],
      ['service.removed', ['0.1.0', '0.1.1', '0.2.0']],
      ['environment.modified', ['0.1.0', '0.1.1', '0.2.0']],
      ['pipelinerun.finished', ['0.1.0', '0.1.1', '0.2.0']],
      ['testcaserun.finished', ['0.1.0', '0.2.0']],
      ['testsuiterun.finished', ['0.1.0', '0.2.0']],
      ['incident.resolved', ['0.1.0', '0.2.0']],
    ];
    for (const [kind, known] of versions) {
      for (const version of known) {
        const data = cdevent(kind, version, { id: randomUUID() });
        const res = await request(t.server)
          .post(INGEST)
          .set(bearer(keys.ingest))
          .set('Content-Type', 'application/cloudevents+json')
          .send({
            specversion: '1.0',
            id: data.context.id,
            source: data.context.source,
            type: data.context.type,
            data,
          });
        expect(res.status, `${kind} ${version}: ${JSON.stringify(res.body)}`).toBe(202);
      }
    }
  });
});
