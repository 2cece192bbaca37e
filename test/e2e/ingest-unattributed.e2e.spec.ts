import { randomUUID } from 'node:crypto';
import { HTTP } from 'cloudevents';
import { parse } from 'csv-parse/sync';
import { sql } from 'kysely';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH, settleLedger, startTestApp, type TestApp } from '../support/app.js';
import { bearer, createKey } from '../support/auth.js';
import { cloudEventOf } from '../support/cdevents.js';

// What ingestion refuses (each a 4xx naming what is wrong, recording nothing), and what it never
// drops: a valid CloudEvent that matches no rollout is kept on the unattributed stream, listed,
// and attached to a rollout by an engineer, after which the rollout's report shows it.

const INGEST = '/api/v1/ingest/cloudevents';
const UNATTRIBUTED = '/api/v1/ingest/unattributed';
const R = '/api/v1/rollouts';
const PLAN = {
  title: 'Ship mySubject123 2.0',
  environment: 'test123',
  products: [{ product: 'mySubject123', toVersion: '2.0.0' }],
  sequence: [{ id: 'deploy', order: 1, product: 'mySubject123' }],
};

let t: TestApp;
const keys = {} as Record<'ingest' | 'engineer' | 'auditor', string>;

beforeAll(async () => {
  t = await startTestApp({ env: { SEQUENCER_POLL_MS: '20' } });
  for (const role of ['ingest', 'engineer', 'auditor'] as const) {
    keys[role] = (await createKey(t.server, { role, name: `unattributed-${role}` })).key;
  }
});
afterAll(() => t?.close());

async function eventCount(): Promise<number> {
  const { rows } = await sql<{ n: string }>`select count(*) as n from event`.execute(t.handle.db);
  return Number(rows[0]?.n);
}

async function rolloutInProgress(): Promise<string> {
  const created = await request(t.server).post(R).set(AUTH).send(PLAN).expect(201);
  await request(t.server).post(`${R}/${created.body.id}/start`).set(AUTH).expect(200);
  return created.body.id;
}

const structured = (body: unknown) =>
  request(t.server)
    .post(INGEST)
    .set(bearer(keys.ingest))
    .set('Content-Type', 'application/cloudevents+json')
    .send(JSON.stringify(body));

/** A structured CloudEvent from the SDK, as plain JSON to break on purpose. */
const valid = () =>
  JSON.parse(HTTP.structured(cloudEventOf('service.deployed', '0.2.0')).body as string) as {
    [k: string]: unknown;
    data: { context: Record<string, unknown>; subject: { type: string; content: Record<string, unknown> } };
  };

