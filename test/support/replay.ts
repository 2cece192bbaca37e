import request from 'supertest';
import { expect } from 'vitest';
import { AUTH, type TestApp } from './app.js';
import type { Scenario } from './scenarios.js';

/**
 * Replays a scenario's calls through the REST API as the admin; returns the rollout id it bound.
 * Every call must succeed: a scenario is a rollout the API accepts, judged afterwards.
 */
export async function replayScenario(t: TestApp, s: Scenario): Promise<string> {
  const bound: Record<string, string> = {};
  for (const call of s.calls) {
    const url = call.path.replace(/\{(\w+)\}/g, (_, k: string) => bound[k] ?? `{${k}}`);
    const method = call.method.toLowerCase() as 'post' | 'put';
    const res = await request(t.server)
      [method](url)
      .set(AUTH)
      .send(call.body as object);
    expect(res.status, `${call.method} ${url}: ${JSON.stringify(res.body)}`).toBeGreaterThanOrEqual(200);
    expect(res.status).toBeLessThan(300);
    if (call.bind) bound[call.bind] = res.body[call.bind];
  }
  const id = bound.id;
  if (!id) throw new Error(`${s.scenario} bound no id`);
  return id;
}
