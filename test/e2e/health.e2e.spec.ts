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

  /** /metrics as it is now: each metric without labels by name, all from one exposition. */
  const metrics = async () => {
    const text = (await request(t.server).get('/metrics').set(AUTH).expect(200)).text;
    return (name: string) => {
      const m = new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text);
      if (!m) throw new Error(`no ${name} in /metrics`);
      return Number(m[1]);
    };
  };

  /** Appends `n` rollouts at once, as concurrent requests. */
  const postRollouts = (n: number, title: string) =>
    Promise.all(
      Array.from({ length: n }, (_, i) =>
        request(t.server)
          .post('/api/v1/rollouts')
          .set(AUTH)
          .send({ title: `${title} ${i}` })
          .expect(201),
      ),
    );

  it('counts the group-commit calls appends went in, and the appends they carried', async () => {
    const before = await metrics();
    await postRollouts(6, 'counted');
    const after = await metrics();
    const d = (name: string) => after(name) - before(name);
    expect(d('ledger_group_commit_appends_total')).toBe(6);
    const sent = d('ledger_group_commit_calls_total');
    expect(sent).toBeGreaterThanOrEqual(1);
    expect(sent).toBeLessThanOrEqual(6);
  });

  it('times each group-commit call and how long each append queued for one', async () => {
    const before = await metrics();
    const started = performance.now();
    await postRollouts(5, 'timed');
    const wall = (performance.now() - started) / 1000;
    const after = await metrics();
    const d = (name: string) => after(name) - before(name);
    // One duration per call sent, one queue wait per append carried.
    expect(d('ledger_group_commit_call_duration_seconds_count')).toBe(d('ledger_group_commit_calls_total'));
    expect(d('ledger_group_commit_queue_wait_seconds_count')).toBe(5);
    const callSeconds = d('ledger_group_commit_call_duration_seconds_sum');
    expect(callSeconds).toBeGreaterThan(0);
    // Each call and each wait is a part of the requests' own time, never more than all of it.
    expect(callSeconds).toBeLessThanOrEqual(wall);
    const queuedSeconds = d('ledger_group_commit_queue_wait_seconds_sum');
    expect(queuedSeconds).toBeGreaterThanOrEqual(0);
    expect(queuedSeconds).toBeLessThanOrEqual(5 * wall);
  });
});
