import path from 'node:path';
import { fileURLToPath } from 'node:url';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH, settleLedger, startTestApp, type TestApp } from '../support/app.js';
import { replayScenario } from '../support/replay.js';
import { loadScenarios } from '../support/scenarios.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/compliance');
const shared = loadScenarios();
/** Our own fixtures: each built to fail exactly one rule. */
const own = loadScenarios(FIXTURES);

describe('the rulebook conformance set, replayed through the REST API', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  it('finds the shared conformance set and our own fixtures', () => {
    expect(shared.length).toBeGreaterThanOrEqual(13);
    expect(own.length).toBeGreaterThanOrEqual(12);
  });

  for (const s of [...shared, ...own]) {
    it(`${s.scenario}: the JSON report gives every rule the listed verdict`, async () => {
      const id = await replayScenario(t, s);
      await settleLedger(t);
      const events = await request(t.server).get(`/api/v1/rollouts/${id}/events`).set(AUTH).expect(200);
      expect(events.body.events).toHaveLength(s.calls.length);
      const report = await request(t.server)
        .get(`/api/v1/reports/rollouts/${id}`)
        .query({ format: 'json' })
        .set(AUTH)
        .expect(200);
      const verdicts = Object.fromEntries(
        (report.body.rules as { id: string; verdict: string }[]).map((r) => [r.id, r.verdict]),
      );
      expect(verdicts).toEqual(s.verdicts);
    });
  }
});
