import { parse } from 'csv-parse/sync';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RULE_IDS } from '../../src/compliance/rule.js';
import { canonicalJson } from '../../src/ledger/hashing.js';
import { ReportsService } from '../../src/reporting/reports.service.js';
import { AUTH, settleLedger, startTestApp, type TestApp } from '../support/app.js';
import { bearer, createKey } from '../support/auth.js';
import { loadScenarios } from '../support/scenarios.js';

const compliant = loadScenarios().find((s) => s.scenario === '01-compliant');

describe('rollout reports: JSON and CSV', () => {
  let t: TestApp;
  let id: string;
  beforeAll(async () => {
    t = await startTestApp();
    if (!compliant) throw new Error('scenario 01-compliant is missing');
    const [create, ...rest] = compliant.calls;
    const created = await request(t.server)
      .post(create!.path)
      .set(AUTH)
      .send(create!.body as object)
      .expect(201);
    id = created.body.id;
    // Everything but the completion, so a later event can change the report.
    for (const call of rest.slice(0, -1)) {
      await request(t.server)
        .post(call.path.replace('{id}', id))
        .set(AUTH)
        .send(call.body as object)
        .expect(200);
    }
    await settleLedger(t);
  });
  afterAll(() => t.close());

  const get = (query: Record<string, string | number>, headers: Record<string, string> = AUTH) =>
    request(t.server).get(`/api/v1/reports/rollouts/${id}`).query(query).set(headers);

  it('states what it was built from: position, chain head matching the ledger, rulebook version', async () => {
    const res = await get({ format: 'json' }).expect(200);
    const { basis, rules } = res.body;
    expect(rules.map((r: { id: string }) => r.id)).toEqual([...RULE_IDS]);
    expect(basis.rulebookVersion).toMatch(/\d/);
    const entry = await request(t.server)
      .get('/api/v1/ledger')
      .query({ after: basis.position - 1, limit: 1 })
      .set(AUTH)
      .expect(200);
    expect(entry.body.events[0].hash).toBe(basis.chainHead);
    expect(res.headers['x-chain-head']).toBe(basis.chainHead);
    expect(res.headers['x-generated-at']).toMatch(/^\d{4}-\d\d-\d\dT/);
    // Before completion post-verification is pending; the timeline and readbacks are there.
    expect(rules.find((r: { id: string }) => r.id === 'post-verification').verdict).toBe('pending');
    expect(res.body.timeline.map((s: { stepId: string }) => s.stepId)).toEqual([
      'migrate-schema',
      'roll-identity',
      'publish-docs',
    ]);
    const versionTruth = res.body.readbacks.find((r: { surface: string }) => r.surface === 'version-truth');
    expect(versionTruth.pre).toHaveLength(1);
    expect(versionTruth.post).toHaveLength(1);
  });

  it('is byte-identical at the same asOf, also after more events were recorded', async () => {
    const first = await get({ format: 'json' }).expect(200);
    const asOf = first.body.basis.position;
    const again = await get({ format: 'json', asOf }).expect(200);
    expect(again.text).toBe(first.text);
    const csv1 = await get({ format: 'csv', asOf }).expect(200);

    await request(t.server).post(`/api/v1/rollouts/${id}/complete`).set(AUTH).send({}).expect(200);
    await settleLedger(t);

    const later = await get({ format: 'json', asOf }).expect(200);
    expect(later.text).toBe(first.text);
    const csv2 = await get({ format: 'csv', asOf }).expect(200);
    expect(csv2.text).toBe(csv1.text);
    // …while the report now sees the completion.
    const now = await get({ format: 'json' }).expect(200);
    expect(now.body.rollout.status).toBe('completed');
    expect(now.body.rules.find((r: { id: string }) => r.id === 'post-verification').verdict).toBe('pass');
  });

  it('parses back as CSV with a CSV library: one row per rule, with the basis on every row', async () => {
    const res = await get({ format: 'csv' }).expect(200);
    expect(res.headers['content-type']).toMatch(/^text\/csv/);
    const rows = parse(res.text, { columns: true }) as Record<string, string>[];
    expect(rows.map((r) => r.rule_id)).toEqual([...RULE_IDS]);
    const json = await get({ format: 'json', asOf: rows[0]!.as_of_position! }).expect(200);
    for (const row of rows) {
      const rule = json.body.rules.find((r: { id: string }) => r.id === row.rule_id);
      expect(row.verdict).toBe(rule.verdict);
      expect(row.finding).toBe(rule.finding);
      expect(row.evidence_positions).toBe(rule.evidence.join(' '));
      expect(row.chain_head).toBe(json.body.basis.chainHead);
    }
  });

  it('answers CSV for Accept: text/csv', async () => {
    const res = await request(t.server)
      .get(`/api/v1/reports/rollouts/${id}`)
      .set(AUTH)
      .set('Accept', 'text/csv');
    expect(res.status).toBe(200);
    expect(res.text.split('\r\n')[0]).toContain('rule_id');
  });

  it('records every download in the ledger: who fetched which report', async () => {
    const res = await get({ format: 'json' }).expect(200);
    await settleLedger(t);
    const page = await request(t.server)
      .get('/api/v1/ledger')
      .query({ after: res.body.basis.position, limit: 1000 })
      .set(AUTH)
      .expect(200);
    const downloads = page.body.events.filter((e: { type: string }) => e.type === 'ReportDownloaded');
    expect(downloads.at(-1).data).toMatchObject({ kind: 'rollout', rolloutId: id, format: 'json' });
    expect(downloads.at(-1).metadata.actor).toMatchObject({ id: 'env:ADMIN_TOKEN', role: 'admin' });
  });

  it('refuses a bad format, an asOf beyond the head, an unknown rollout', async () => {
    await get({ format: 'xml' }).expect(400);
    await get({ asOf: 10_000_000 }).expect(400);
    await request(t.server)
      .get('/api/v1/reports/rollouts/00000000-0000-4000-8000-000000000000')
      .set(AUTH)
      .expect(404);
  });

  it('lets auditors read any report, an engineer only its own rollouts, and nobody without a key', async () => {
    const auditor = (await createKey(t.server, { role: 'auditor', name: 'audit' })).key;
    const engineer = (await createKey(t.server, { role: 'engineer', name: 'eng' })).key;
    const ingest = (await createKey(t.server, { role: 'ingest', name: 'tekton' })).key;
    await get({ format: 'json' }, bearer(auditor)).expect(200);
    await get({ format: 'json' }, bearer(engineer)).expect(403);
    await get({ format: 'json' }, bearer(ingest)).expect(403);
    await get({ format: 'json' }, {}).expect(401);

    const own = await request(t.server)
      .post('/api/v1/rollouts')
      .set(bearer(engineer))
      .send({ title: 'mine' })
      .expect(201);
    await settleLedger(t);
    await request(t.server).get(`/api/v1/reports/rollouts/${own.body.id}`).set(bearer(engineer)).expect(200);
  });
});

