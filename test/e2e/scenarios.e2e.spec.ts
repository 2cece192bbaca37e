import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH, startTestApp, type TestApp } from '../support/app.js';
import { loadScenarios } from '../support/scenarios.js';

const scenarios = loadScenarios();

describe('conformance scenarios are accepted through the REST API', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  it('finds the conformance set', () => {
    expect(scenarios.length).toBeGreaterThanOrEqual(13);
  });

  for (const s of scenarios) {
    it(`${s.scenario}: every call answers 2xx and the rollout records each one`, async () => {
      const bound: Record<string, string> = {};
      for (const call of s.calls) {
        const url = call.path.replace(/\{(\w+)\}/g, (_, k: string) => bound[k] ?? `{${k}}`);
        const res = await request(t.server)
          [call.method.toLowerCase() as 'post' | 'put'](url)
          .set(AUTH)
          .send(call.body as object);
        expect(res.status, `${call.method} ${url}: ${JSON.stringify(res.body)}`).toBeGreaterThanOrEqual(200);
        expect(res.status).toBeLessThan(300);
        if (call.bind) bound[call.bind] = res.body[call.bind];
      }
      const events = await request(t.server).get(`/api/v1/rollouts/${bound.id}/events`).set(AUTH).expect(200);
      expect(events.body.events).toHaveLength(s.calls.length);
    });
  }
});