describe('an invalid CloudEvent is a 400 naming what is wrong, and records nothing', () => {
  const cases: [string, () => request.Test, { field: string; message: RegExp }][] = [
    [
      'a missing specversion (structured)',
      () => {
        const { specversion: _, ...event } = valid();
        return structured(event);
      },
      { field: 'specversion', message: /is required/ },
    ],
    [
      'a missing ce-specversion header (binary)',
      () => {
        const message = HTTP.binary(cloudEventOf('service.deployed', '0.2.0'));
        const { 'ce-specversion': _, ...headers } = message.headers as Record<string, string>;
        return request(t.server)
          .post(INGEST)
          .set(bearer(keys.ingest))
          .set(headers)
          .send(message.body as string);
      },
      { field: 'ce-specversion', message: /is required/ },
    ],
    [
      'a CloudEvents version other than 1.0',
      () => structured({ ...valid(), specversion: '0.3' }),
      { field: 'specversion', message: /must be "1.0"/ },
    ],
    [
      'an unknown CDEvents version of a known type',
      () => {
        const event = valid();
        event.type = 'dev.cdevents.service.deployed.0.9.0';
        event.data.context.type = event.type;
        return structured(event);
      },
      { field: 'type', message: /unknown CDEvents version 0\.9\.0 of service\.deployed/ },
    ],
    [
      'an unknown CDEvents specification version',
      () => {
        const event = valid();
        event.data.context.version = '0.7.0';
        return structured(event);
      },
      { field: 'data.context.version', message: /unknown CDEvents specification version "0\.7\.0"/ },
    ],
    [
      'a CDEvents type this ledger does not record',
      () => {
        const event = valid();
        event.type = 'dev.cdevents.artifact.packaged.0.2.0';
        event.data.context.type = event.type;
        return structured(event);
      },
      { field: 'type', message: /artifact\.packaged is not a CDEvents type this ledger records/ },
    ],
    [
      'a schema violation: a required field missing',
      () => {
        const event = valid();
        delete event.data.subject.content.artifactId;
        return structured(event);
      },
      { field: 'data.subject.content.artifactId', message: /./ },
    ],
    [
      'a schema violation: a field the type does not have',
      () => {
        const event = valid();
        event.data.subject.content.colour = 'blue';
        return structured(event);
      },
      { field: 'data.subject.content.colour', message: /is not a field/ },
    ],
    [
      'a schema violation: the wrong subject type',
      () => {
        const event = valid();
        event.data.subject.type = 'environment';
        return structured(event);
      },
      { field: 'data.subject.type', message: /must be "service"/ },
    ],
    [
      "a CDEvent whose type is not the CloudEvent's",
      () => {
        const event = valid();
        event.data.context.type = 'dev.cdevents.service.upgraded.0.2.0';
        return structured(event);
      },
      { field: 'data.context.type', message: /must be the CloudEvent's type/ },
    ],
    [
      'a rolloutid extension that is not a rollout id',
      () => structured({ ...valid(), rolloutid: 'not-a-uuid' }),
      { field: 'rolloutid', message: /rollout id/ },
    ],
    [
      'no data',
      () => {
        const { data: _, ...event } = valid();
        return structured(event);
      },
      { field: 'data', message: /is required/ },
    ],
  ];

  it.each(cases)('%s', async (_, send, expected) => {
    const before = await eventCount();
    const res = await send().expect(400);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body.errors).toEqual([
      { field: expected.field, message: expect.stringMatching(expected.message) },
    ]);
    expect(await eventCount()).toBe(before);
  });

  it('a body over the size limit is refused (413, as everywhere in this API) and records nothing', async () => {
    const before = await eventCount();
    const event = valid();
    event.data = { ...event.data, customData: { padding: 'x'.repeat(1_100_000) } } as typeof event.data;
    const res = await structured(event).expect(413);
    expect(res.body.detail).toMatch(/too large/i);
    expect(await eventCount()).toBe(before);
  });

  it('a body that is not JSON is a 400, a CDEvent that is not JSON a 415', async () => {
    const before = await eventCount();
    await request(t.server)
      .post(INGEST)
      .set(bearer(keys.ingest))
      .set('Content-Type', 'application/cloudevents+json')
      .send('{"specversion":')
      .expect(400);
    await request(t.server)
      .post(INGEST)
      .set(bearer(keys.ingest))
      .set({ 'Content-Type': 'application/xml', 'ce-specversion': '1.0', 'ce-id': '1', 'ce-source': '/x' })
      .send('<cdevent/>')
      .expect(415);
    // The CloudEvents media types are for the ingest route only.
    await request(t.server)
      .post(R)
      .set(AUTH)
      .set('Content-Type', 'application/cloudevents+json')
      .send(JSON.stringify(PLAN))
      .expect(415);
    expect(await eventCount()).toBe(before);
  });
});