describe('the period compliance report', () => {
  let t: TestApp;
  const byEnv: Record<string, string[]> = {};
  let rollbacks = 0;
  beforeAll(async () => {
    t = await startTestApp();
    // Every shared scenario, once in "production" and once in "staging".
    for (const environment of ['production', 'staging']) {
      for (const s of loadScenarios()) {
        const [create, ...rest] = s.calls;
        const body = { ...(create!.body as object), environment };
        const res = await request(t.server).post(create!.path).set(AUTH).send(body).expect(201);
        for (const call of rest) {
          const method = call.method.toLowerCase() as 'post' | 'put';
          await request(t.server)
            [method](call.path.replace('{id}', res.body.id))
            .set(AUTH)
            .send(call.body as object);
          if (call.path.endsWith('/rollbacks')) rollbacks++;
        }
        byEnv[environment] = [...(byEnv[environment] ?? []), res.body.id];
      }
    }
    await settleLedger(t);
  });
  afterAll(() => t.close());

  const period = (query: Record<string, string | number>) =>
    request(t.server).get('/api/v1/reports/compliance').query(query).set(AUTH);

  it('counts, per rule, exactly the verdicts of the rollouts it covers', async () => {
    const res = await period({ environment: 'staging', format: 'json' }).expect(200);
    const report = res.body;
    expect(report.rollouts.map((r: { id: string }) => r.id).sort()).toEqual([...byEnv.staging!].sort());
    // Recompute from the per-rollout reports at the same position.
    const perRule: Record<string, Record<string, number>> = {};
    let compliant = 0;
    for (const id of byEnv.staging!) {
      const one = await request(t.server)
        .get(`/api/v1/reports/rollouts/${id}`)
        .query({ asOf: report.basis.position })
        .set(AUTH)
        .expect(200);
      if (!one.body.rules.some((r: { verdict: string }) => r.verdict === 'fail')) compliant++;
      for (const r of one.body.rules as { id: string; verdict: string }[]) {
        perRule[r.id] ??= { pass: 0, fail: 0, pending: 0, 'not-applicable': 0 };
        perRule[r.id]![r.verdict]!++;
      }
    }
    expect(report.totals.compliant).toBe(compliant);
    for (const rule of report.perRule as { id: string; counts: Record<string, number> }[]) {
      expect(rule.counts, rule.id).toEqual(perRule[rule.id]);
    }
    expect(report.totals.rollbacks).toBe(rollbacks / 2);
    expect(report.rollbacks.meanTimeToRecoverSeconds).toBeGreaterThanOrEqual(0);
    expect(report.perProduct.map((p: { product: string }) => p.product)).toEqual(['identity', 'portal-docs']);
    expect(report.overTime.reduce((n: number, d: { rollouts: number }) => n + d.rollouts, 0)).toBe(
      byEnv.staging!.length,
    );
  });

  it('is byte-identical at the same asOf after more rollouts, and parses as CSV', async () => {
    const first = await period({ format: 'json' }).expect(200);
    const asOf = first.body.basis.position;
    await request(t.server).post('/api/v1/rollouts').set(AUTH).send({ title: 'later' }).expect(201);
    await settleLedger(t);
    const again = await period({ format: 'json', asOf }).expect(200);
    expect(again.text).toBe(first.text);
    // Streamed in pieces, and still the canonical text of the report, with its headers.
    const built = await t.app
      .get(ReportsService)
      .periodReport({ from: null, to: null, product: null, environment: null }, asOf);
    expect(first.text).toBe(canonicalJson(built));
    expect(first.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(first.headers['x-ledger-position']).toBe(String(asOf));
    expect(first.headers['content-disposition']).toBe(`attachment; filename="compliance-at-${asOf}.json"`);
    const csv = await period({ format: 'csv', asOf }).expect(200);
    const rows = parse(csv.text, { columns: true }) as Record<string, string>[];
    expect(rows).toHaveLength(first.body.rollouts.length);
    for (const row of rows) {
      const r = first.body.rollouts.find((x: { id: string }) => x.id === row.rollout_id);
      for (const id of RULE_IDS) expect(row[id]).toBe(r.verdicts[id]);
    }
    const now = await period({ format: 'json' }).expect(200);
    expect(now.body.totals.rollouts).toBe(first.body.totals.rollouts + 1);
  });

  it('filters by period and refuses a period that ends before it starts', async () => {
    const future = await period({ from: '2999-01-01T00:00:00Z' }).expect(200);
    expect(future.body.totals.rollouts).toBe(0);
    expect(future.body.totals.complianceRate).toBeNull();
    const bad = await period({ from: '2026-02-01T00:00:00Z', to: '2026-01-01T00:00:00Z' }).expect(400);
    expect(bad.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field: 'to' })]));
  });

  it('is for auditors (and admins)', async () => {
    const engineer = (await createKey(t.server, { role: 'engineer', name: 'eng' })).key;
    const auditor = (await createKey(t.server, { role: 'auditor', name: 'audit' })).key;
    await request(t.server).get('/api/v1/reports/compliance').set(bearer(engineer)).expect(403);
    await request(t.server).get('/api/v1/reports/compliance').set(bearer(auditor)).expect(200);
  });
});
