import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { sql } from 'kysely';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventStore } from '../../src/event-store/event-store.repository.js';
import { checkpointPayload, GENESIS_HASH, ledgerHash } from '../../src/ledger/hashing.js';
import { keyIdOf } from '../../src/ledger/signing.js';
import { ADMIN_TOKEN, AUTH, settleLedger, startTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, onPostgres, type TestDatabase } from '../support/database.js';
import { UUID_V7, uuidv7Ms } from '../support/ids.js';
import { eventually } from '../support/wait.js';

// ---------------------------------------------------------------------------------------------
// helpers

interface Entry {
  position: number;
  hash: string;
  prevHash: string;
  streamId: string;
  streamVersion: number;
  eventId: string;
  type: string;
  schemaVersion: number;
  data: unknown;
  metadata: Record<string, unknown>;
  recordedAt: string;
  eventHash: string;
  eventPrevHash: string;
}

interface CheckpointBody {
  position: number;
  headHash: string;
  createdAt: string;
  keyId: string;
  signature: string;
}

interface Expected {
  streamId: string;
  streamVersion: number;
  eventId: string;
  type: string;
  data: unknown;
  metadata: Record<string, unknown>;
}

const HEX64 = /^[0-9a-f]{64}$/;
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Appends `n` TestHappened events to a stream, remembering what was sent, in order. */
async function append(
  t: TestApp,
  streamId: string,
  n: number,
  into: Expected[] = [],
  metadata: Record<string, unknown> = {},
): Promise<Expected[]> {
  const events = Array.from({ length: n }, (_, i) => ({
    type: 'TestHappened',
    data: { n: into.length + i, label: `événement ${i}`, nested: { ok: true, list: [1, 'two', null] } },
    metadata: metadata as Record<string, string>,
  }));
  const before = (await t.app.get(EventStore).streamVersion(streamId)) ?? 0;
  const result = await t.app.get(EventStore).append(streamId, events);
  result.eventIds.forEach((eventId, i) => {
    const e = events[i]!;
    into.push({
      streamId,
      streamVersion: before + i + 1,
      eventId,
      type: e.type,
      data: e.data,
      metadata,
    });
  });
  return into;
}

async function readAll(t: TestApp): Promise<Entry[]> {
  const all: Entry[] = [];
  for (let after = 0; ; ) {
    const res = await request(t.server).get(`/api/v1/ledger?after=${after}&limit=1000`).set(AUTH).expect(200);
    all.push(...(res.body.events as Entry[]));
    if (res.body.next === null) return all;
    after = res.body.next as number;
  }
}

async function headPosition(t: TestApp): Promise<number> {
  const res = await request(t.server).get('/api/v1/ledger/head').set(AUTH).expect(200);
  return res.body.position as number;
}

interface SseFrame {
  id?: string;
  event?: string;
  data: string;
}

interface SseClient {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body, for a response that is not an event stream. */
  body(): Promise<string>;
  frames: SseFrame[];
  /** Waits until at least `n` frames with data have arrived. */
  waitForFrames(n: number): Promise<SseFrame[]>;
  close(): void;
}