describe('unattributed CloudEvents: listed, then attached by an engineer, then in the report', () => {
  it('keeps a valid CloudEvent that matches no rollout, and an engineer attaches it', async () => {
    const environment = `nowhere-${randomUUID().slice(0, 8)}`;
    const incident = cloudEventOf('incident.detected', '0.2.0', {
      content: { environment: { id: environment } },
    });
    const sent = await request(t.server)
      .post(INGEST)
      .set(bearer(keys.ingest))
      .set(HTTP.binary(incident).headers as Record<string, string>)
      .send(HTTP.binary(incident).body as string)
      .expect(202);
    const [result] = sent.body.events;
    expect(result).toMatchObject({
      streamId: 'unattributed',
      rolloutId: null,
      recordedAs: ['CloudEventUnattributed'],
      reason: `no in-flight rollout moves mySubject123 in ${environment}`,
    });
    const eventId = result.eventIds[0] as string;

    // Readers see it, with the fact it would record and the CloudEvent as received.
    const open = await request(t.server)
      .get(UNATTRIBUTED)
      .query({ status: 'open', limit: 200 })
      .set(bearer(keys.auditor))
      .expect(200);
    const item = open.body.items.find((i: { eventId: string }) => i.eventId === eventId);
    expect(item).toMatchObject({
      reason: result.reason,
      fact: { kind: 'incident.detected', subjectId: 'incident-123', environment, cloudEventId: incident.id },
      cloudEvent: { id: incident.id, source: incident.source, type: incident.type, data: incident.data },
      attached: null,
    });

    // An engineer attaches it; the rollout records the fact, naming where it came from.
    const rolloutId = await rolloutInProgress();
    const attach = () =>
      request(t.server)
        .post(`${UNATTRIBUTED}/${eventId}/attach`)
        .set(bearer(keys.engineer))
        .send({ rolloutId, note: 'the 10ms alert during the gateway roll' });
    const attached = await attach().expect(200);
    expect(attached.body).toEqual({
      unattributedEventId: eventId,
      rolloutId,
      factEventId: expect.any(String),
      version: 3,
    });
    // Retrying the same attachment answers the same and records nothing.
    const before = await eventCount();
    expect((await attach().expect(200)).body).toEqual(attached.body);
    expect(await eventCount()).toBe(before);

    const events = (await request(t.server).get(`${R}/${rolloutId}/events`).set(AUTH).expect(200)).body
      .events;
    const fact = events.at(-1);
    expect(fact).toMatchObject({
      eventId: attached.body.factEventId,
      type: 'ExternalFactRecorded',
      data: {
        kind: 'incident.detected',
        attachedFrom: eventId,
        note: 'the 10ms alert during the gateway roll',
        occurredAt: new Date(incident.time as string).toISOString(),
      },
      actor: { role: 'engineer' },
    });
    expect(fact.metadata.cloudEvent).toMatchObject({ id: incident.id, data: incident.data });

    // The list now shows the attachment; it is no longer open.
    const all = await request(t.server).get(UNATTRIBUTED).query({ limit: 200 }).set(AUTH).expect(200);
    expect(all.body.items.find((i: { eventId: string }) => i.eventId === eventId).attached).toEqual({
      rolloutId,
      factEventId: attached.body.factEventId,
      at: expect.any(String),
      by: 'unattributed-engineer',
    });
    const stillOpen = await request(t.server)
      .get(UNATTRIBUTED)
      .query({ status: 'open', limit: 200 })
      .set(AUTH);
    expect(stillOpen.body.items.map((i: { eventId: string }) => i.eventId)).not.toContain(eventId);

    // The rollout's report shows the attached fact, in JSON and in CSV.
    await settleLedger(t);
    const report = await request(t.server)
      .get(`/api/v1/reports/rollouts/${rolloutId}`)
      .query({ format: 'json' })
      .set(bearer(keys.auditor))
      .expect(200);
    expect(report.body.externalFacts).toEqual([
      {
        kind: 'incident.detected',
        cdeventType: 'dev.cdevents.incident.detected.0.2.0',
        source: incident.source,
        cloudEventId: incident.id,
        subjectId: 'incident-123',
        occurredAt: new Date(incident.time as string).toISOString(),
        summary: `incident incident-123 detected in ${environment} on mySubject123: Response time above 10ms`,
        environment,
        service: 'mySubject123',
        outcome: null,
        url: null,
        attachedFrom: eventId,
        note: 'the 10ms alert during the gateway roll',
        recordedAt: expect.any(String),
        position: expect.any(Number),
        actor: 'unattributed-engineer',
      },
    ]);
    const csv = await request(t.server)
      .get(`/api/v1/reports/rollouts/${rolloutId}`)
      .query({ format: 'csv' })
      .set(bearer(keys.auditor))
      .expect(200);
    const rows = parse(csv.text, { columns: true }) as Record<string, string>[];
    expect(rows[0]?.external_facts).toContain('incident.detected: incident incident-123 detected');
  });

  it('refuses to attach to another rollout, to a closed rollout, or what is not unattributed', async () => {
    const incident = cloudEventOf('incident.detected', '0.2.0', {
      content: { environment: { id: `nowhere-${randomUUID().slice(0, 8)}` } },
    });
    const sent = await structured(JSON.parse(HTTP.structured(incident).body as string)).expect(202);
    const eventId = sent.body.events[0].eventIds[0] as string;
    const url = `${UNATTRIBUTED}/${eventId}/attach`;

    // A closed rollout accepts nothing, and the event stays open.
    const closed = await rolloutInProgress();
    await request(t.server).post(`${R}/${closed}/complete`).set(AUTH).expect(200);
    let before = await eventCount();
    await request(t.server).post(url).set(bearer(keys.engineer)).send({ rolloutId: closed }).expect(409);
    expect(await eventCount()).toBe(before);

    const first = await rolloutInProgress();
    await request(t.server).post(url).set(bearer(keys.engineer)).send({ rolloutId: first }).expect(200);
    const second = await rolloutInProgress();
    before = await eventCount();
    const conflict = await request(t.server)
      .post(url)
      .set(bearer(keys.engineer))
      .send({ rolloutId: second })
      .expect(409);
    expect(conflict.body.detail).toContain(`already attached to rollout ${first}`);
    expect(await eventCount()).toBe(before);

    await request(t.server)
      .post(`${UNATTRIBUTED}/${randomUUID()}/attach`)
      .set(bearer(keys.engineer))
      .send({ rolloutId: first })
      .expect(404);
    const badId = await request(t.server)
      .post(`${UNATTRIBUTED}/not-an-id/attach`)
      .set(bearer(keys.engineer))
      .send({ rolloutId: first })
      .expect(400);
    expect(badId.body.errors).toEqual([{ field: 'id', message: expect.stringContaining('UUID') }]);
    const badBody = await request(t.server)
      .post(url)
      .set(bearer(keys.engineer))
      .send({ rolloutId: 'nope', extra: 1 })
      .expect(400);
    expect(badBody.body.errors.map((e: { field: string }) => e.field).sort()).toEqual(['extra', 'rolloutId']);
    await request(t.server).post(url).set(bearer(keys.auditor)).send({ rolloutId: first }).expect(403);
  });

  it('pages through the unattributed stream with a cursor', async () => {
    for (let i = 0; i < 3; i++) {
      await structured(
        JSON.parse(HTTP.structured(cloudEventOf('pipelinerun.started', '0.2.0')).body as string),
      ).expect(202);
    }
    const seen: string[] = [];
    let after = 0;
    for (;;) {
      const page = await request(t.server).get(UNATTRIBUTED).query({ after, limit: 2 }).set(AUTH).expect(200);
      seen.push(...page.body.items.map((i: { eventId: string }) => i.eventId));
      if (page.body.next === null) break;
      after = page.body.next;
    }
    expect(seen.length).toBeGreaterThanOrEqual(3);
    expect(new Set(seen).size).toBe(seen.length);
    const bad = await request(t.server).get(UNATTRIBUTED).query({ limit: 0 }).set(AUTH).expect(400);
    expect(bad.body.errors[0].field).toBe('limit');
  });
});
