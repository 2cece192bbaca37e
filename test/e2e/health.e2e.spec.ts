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

  /** A metric without labels, read from /metrics now. */
  const metric = async (name: string) => {
    const text = (await request(t.server).get('/metrics').set(AUTH).expect(200)).text;
    const m = new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text);
    if (!m) throw new Error(`no ${name} in /metrics`);
    return Number(m[1]);
  };

  it('counts the group-commit calls appends went in, and the appends they carried', async () => {
    const [calls, appends] = [
      await metric('ledger_group_commit_calls_total'),
      await metric('ledger_group_commit_appends_total'),
    ];
    await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        request(t.server)
          .post('/api/v1/rollouts')
          .set(AUTH)
          .send({ title: `counted ${i}` })
          .expect(201),
      ),
    );
    expect((await metric('ledger_group_commit_appends_total')) - appends).toBe(6);
    const sent = (await metric('ledger_group_commit_calls_total')) - calls;
    expect(sent).toBeGreaterThanOrEqual(1);
    expect(sent).toBeLessThanOrEqual(6);
  });

  it('times each group-commit call and how long each append queued for one', async () => {
    const read = async () => ({
      calls: await metric('ledger_group_commit_calls_total'),
      callCount: await metric('ledger_group_commit_call_duration_seconds_count'),
      callSum: await metric('ledger_group_commit_call_duration_seconds_sum'),
      queuedCount: await metric('ledger_group_commit_queue_wait_seconds_count'),
      queuedSum: await metric('ledger_group_commit_queue_wait_seconds_sum'),
    });
    const before = await read();
    const started = performance.now();
    await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        request(t.server)
          .post('/api/v1/rollouts')
          .set(AUTH)
          .send({ title: `timed ${i}` })
          .expect(201),
      ),
    );
    const wall = (performance.now() - started) / 1000;
    const after = await read();
    // One duration per call sent, one queue wait per append carried.
    expect(after.callCount - before.callCount).toBe(after.calls - before.calls);
    expect(after.queuedCount - before.queuedCount).toBe(5);
    const callSeconds = after.callSum - before.callSum;
    expect(callSeconds).toBeGreaterThan(0);
    // Each call and each wait is a part of the requests' own time, never more than all of it.
    expect(callSeconds).toBeLessThanOrEqual(wall);
    const queuedSeconds = after.queuedSum - before.queuedSum;
    expect(queuedSeconds).toBeGreaterThanOrEqual(0);
    expect(queuedSeconds).toBeLessThanOrEqual(5 * wall);
  });
});
