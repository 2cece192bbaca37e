import { CloudEvent, HTTP } from 'cloudevents';
import { describe, expect, it } from 'vitest';
import { MAX_BATCH, modeOf, readCloudEvents } from '../../../src/ingest/cdevents/cloudevent.js';
import { cdevent, cloudEventOf } from '../../support/cdevents.js';

// Reading CloudEvents 1.0 from HTTP (pure): the three content modes, and every refusal naming the
// field as the sender wrote it.

const binary = (event: CloudEvent<unknown>) => {
  const m = HTTP.binary(event);
  return { headers: lower(m.headers as Record<string, string>), body: JSON.parse(m.body as string) };
};
const structured = (event: CloudEvent<unknown>) => ({
  headers: { 'content-type': 'application/cloudevents+json; charset=utf-8' },
  body: JSON.parse(HTTP.structured(event).body as string) as Record<string, unknown>,
});
const lower = (h: Record<string, string>) =>
  Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));

const issuesOf = (result: ReturnType<typeof readCloudEvents>) => (result.ok ? [] : result.issues);

describe('modeOf', () => {
  it.each([
    [{ 'content-type': 'application/cloudevents+json' }, 'structured'],
    [{ 'content-type': 'Application/CloudEvents+JSON; charset=utf-8' }, 'structured'],
    [{ 'content-type': 'application/cloudevents-batch+json' }, 'batch'],
    [{ 'content-type': 'application/json', 'ce-specversion': '1.0' }, 'binary'],
    [{}, 'binary'],
  ] as const)('%j is %s mode', (headers, mode) => {
    expect(modeOf(headers)).toBe(mode);
  });
});

describe('readCloudEvents: what it reads', () => {
  it('reads binary mode: attributes from ce-* headers, the data from the body', () => {
    const event = cloudEventOf('service.deployed', '0.2.0', {
      extensions: { rolloutid: '0b5ab1e0-5a1e-4c3e-9d1e-000000000001', stepid: 'deploy' },
    });
    const result = readCloudEvents(binary(event));
    expect(result).toEqual({
      ok: true,
      events: [
        expect.objectContaining({
          mode: 'binary',
          id: event.id,
          source: event.source,
          type: 'dev.cdevents.service.deployed.0.2.0',
          rolloutId: '0b5ab1e0-5a1e-4c3e-9d1e-000000000001',
          stepId: 'deploy',
          original: expect.objectContaining({ specversion: '1.0', id: event.id, data: event.data }),
          cdevent: expect.objectContaining({
            kind: 'service.deployed',
            specVersion: '0.4.1',
            service: 'mySubject123',
            environment: 'test123',
          }),
        }),
      ],
    });
  });

  it('reads structured mode, keeping the event verbatim', () => {
    const message = structured(cloudEventOf('testcaserun.finished', '0.1.0'));
    const result = readCloudEvents(message);
    expect(result.ok && result.events[0]?.original).toEqual(message.body);
    expect(result.ok && result.events[0]?.cdevent).toMatchObject({ outcome: 'pass', name: 'Login Test' });
  });

  it('percent-decodes binary header values, as the HTTP binding asks', () => {
    const message = binary(cloudEventOf('service.deployed', '0.2.0'));
    message.headers['ce-source'] = '/caf%C3%A9';
    message.body.context.source = '/café';
    const result = readCloudEvents(message);
    expect(result.ok && result.events[0]?.source).toBe('/café');
  });

  it('takes the rollout and step from customData when there is no extension', () => {
    const rolloutId = '0B5AB1E0-5A1E-4C3E-9D1E-000000000002';
    const message = structured(
      cloudEventOf('service.deployed', '0.2.0', { customData: { rolloutId, stepId: 's1' } }),
    );
    const result = readCloudEvents(message);
    expect(result.ok && result.events[0]).toMatchObject({ rolloutId: rolloutId.toLowerCase(), stepId: 's1' });
  });

  it('reads a batch, all or nothing', () => {
    const one = structured(cloudEventOf('incident.detected', '0.2.0')).body;
    const two = structured(cloudEventOf('incident.resolved', '0.1.0')).body;
    const headers = { 'content-type': 'application/cloudevents-batch+json' };
    const ok = readCloudEvents({ headers, body: [one, two] });
    const { specversion: _, ...withoutSpecversion } = two;
    expect(ok.ok && ok.events.map((e) => e.cdevent.kind)).toEqual(['incident.detected', 'incident.resolved']);
    expect(issuesOf(readCloudEvents({ headers, body: [one, withoutSpecversion] }))).toEqual([
      { field: '[1].specversion', message: expect.stringContaining('is required') },
    ]);
  });
});

