import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH, startTestApp, type TestApp } from '../support/app.js';

describe('health and access', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  it('reports live and ready without a key', async () => {
    await request(t.server).get('/health/live').expect(200, { status: 'live' });
    const ready = await request(t.server).get('/health/ready').expect(200);
    expect(ready.body).toMatchObject({
      status: 'ready',
      checks: { database: { ok: true }, migrations: { ok: true } },
    });
  });

  it('refuses the ledger without a key, and with a wrong one, as problem+json', async () => {
    const none = await request(t.server).get('/api/v1/ledger').expect(401);
    expect(none.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(none.body).toMatchObject({ status: 401, title: expect.any(String) });
    await request(t.server)
      .get('/api/v1/ledger')
      .set('Authorization', 'Bearer not-the-admin-token')
      .expect(401);
  });

  it('serves the ledger and metrics with the admin key', async () => {
    const page = await request(t.server).get('/api/v1/ledger').set(AUTH).expect(200);
    expect(page.body).toEqual({ events: [], next: null });
    const metrics = await request(t.server).get('/metrics').set(AUTH).expect(200);
    expect(metrics.text).toContain('http_requests_total');
  });
});
