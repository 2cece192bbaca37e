import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPinoLogger } from '../../src/common/logger.js';
import { ADMIN_TOKEN, AUTH, startTestApp, type TestApp } from '../support/app.js';
import { type AppOn, bearer, createKey, startAppOn } from '../support/auth.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

const READ_ROUTE = '/api/v1/ledger';
const madeUpKey = () => `ul_${randomBytes(32).toString('base64url')}`;

describe('rate limiting', () => {
  const MAX = 5;
  let t: TestApp;
  beforeAll(async () => {
    // A window far longer than the test, so no counter resets half-way.
    t = await startTestApp({ env: { RATE_LIMIT_MAX: String(MAX), RATE_LIMIT_WINDOW_MS: '3600000' } });
  });
  afterAll(() => t.close());

  it('answers 429 problem+json with Retry-After once a key has used its allowance, for that key only', async () => {
    const engineer = await createKey(t.server, { role: 'engineer', name: 'own-allowance' }); // 1 of the admin's
    for (let i = 2; i <= MAX; i++) await request(t.server).get(READ_ROUTE).set(AUTH).expect(200);

    const limited = await request(t.server).get(READ_ROUTE).set(AUTH).expect(429);
    expect(limited.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(limited.body).toMatchObject({
      status: 429,
      title: 'Too many requests',
      detail: expect.stringContaining(`at most ${MAX} requests`),
    });

    // Another key has an allowance of its own.
    await request(t.server).get(READ_ROUTE).set(bearer(engineer.key)).expect(200);
  });

  it('counts requests without a valid key against the client address, however many made-up keys it tries', async () => {
    for (let i = 0; i < MAX; i++) {
      await request(t.server).get(READ_ROUTE).set(bearer(madeUpKey())).expect(401);
    }
    await request(t.server).get(READ_ROUTE).set(bearer(madeUpKey())).expect(429);
    await request(t.server).get(READ_ROUTE).expect(429);
  });

  it('never limits the health checks', async () => {
    for (let i = 0; i < MAX * 2; i++) {
      await request(t.server).get('/health/live').expect(200);
      await request(t.server).get('/health/live').set(AUTH).expect(200);
    }
  });
});

describe('security headers, CORS and logs', () => {
  const lines: string[] = [];
  let db: TestDatabase;
  let plain: AppOn;
  let withCors: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    plain = await startAppOn(db.handle, { LOG_LEVEL: 'trace' }, createPinoLogger('trace', sink));
    withCors = await startTestApp({
      env: { CORS_ORIGINS: 'https://ops.example.com, http://localhost:5173' },
    });
  });
  afterAll(async () => {
    await withCors?.close();
    await plain?.close();
    await db?.drop();
  });

  it('sets the security headers on answers and on errors', async () => {
    for (const res of [
      await request(plain.server).get(READ_ROUTE).set(AUTH).expect(200),
      await request(plain.server).get(READ_ROUTE).expect(401),
      await request(plain.server).get('/no/such/route').set(AUTH).expect(404),
    ]) {
      expect(res.headers).toMatchObject({
        'x-content-type-options': 'nosniff',
        'x-frame-options': 'SAMEORIGIN',
        'referrer-policy': 'no-referrer',
        'strict-transport-security': expect.stringContaining('max-age='),
        'content-security-policy': expect.stringContaining("default-src 'self'"),
        'cross-origin-opener-policy': 'same-origin',
      });
      expect(res.headers['content-security-policy']).toContain("script-src 'self';");
      expect(res.headers['x-powered-by']).toBeUndefined();
    }
  });

  it('relaxes the CSP for Swagger UI only as far as it needs, and only on its pages', async () => {
    const docs = await request(plain.server).get('/api/docs').set(AUTH).expect(200);
    const csp = docs.headers['content-security-policy'];
    expect(csp).toContain("script-src 'self';");
    expect(csp).toContain("img-src 'self' data: https://validator.swagger.io");
    // Served over plain http on a local start, so its assets must not be upgraded to https.
    expect(csp).not.toContain('upgrade-insecure-requests');
    const api = await request(plain.server).get(READ_ROUTE).set(AUTH).expect(200);
    expect(api.headers['content-security-policy']).toContain('upgrade-insecure-requests');
  });

  it('sends no CORS headers unless CORS_ORIGINS is set', async () => {
    const res = await request(plain.server)
      .get(READ_ROUTE)
      .set(AUTH)
      .set('Origin', 'https://ops.example.com')
      .expect(200);
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    const preflight = await request(plain.server)
      .options(READ_ROUTE)
      .set('Origin', 'https://ops.example.com')
      .set('Access-Control-Request-Method', 'GET');
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('allows exactly the configured origins', async () => {
    const allowed = await request(withCors.server)
      .get(READ_ROUTE)
      .set(AUTH)
      .set('Origin', 'https://ops.example.com')
      .expect(200);
    expect(allowed.headers['access-control-allow-origin']).toBe('https://ops.example.com');

    const preflight = await request(withCors.server)
      .options(READ_ROUTE)
      .set('Origin', 'http://localhost:5173')
      .set('Access-Control-Request-Method', 'GET')
      .set('Access-Control-Request-Headers', 'authorization')
      .expect(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('http://localhost:5173');

    const other = await request(withCors.server)
      .get(READ_ROUTE)
      .set(AUTH)
      .set('Origin', 'https://evil.example.com')
      .expect(200);
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('never writes a key, the admin token or a cookie to the logs', async () => {
    const created = await createKey(plain.server, { role: 'engineer', name: 'logged-key' });
    const cookie = `session=${randomBytes(12).toString('hex')}`;
    const unknown = madeUpKey();
    await request(plain.server).get(READ_ROUTE).set(bearer(created.key)).set('Cookie', cookie).expect(200);
    await request(plain.server).get(READ_ROUTE).set(bearer(unknown)).expect(401);
    await request(plain.server).get(READ_ROUTE).set('Authorization', `Basic ${ADMIN_TOKEN}`).expect(401);
    await request(plain.server).delete(`/api/v1/api-keys/${created.id}`).set(AUTH).expect(204);
    await request(plain.server).get(READ_ROUTE).set(bearer(created.key)).expect(401);

    // What a developer might one day log by hand goes through the same redaction.
    const logger = plain.app.getHttpAdapter().getInstance().log;
    logger.info({ req: { headers: { authorization: `Bearer ${created.key}`, cookie } } }, 'request dump');
    logger.info(
      { headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'x-api-key': unknown } },
      'headers dump',
    );
    logger.info({ apiKey: created.key, token: ADMIN_TOKEN, key: unknown }, 'fields dump');
    logger.info({ config: { adminToken: ADMIN_TOKEN } }, 'config dump');

    const text = lines.join('\n');
    // The capture works: the requests above and the dumps were logged...
    expect(text).toContain('request completed');
    expect(text).toContain('request dump');
    expect(text).toContain('[redacted]');
    expect(text).toContain(created.id);
    // ...and no secret made it.
    for (const secret of [created.key, ADMIN_TOKEN, unknown, cookie]) expect(text).not.toContain(secret);
  });
});