describe('readCloudEvents: what it refuses, naming the field', () => {
  const event = () => structured(cloudEventOf('service.deployed', '0.2.0'));
  const withBody = (change: (body: Record<string, unknown>) => void) => {
    const message = event();
    change(message.body);
    return message;
  };
  const data = (body: Record<string, unknown>) =>
    body.data as { context: Record<string, unknown>; subject: { content: Record<string, unknown> } };

  it.each([
    ['no specversion', withBody((b) => delete b.specversion), 'specversion', /is required/],
    ['specversion 0.3', withBody((b) => (b.specversion = '0.3')), 'specversion', /must be "1.0"/],
    ['no id', withBody((b) => delete b.id), 'id', /is required/],
    ['an empty source', withBody((b) => (b.source = '')), 'source', /must not be empty/],
    ['a time that is not RFC 3339', withBody((b) => (b.time = 'yesterday')), 'time', /RFC 3339/],
    [
      'a non-JSON datacontenttype',
      withBody((b) => (b.datacontenttype = 'text/plain')),
      'datacontenttype',
      /JSON media type/,
    ],
    ['data_base64', withBody((b) => (b.data_base64 = 'e30=')), 'data_base64', /a CDEvent is JSON/],
    ['a bad extension name', withBody((b) => (b['Bad-Name'] = 'x')), 'Bad-Name', /attribute name/],
    ['an object extension', withBody((b) => (b.extra = { a: 1 })), 'extra', /string, number or boolean/],
    [
      'a type that is not CDEvents',
      withBody((b) => (b.type = 'com.example.deployed')),
      'type',
      /CDEvents type/,
    ],
    [
      'a NUL character',
      withBody((b) => (data(b).subject.content.artifactId = 'a\u0000b')),
      'data.subject.content.artifactId',
      /NUL/,
    ],
    [
      'a timestamp that is not RFC 3339',
      withBody((b) => (data(b).context.timestamp = '2026-11-26 10:00')),
      'data.context.timestamp',
      /RFC 3339/,
    ],
    [
      'chainId in a 0.3 event',
      withBody((b) => {
        data(b).context.version = '0.3.0';
      }),
      'data.context.chainId',
      /is not a field/,
    ],
    [
      'a customData.rolloutId that is not a UUID',
      withBody((b) => ((b.data as Record<string, unknown>).customData = { rolloutId: 'r-1' })),
      'data.customData.rolloutId',
      /UUID/,
    ],
  ] as const)('%s', (_, message, field, pattern) => {
    expect(issuesOf(readCloudEvents(message))).toEqual([{ field, message: expect.stringMatching(pattern) }]);
  });

  it('names binary-mode attributes by their header', () => {
    const message = binary(cloudEventOf('service.deployed', '0.2.0'));
    delete message.headers['ce-id'];
    message.headers['ce-time'] = 'soon';
    expect(issuesOf(readCloudEvents(message))).toEqual([
      { field: 'ce-id', message: expect.stringContaining('is required') },
      { field: 'ce-time', message: expect.stringContaining('RFC 3339') },
    ]);
  });

  it('refuses a malformed percent-encoded header', () => {
    const message = binary(cloudEventOf('service.deployed', '0.2.0'));
    message.headers['ce-source'] = '/%E0%A4%A';
    expect(issuesOf(readCloudEvents(message))).toEqual([{ field: 'ce-source', message: expect.any(String) }]);
  });

  it('refuses a binary request with no CloudEvent at all, saying how to send one', () => {
    const issues = issuesOf(readCloudEvents({ headers: { 'content-type': 'application/json' }, body: {} }));
    expect(issues.map((i) => i.field)).toEqual(['ce-specversion', 'ce-id', 'ce-source', 'ce-type']);
  });

  it('refuses structured bodies that are not objects, and batches that are empty or too large', () => {
    const s = { 'content-type': 'application/cloudevents+json' };
    const b = { 'content-type': 'application/cloudevents-batch+json' };
    const one = event().body;
    expect(issuesOf(readCloudEvents({ headers: s, body: [one] }))[0]?.field).toBe('(body)');
    expect(issuesOf(readCloudEvents({ headers: s, body: undefined }))[0]?.field).toBe('(body)');
    expect(issuesOf(readCloudEvents({ headers: b, body: [] }))[0]?.field).toBe('(body)');
    expect(issuesOf(readCloudEvents({ headers: b, body: one }))[0]?.field).toBe('(body)');
    expect(
      issuesOf(readCloudEvents({ headers: b, body: Array(MAX_BATCH + 1).fill(one) }))[0]?.message,
    ).toMatch(/at most/);
    expect(issuesOf(readCloudEvents({ headers: b, body: [one, 'x'] }))).toEqual([
      { field: '[1]', message: expect.stringContaining('CloudEvent') },
    ]);
  });

  it('checks every CDEvents type and version it knows against the specification example', () => {
    for (const [kind, versions] of [
      ['service.upgraded', ['0.1.0', '0.1.1', '0.2.0']],
      ['service.rolledback', ['0.1.0', '0.1.1', '0.2.0']],
      ['pipelinerun.started', ['0.1.0', '0.1.1', '0.2.0']],
      ['incident.detected', ['0.1.0', '0.2.0']],
    ] as const) {
      for (const version of versions) {
        const body = { specversion: '1.0', id: 'x', source: '/s', type: '', data: cdevent(kind, version) };
        body.type = body.data.context.type;
        const result = readCloudEvents({ headers: { 'content-type': 'application/cloudevents+json' }, body });
        expect(issuesOf(result), `${kind} ${version}`).toEqual([]);
      }
    }
  });
});