/** A minimal EventSource over node:http, keeping every frame it receives. */
function openSse(baseUrl: string, pathAndQuery: string, headers: Record<string, string>): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      new URL(pathAndQuery, baseUrl),
      { method: 'GET', agent: false, headers: { Accept: 'text/event-stream', ...headers } },
      (res) => {
        res.setEncoding('utf8');
        const frames: SseFrame[] = [];
        let buffer = '';
        let raw = '';
        let ended = false;
        const waiters = new Set<() => void>();
        res.on('data', (chunk: string) => {
          raw += chunk;
          buffer += chunk;
          for (let i = buffer.indexOf('\n\n'); i >= 0; i = buffer.indexOf('\n\n')) {
            const block = buffer.slice(0, i);
            buffer = buffer.slice(i + 2);
            const frame: SseFrame = { data: '' };
            const data: string[] = [];
            for (const line of block.split('\n')) {
              if (line === '' || line.startsWith(':')) continue;
              const colon = line.indexOf(':');
              const field = colon < 0 ? line : line.slice(0, colon);
              const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
              if (field === 'id') frame.id = value;
              else if (field === 'event') frame.event = value;
              else if (field === 'data') data.push(value);
            }
            if (data.length === 0) continue;
            frame.data = data.join('\n');
            frames.push(frame);
          }
          for (const w of waiters) w();
        });
        const finished = new Promise<void>((done) => {
          res.on('end', () => {
            ended = true;
            done();
            for (const w of waiters) w();
          });
          res.on('close', () => {
            ended = true;
            done();
            for (const w of waiters) w();
          });
        });
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          frames,
          async body() {
            await finished;
            return raw;
          },
          waitForFrames(n) {
            return new Promise((ok, fail) => {
              const timer = setTimeout(() => {
                waiters.delete(check);
                fail(
                  new Error(`only ${frames.length} of ${n} SSE frames arrived: ${JSON.stringify(frames)}`),
                );
              }, 20_000);
              const check = () => {
                if (frames.length >= n) {
                  clearTimeout(timer);
                  waiters.delete(check);
                  ok(frames);
                } else if (ended) {
                  clearTimeout(timer);
                  waiters.delete(check);
                  fail(new Error(`the stream ended after ${frames.length} of ${n} frames`));
                }
              };
              waiters.add(check);
              check();
            });
          },
          close() {
            req.destroy();
          },
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function expectProblem(res: request.Response, status: number) {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ status, type: expect.any(String), title: expect.any(String) });
}

// ---------------------------------------------------------------------------------------------

describe('ledger HTTP surface', () => {
  let t: TestApp;
  let baseUrl: string;
  /** The first 23 events, in the order they were appended (and so sequenced). */
  const seeded: Expected[] = [];
  let seedStart = 0;
  let seedEnd = 0;

  beforeAll(async () => {
    t = await startTestApp({ env: { CHECKPOINT_EVERY: '5' } });
    await t.app.listen(0, '127.0.0.1');
    const address = t.app.getHttpServer().address() as AddressInfo;
    baseUrl = `http://127.0.0.1:${address.port}`;

    seedStart = Date.now();
    // Appended one after the other, so commit order (and ledger order) is exactly this.
    await append(t, 'ledgertest-alpha', 8, seeded, { actor: 'tester', correlationId: 'c-1' });
    await settleLedger(t);
    await append(t, 'ledgertest-beta', 10, seeded);
    await settleLedger(t);
    await append(t, 'ledgertest-alpha', 5, seeded, { source: 'e2e' });
    await settleLedger(t);
    seedEnd = Date.now();
  });
  afterAll(() => t.close());

  describe('GET /api/v1/ledger', () => {
    it('returns every field of every entry, in append order, hash-chained from genesis', async () => {
      const res = await request(t.server).get('/api/v1/ledger?limit=23').set(AUTH).expect(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const events = res.body.events as Entry[];
      expect(events).toHaveLength(23);
      events.forEach((e, i) => {
        const want = seeded[i]!;
        expect(e).toMatchObject({
          position: i + 1,
          streamId: want.streamId,
          streamVersion: want.streamVersion,
          eventId: want.eventId,
          type: 'TestHappened',
          data: want.data,
          metadata: want.metadata,
        });
        expect(e.eventId).toMatch(UUID_V7);
        // Its first 48 bits are the millisecond the store made it in, during the seeding.
        expect(uuidv7Ms(e.eventId)).toBeGreaterThanOrEqual(seedStart);
        expect(uuidv7Ms(e.eventId)).toBeLessThanOrEqual(seedEnd);
        expect(e.hash).toMatch(HEX64);
        expect(e.prevHash).toBe(i === 0 ? GENESIS_HASH : events[i - 1]!.hash);
        expect(e.recordedAt).toMatch(ISO_MS);
        expect(Date.parse(e.recordedAt)).toBeGreaterThanOrEqual(seedStart);
        expect(Date.parse(e.recordedAt)).toBeLessThanOrEqual(seedEnd);
        // The entry's hash is exactly the chain rule over what the API returned.
        expect(ledgerHash(e.prevHash, e.position, { ...e, hash: e.eventHash })).toBe(e.hash);
      });
      expect(res.body.next).toBe(23);
    });

    it('pages with after/limit, giving `next` while a page is full and null at the end', async () => {
      const head = await headPosition(t);
      const limit = 10;
      const positions: number[] = [];
      const nexts: (number | null)[] = [];
      for (let after = 0; ; ) {
        const res = await request(t.server)
          .get(`/api/v1/ledger?after=${after}&limit=${limit}`)
          .set(AUTH)
          .expect(200);
        const page = res.body.events as Entry[];
        expect(page.length).toBeLessThanOrEqual(limit);
        positions.push(...page.map((e) => e.position));
        nexts.push(res.body.next);
        if (res.body.next === null) break;
        expect(res.body.next).toBe(page.at(-1)?.position);
        after = res.body.next;
      }
      expect(positions).toEqual(Array.from({ length: head }, (_, i) => i + 1));
      expect(nexts.at(-1)).toBeNull();

      const middle = await request(t.server).get('/api/v1/ledger?after=7&limit=3').set(AUTH).expect(200);
      expect(middle.body.events.map((e: Entry) => e.position)).toEqual([8, 9, 10]);
      expect(middle.body.next).toBe(10);
      expect(middle.body.events[0].eventId).toBe(seeded[7]!.eventId);

      const past = await request(t.server).get(`/api/v1/ledger?after=${head}`).set(AUTH).expect(200);
      expect(past.body).toEqual({ events: [], next: null });

      // The default page is 100 entries; the largest allowed is 1000.
      const all = await request(t.server).get('/api/v1/ledger').set(AUTH).expect(200);
      expect(all.body.events).toHaveLength(head);
      await request(t.server).get('/api/v1/ledger?limit=1000').set(AUTH).expect(200);
      const one = await request(t.server).get('/api/v1/ledger?limit=1').set(AUTH).expect(200);
      expect(one.body.events).toHaveLength(1);
      expect(one.body.next).toBe(1);
    });

    it.each([
      ['limit=0', 'limit'],
      ['limit=1001', 'limit'],
      ['limit=abc', 'limit'],
      ['limit=2.5', 'limit'],
      ['limit=1&limit=2', 'limit'],
      ['after=-1', 'after'],
      ['after=abc', 'after'],
      ['after=9007199254740992', 'after'],
      ['unknown=1', 'unknown'],
      ['limit=10&surprise=yes', 'surprise'],
    ])('refuses ?%s with a 400 problem naming %s', async (query, field) => {
      for (const route of ['/api/v1/ledger', '/api/v1/ledger/checkpoints']) {
        const res = await request(t.server).get(`${route}?${query}`).set(AUTH);
        expectProblem(res, 400);
        expect(res.body.errors).toEqual(expect.arrayContaining([{ field, message: expect.any(String) }]));
        expect(res.body.instance).toBe(route);
      }
    });
  });

  describe('checkpoints and keys', () => {
    it('signs checkpoints that verify with the served public key over checkpointPayload()', async () => {
      const entries = await readAll(t);
      const res = await request(t.server).get('/api/v1/ledger/checkpoints').set(AUTH).expect(200);
      const checkpoints = res.body.checkpoints as CheckpointBody[];
      // 23 entries with CHECKPOINT_EVERY=5: at least 23/5 checkpoints whichever way they were batched.
      expect(checkpoints.length).toBeGreaterThanOrEqual(Math.floor(seeded.length / 5) - 1);
      expect(checkpoints.length).toBeGreaterThan(0);
      expect(res.body.next).toBeNull();

      const pem = await request(t.server).get('/api/v1/ledger/public-key').set(AUTH).expect(200);
      expect(pem.headers['content-type']).toMatch(/^application\/x-pem-file/);
      expect(pem.text).toMatch(/^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n?$/);
      const publicKey = createPublicKey(pem.text);
      expect(publicKey.asymmetricKeyType).toBe('ed25519');

      let last = 0;
      for (const c of checkpoints) {
        expect(c.position).toBeGreaterThan(last);
        last = c.position;
        expect(c.headHash).toBe(entries[c.position - 1]!.hash);
        expect(c.keyId).toBe(keyIdOf(publicKey));
        expect(c.createdAt).toMatch(ISO_MS);
        const sig = Buffer.from(c.signature, 'base64');
        expect(verify(null, Buffer.from(checkpointPayload(c)), publicKey, sig)).toBe(true);
        // …and the signature binds every signed field.
        expect(
          verify(null, Buffer.from(checkpointPayload({ ...c, position: c.position + 1 })), publicKey, sig),
        ).toBe(false);
        expect(
          verify(null, Buffer.from(checkpointPayload({ ...c, headHash: GENESIS_HASH })), publicKey, sig),
        ).toBe(false);
      }

      // Paging the checkpoints works like paging the ledger.
      const first = await request(t.server).get('/api/v1/ledger/checkpoints?limit=1').set(AUTH).expect(200);
      expect(first.body.checkpoints).toEqual([checkpoints[0]]);
      expect(first.body.next).toBe(checkpoints[0]!.position);
      const rest = await request(t.server)
        .get(`/api/v1/ledger/checkpoints?after=${first.body.next}&limit=1000`)
        .set(AUTH)
        .expect(200);
      expect(rest.body.checkpoints).toEqual(checkpoints.slice(1));
    });

    it('lists the current key among every key ever used, and serves each by id', async () => {
      const pem = (await request(t.server).get('/api/v1/ledger/public-key').set(AUTH).expect(200)).text;
      const keyId = keyIdOf(createPublicKey(pem));
      const res = await request(t.server).get('/api/v1/ledger/public-keys').set(AUTH).expect(200);
      expect(res.body.current).toBe(keyId);
      expect(res.body.keys).toEqual([
        { keyId, algorithm: 'ed25519', publicKeyPem: pem, createdAt: expect.stringMatching(ISO_MS) },
      ]);
      const one = await request(t.server).get(`/api/v1/ledger/public-keys/${keyId}`).set(AUTH).expect(200);
      expect(one.body).toEqual(res.body.keys[0]);
      expectProblem(
        await request(t.server)
          .get(`/api/v1/ledger/public-keys/${'0'.repeat(32)}`)
          .set(AUTH),
        404,
      );
      const bad = await request(t.server).get('/api/v1/ledger/public-keys/not-a-key').set(AUTH);
      expectProblem(bad, 400);
      expect(bad.body.errors).toEqual([{ field: 'keyId', message: expect.any(String) }]);
    });
  });

  describe('GET /api/v1/ledger/verify', () => {
    it('is ok through the last position, having checked every checkpoint', async () => {
      const entries = await readAll(t);
      const checkpoints = (await request(t.server).get('/api/v1/ledger/checkpoints').set(AUTH).expect(200))
        .body.checkpoints as CheckpointBody[];
      const res = await request(t.server).get('/api/v1/ledger/verify').set(AUTH).expect(200);
      expect(res.body).toEqual({
        ok: true,
        verifiedThrough: entries.length,
        checkpointsVerified: checkpoints.length,
      });
      expect(entries.length).toBe(await headPosition(t));
    });
  });

  describe('GET /api/v1/ledger/stream (Server-Sent Events)', () => {
    it('replays after ?after=, then delivers new entries live, then resumes after Last-Event-ID', async () => {
      await settleLedger(t);
      const head = await headPosition(t);
      const known = await readAll(t);

      const first = await openSse(baseUrl, `/api/v1/ledger/stream?after=${head - 3}`, {
        ...AUTH,
        'x-request-id': 'tail-1',
      });
      try {
        expect(first.status).toBe(200);
        expect(first.headers['content-type']).toMatch(/^text\/event-stream/);
        // Like every response, the stream names its request id.
        expect(first.headers['x-request-id']).toBe('tail-1');
        const replay = await first.waitForFrames(3);
        expect(replay.map((f) => f.id)).toEqual([head - 2, head - 1, head].map(String));
        expect(replay.every((f) => f.event === 'entry')).toBe(true);
        expect(replay.map((f) => JSON.parse(f.data))).toEqual(known.slice(head - 3));

        // While connected: two appends, sequenced by the background sequencer.
        const live: Expected[] = [];
        await append(t, 'ledgertest-live', 2, live);
        await append(t, 'ledgertest-live', 1, live);
        const frames = await first.waitForFrames(6);
        expect(frames.map((f) => f.id)).toEqual(
          [head - 2, head - 1, head, head + 1, head + 2, head + 3].map(String),
        );
        const delivered = frames.slice(3).map((f) => JSON.parse(f.data) as Entry);
        expect(delivered.map((e) => e.eventId)).toEqual(live.map((e) => e.eventId));
        expect(delivered.map((e) => e.position)).toEqual([head + 1, head + 2, head + 3]);
        expect(delivered[0]!.prevHash).toBe(known.at(-1)!.hash);
      } finally {
        first.close();
      }

      // The client left having seen head+3; it reconnects with the last id it saw but one.
      const resumed = await openSse(baseUrl, '/api/v1/ledger/stream', {
        ...AUTH,
        'Last-Event-ID': String(head + 2),
      });
      try {
        expect(resumed.status).toBe(200);
        await resumed.waitForFrames(1);
        const more: Expected[] = [];
        await append(t, 'ledgertest-live', 1, more);
        const frames = await resumed.waitForFrames(2);
        // Exactly after n: no replay of n or earlier, no duplicate, no gap.
        expect(frames.map((f) => f.id)).toEqual([String(head + 3), String(head + 4)]);
        expect(JSON.parse(frames[1]!.data).eventId).toBe(more[0]!.eventId);
      } finally {
        resumed.close();
      }
    });

    it('prefers Last-Event-ID over ?after=', async () => {
      const head = await headPosition(t);
      const sse = await openSse(baseUrl, '/api/v1/ledger/stream?after=0', {
        ...AUTH,
        'Last-Event-ID': String(head - 1),
      });
      try {
        expect(sse.status).toBe(200);
        const frames = await sse.waitForFrames(1);
        expect(frames[0]!.id).toBe(String(head));
        // Nothing else is pending: a poll of the ledger gives the same single entry after head-1.
        const page = await request(t.server)
          .get(`/api/v1/ledger?after=${head - 1}`)
          .set(AUTH)
          .expect(200);
        expect(page.body.events).toHaveLength(1);
        expect(sse.frames).toHaveLength(1);
      } finally {
        sse.close();
      }
    });

    it.each([
      ['a word', 'abc'],
      ['a negative number', '-1'],
      ['a fraction', '1.5'],
      ['17 digits', '12345678901234567'],
      ['two numbers', '3 4'],
      ['300 characters', 'x'.repeat(300)],
    ])('refuses a Last-Event-ID of %s with a 400 problem', async (_, lastId) => {
      const sse = await openSse(baseUrl, '/api/v1/ledger/stream', { ...AUTH, 'Last-Event-ID': lastId });
      try {
        expect(sse.status).toBe(400);
        expect(sse.headers['content-type']).toMatch(/^application\/problem\+json/);
        const body = JSON.parse(await sse.body());
        expect(body).toMatchObject({ status: 400 });
        expect(body.errors).toEqual([{ field: 'Last-Event-ID', message: expect.any(String) }]);
      } finally {
        sse.close();
      }
    });

    it.each([
      ['after=abc', 'after'],
      ['after=-5', 'after'],
      ['limit=5', 'limit'],
    ])('refuses ?%s with a 400 problem naming %s', async (query, field) => {
      const sse = await openSse(baseUrl, `/api/v1/ledger/stream?${query}`, AUTH);
      try {
        expect(sse.status).toBe(400);
        const body = JSON.parse(await sse.body());
        expect(body.errors).toEqual(expect.arrayContaining([{ field, message: expect.any(String) }]));
      } finally {
        sse.close();
      }
    });

    it('refuses the stream without the key, and with a wrong one', async () => {
      for (const headers of [{}, { Authorization: 'Bearer wrong-token-wrong-token' }] as Record<
        string,
        string
      >[]) {
        const sse = await openSse(baseUrl, '/api/v1/ledger/stream', headers);
        try {
          expect(sse.status).toBe(401);
          expect(sse.headers['content-type']).toMatch(/^application\/problem\+json/);
          await sse.body();
          expect(sse.frames).toEqual([]);
        } finally {
          sse.close();
        }
      }
    });
  });

  describe('access', () => {
    /** Every route Fastify knows, as [method, url] with parameters filled in. */
    function routes(): [string, string][] {
      // printRoutes draws a radix tree: each level indents by 4 and adds its segment to the path.
      const tree = t.app.getHttpAdapter().getInstance().printRoutes({ commonPrefix: false });
      const found: [string, string][] = [];
      const stack: string[] = [];
      for (const line of tree.split('\n')) {
        const m = /^((?:│ {3}| {4})*)(?:├── |└── )(.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
        if (!m) continue;
        stack.length = m[1]!.length / 4;
        stack.push(m[2]!);
        if (!m[3]) continue;
        const url = stack
          .join('')
          .replace(/:[A-Za-z]+/g, '0123456789abcdef0123456789abcdef')
          .replace(/\*$/, 'x');
        for (const method of m[3].split(', ')) if (method !== 'HEAD') found.push([method, url]);
      }
      return found;
    }

    it('knows the routes it checks', () => {
      const urls = routes().map(([method, url]) => `${method} ${url}`);
      expect(urls).toEqual(
        expect.arrayContaining([
          'GET /api/v1/ledger',
          'GET /api/v1/ledger/head',
          'GET /api/v1/ledger/checkpoints',
          'GET /api/v1/ledger/public-key',
          'GET /api/v1/ledger/public-keys',
          'GET /api/v1/ledger/public-keys/0123456789abcdef0123456789abcdef',
          'GET /api/v1/ledger/verify',
          'GET /api/v1/ledger/stream',
          'GET /metrics',
          'GET /health/live',
          'GET /health/ready',
        ]),
      );
    });

    it('answers 401 problem+json on every route but the health checks, without a key or with a bad one', async () => {
      const bad = [
        undefined,
        'Bearer not-the-admin-token',
        `Bearer ${ADMIN_TOKEN}x`,
        `Bearer ${ADMIN_TOKEN.slice(0, -1)}`,
        `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}-wrong`).toString('base64')}`,
        ADMIN_TOKEN,
        'Bearer ',
      ];
      const checked: string[] = [];
      for (const [method, url] of routes()) {
        if (url.startsWith('/health/')) continue;
        // Console pages send a browser to sign in instead (303); console.e2e and the role matrix cover them.
        if (url === '/console' || url.startsWith('/console/')) continue;
        checked.push(url);
        for (const authorization of bad) {
          const req = request(t.server)[method.toLowerCase() as 'get'](url);
          if (authorization !== undefined) req.set('Authorization', authorization);
          const res = await req;
          expect({ method, url, authorization, status: res.status }).toEqual({
            method,
            url,
            authorization,
            status: 401,
          });
          expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
          expect(res.text).not.toContain(ADMIN_TOKEN);
        }
      }
      expect(checked.length).toBeGreaterThanOrEqual(9);
      // The ledger's routes take the key as a bearer token only.
      for (const url of checked.filter((u) => u.startsWith('/api/v1/ledger') || u === '/metrics')) {
        const basic = `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}`;
        expect({
          url,
          status: (await request(t.server).get(url).set('Authorization', basic)).status,
        }).toEqual({
          url,
          status: 401,
        });
      }
      // The health checks need no key.
      await request(t.server).get('/health/live').expect(200);
      await request(t.server).get('/health/ready').expect(200);
    });
  });

  describe('request ids', () => {
    it('echoes a sane x-request-id, in the header and in a problem body', async () => {
      const id = 'req-42.abc:DEF_9';
      const ok = await request(t.server)
        .get('/api/v1/ledger/head')
        .set(AUTH)
        .set('x-request-id', id)
        .expect(200);
      expect(ok.headers['x-request-id']).toBe(id);
      const problem = await request(t.server).get('/api/v1/ledger').set('x-request-id', id).expect(401);
      expect(problem.headers['x-request-id']).toBe(id);
      expect(problem.body.requestId).toBe(id);
      const longest = 'a'.repeat(128);
      const kept = await request(t.server).get('/health/live').set('x-request-id', longest).expect(200);
      expect(kept.headers['x-request-id']).toBe(longest);
    });

    it.each([
      ['300 characters', 'a'.repeat(300)],
      ['129 characters', 'b'.repeat(129)],
      ['spaces', 'has spaces in it'],
      ['a slash', 'a/b'],
      ['a quote', 'x"y'],
    ])('replaces an x-request-id with %s by a generated uuid', async (_, id) => {
      const res = await request(t.server)
        .get('/api/v1/ledger/head')
        .set(AUTH)
        .set('x-request-id', id)
        .expect(200);
      expect(res.headers['x-request-id']).toMatch(UUID_V4);
      expect(res.headers['x-request-id']).not.toBe(id);
    });

    it('generates a distinct uuid when none is given', async () => {
      const a = await request(t.server).get('/health/live').expect(200);
      const b = await request(t.server).get('/health/live').expect(200);
      expect(a.headers['x-request-id']).toMatch(UUID_V4);
      expect(b.headers['x-request-id']).toMatch(UUID_V4);
      expect(a.headers['x-request-id']).not.toBe(b.headers['x-request-id']);
    });
  });

  describe('GET /metrics', () => {
    const counter = (text: string, route: string, status: string) => {
      const line = text
        .split('\n')
        .find((l) => l.startsWith(`http_requests_total{method="GET",route="${route}",status="${status}"}`));
      return line ? Number(line.split(' ').at(-1)) : 0;
    };

    it('needs the key', async () => {
      expectProblem(await request(t.server).get('/metrics'), 401);
      expectProblem(
        await request(t.server).get('/metrics').set('Authorization', 'Bearer nope-nope-nope-nope'),
        401,
      );
    });

    it('counts requests by route and status in http_requests_total', async () => {
      const scrape = async () => (await request(t.server).get('/metrics').set(AUTH).expect(200)).text;
      const before = await scrape();
      for (let i = 0; i < 3; i++) await request(t.server).get('/api/v1/ledger/head').set(AUTH).expect(200);
      await request(t.server).get('/api/v1/ledger/head').expect(401);
      const after = await eventually('the counters to move', async () => {
        const text = await scrape();
        return counter(text, '/api/v1/ledger/head', '200') - counter(before, '/api/v1/ledger/head', '200') >=
          3 &&
          counter(text, '/api/v1/ledger/head', '401') - counter(before, '/api/v1/ledger/head', '401') >= 1
          ? text
          : undefined;
      });
      expect(after).toContain('# TYPE http_requests_total counter');
      expect(
        counter(after, '/api/v1/ledger/head', '200') - counter(before, '/api/v1/ledger/head', '200'),
      ).toBe(3);
      expect(
        counter(after, '/api/v1/ledger/head', '401') - counter(before, '/api/v1/ledger/head', '401'),
      ).toBe(1);
      expect(after).toMatch(
        /^http_request_duration_seconds_count\{method="GET",route="\/api\/v1\/ledger\/head"\} \d+$/m,
      );
      expect(after).toMatch(/^ledger_head_position \d+$/m);
      expect(after).not.toContain(ADMIN_TOKEN);
    });
  });
});

describe('ledger after a key rotation', () => {
  let db: TestDatabase;
  let first: TestApp | undefined;
  let second: TestApp | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await second?.close();
    await first?.close();
    await db.drop();
  });

  it('keeps serving and verifying with every key that ever signed', async () => {
    // Two instances on one database, one after the other, each with a key of its own.
    const env = { CHECKPOINT_EVERY: '3', CHECKPOINT_INTERVAL_MS: '86400000', SEQUENCER_ENABLED: 'false' };
    first = await startTestApp({ env, db });
    await append(first, 'rotation-a', 4);
    await settleLedger(first);
    const oldKey = (await request(first.server).get('/api/v1/ledger/public-keys').set(AUTH).expect(200)).body
      .current as string;

    const { privateKey } = generateKeyPairSync('ed25519');
    const keyFile = path.join(first.dataDir, 'rotated-key.pem');
    await writeFile(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), { mode: 0o600 });
    const secondDb: TestDatabase = onPostgres ? { ...db, handle: await db.reopen() } : db;
    second = await startTestApp({ env: { ...env, SIGNING_KEY_FILE: keyFile }, db: secondDb });
    await append(second, 'rotation-b', 4);
    await settleLedger(second);

    const keys = (await request(second.server).get('/api/v1/ledger/public-keys').set(AUTH).expect(200)).body;
    expect(keys.current).not.toBe(oldKey);
    expect(keys.current).toBe(keyIdOf(createPublicKey(privateKey)));
    expect(keys.keys.map((k: { keyId: string }) => k.keyId).sort()).toEqual([oldKey, keys.current].sort());

    const checkpoints = (await request(second.server).get('/api/v1/ledger/checkpoints').set(AUTH).expect(200))
      .body.checkpoints as CheckpointBody[];
    expect(checkpoints.map((c) => c.keyId)).toEqual([oldKey, keys.current]);
    for (const c of checkpoints) {
      const pem = keys.keys.find((k: { keyId: string }) => k.keyId === c.keyId).publicKeyPem as string;
      expect(
        verify(
          null,
          Buffer.from(checkpointPayload(c)),
          createPublicKey(pem),
          Buffer.from(c.signature, 'base64'),
        ),
      ).toBe(true);
    }
    await request(second.server)
      .get('/api/v1/ledger/verify')
      .set(AUTH)
      .expect(200, { ok: true, verifiedThrough: 8, checkpointsVerified: 2 });
  });
});

describe('ledger verify on a tampered log', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { SEQUENCER_ENABLED: 'false', CHECKPOINT_INTERVAL_MS: '86400000' } });
  });
  afterAll(() => t.close());

  it('reports ok: false with the first broken position and a reason', async () => {
    await append(t, 'tamper-a', 6);
    await settleLedger(t);
    await request(t.server).get('/api/v1/ledger/verify').set(AUTH).expect(200, {
      ok: true,
      verifiedThrough: 6,
      checkpointsVerified: 0,
    });
    // What the triggers forbid, a table owner can still do: that is what verify is for.
    await sql`alter table event disable trigger event_no_update_delete`.execute(t.handle.db);
    await sql`update event set data = '{"n": 999}'::jsonb where stream_id = 'tamper-a' and stream_version = 4`.execute(
      t.handle.db,
    );
    await sql`alter table event enable trigger event_no_update_delete`.execute(t.handle.db);
    const res = await request(t.server).get('/api/v1/ledger/verify').set(AUTH).expect(200);
    expect(res.body).toMatchObject({
      ok: false,
      brokenAt: 4,
      verifiedThrough: 3,
      reason: expect.any(String),
    });
    expect(res.body.reason).toMatch(/changed/);
  });
});
