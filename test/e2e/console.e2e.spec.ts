import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RULE_IDS } from '../../src/compliance/rule.js';
import { AUTH, settleLedger, settleProjections, startTestApp, type TestApp } from '../support/app.js';
import { bearer, type CreatedKey, createKey } from '../support/auth.js';
import { replayScenario } from '../support/replay.js';
import { loadScenarios } from '../support/scenarios.js';

const scenarios = loadScenarios();

/** The cookie a sign-in set, as `name=value` for the next request, and its attributes. */
function sessionOf(res: request.Response): { cookie: string; attributes: string[] } {
  const header = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
  const line = header.find((c) => c.startsWith('ul_console='));
  if (!line) throw new Error(`no session cookie in ${JSON.stringify(header)}`);
  const [pair = '', ...attributes] = line.split(';').map((p) => p.trim());
  return { cookie: pair, attributes };
}

describe('the auditor console (HTTP)', () => {
  let t: TestApp;
  let auditor: CreatedKey;
  let engineer: CreatedKey;
  let ingest: CreatedKey;
  let cookie: string;
  const ids = new Map<string, string>();

  const signIn = (key: string, extra: Record<string, string> = {}) =>
    request(t.server)
      .post('/console/sign-in')
      .type('form')
      .send({ key, next: '/console/rollouts', ...extra });

  beforeAll(async () => {
    t = await startTestApp();
    auditor = await createKey(t.server, { role: 'auditor', name: 'Ada Auditor' });
    engineer = await createKey(t.server, { role: 'engineer', name: 'eng' });
    ingest = await createKey(t.server, { role: 'ingest', name: 'pipeline' });
    for (const name of ['01-compliant', '02-version-bump-only', '08-in-flight']) {
      ids.set(name, await replayScenario(t, scenarios.find((s) => s.scenario === name)!));
    }
    // The console lists rollouts from the rollout read model, which follows the ledger.
    await settleProjections(t);
    cookie = sessionOf(await signIn(auditor.key).expect(303)).cookie;
  });
  afterAll(() => t.close());

  const page = (url: string) => request(t.server).get(url).set('Cookie', cookie);

  it('signs in with a key into an HttpOnly, SameSite=Strict session cookie scoped to /console', async () => {
    const res = await signIn(auditor.key).expect(303);
    expect(res.headers.location).toBe('/console/rollouts');
    const { cookie: pair, attributes } = sessionOf(res);
    expect(pair).toBe(`ul_console=${auditor.key}`);
    expect(attributes).toContain('HttpOnly');
    expect(attributes).toContain('SameSite=Strict');
    expect(attributes).toContain('Path=/console');
    // A session cookie: gone when the browser closes.
    expect(attributes.some((a) => /^(Max-Age|Expires)=/i.test(a))).toBe(false);
    // Plain HTTP on a loopback address (a local start) is the one place it is not Secure.
    expect(attributes).not.toContain('Secure');
  });

  it('marks the cookie Secure when the console is reached by a name other than loopback', async () => {
    const res = await signIn(auditor.key).set('Host', 'ledger.example.com').expect(303);
    expect(sessionOf(res).attributes).toContain('Secure');
  });

  it('serves no page without a valid key: each sends the browser to sign in', async () => {
    for (const url of [
      '/console/rollouts',
      `/console/rollouts/${ids.get('01-compliant')}`,
      `/console/rollouts/${ids.get('01-compliant')}/report/pdf`,
      '/console/compliance',
      '/console/compliance/report/csv',
      '/console/drift',
      '/console/integrity',
    ]) {
      for (const headers of [{}, { Cookie: 'ul_console=ul_not-a-real-key-at-all' }]) {
        const res = await request(t.server).get(url).set(headers);
        expect(res.status, url).toBe(303);
        expect(res.headers.location).toBe(`/console/sign-in?next=${encodeURIComponent(url)}`);
        expect(res.text).toBe('');
      }
    }
    const verify = await request(t.server).post('/console/integrity/verify').expect(303);
    expect(verify.headers.location).toMatch(/^\/console\/sign-in/);
  });

  it('refuses a wrong key, and keys whose role is not auditor or admin, without setting a cookie', async () => {
    const wrong = await signIn('ul_wrongwrongwrongwrongwrongwrong').expect(401);
    expect(wrong.text).toContain('That key is not valid');
    expect(wrong.headers['set-cookie']).toBeUndefined();
    for (const key of [engineer.key, ingest.key]) {
      const res = await signIn(key).expect(403);
      expect(res.text).toContain('The console is for auditors and admins');
      expect(res.headers['set-cookie']).toBeUndefined();
    }
    const revoked = await createKey(t.server, { role: 'auditor', name: 'leaver' });
    const session = sessionOf(await signIn(revoked.key).expect(303)).cookie;
    await request(t.server).delete(`/api/v1/api-keys/${revoked.id}`).set(AUTH).expect(204);
    await eventuallyRedirected(session);
  });

  /** A revoked key's session stops working (once the key cache has let go of it). */
  async function eventuallyRedirected(session: string) {
    for (let i = 0; i < 100; i++) {
      const res = await request(t.server).get('/console/rollouts').set('Cookie', session);
      if (res.status === 303) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error('a revoked key still opened the console');
  }

  it('refuses a sign-in form sent from another site, by Sec-Fetch-Site or by Origin', async () => {
    for (const headers of [
      { 'Sec-Fetch-Site': 'cross-site', Origin: 'null' },
      { 'Sec-Fetch-Site': 'same-site' },
      { Origin: 'https://evil.example' },
      { Origin: 'null' },
    ]) {
      const res = await signIn(auditor.key).set(headers).expect(403);
      expect(res.headers['set-cookie']).toBeUndefined();
    }
    await signIn(auditor.key).set({ 'Sec-Fetch-Site': 'same-origin', Origin: 'null' }).expect(303);
  });

  it('does not let the console cookie authenticate the API, and the API refuses forms', async () => {
    await request(t.server).get('/api/v1/rollouts').set('Cookie', cookie).expect(401);
    const form = await request(t.server)
      .post('/api/v1/rollouts')
      .set(AUTH)
      .type('form')
      .send({ title: 'x' })
      .expect(415);
    expect(form.headers['content-type']).toMatch(/problem\+json/);
  });

  it('lists rollouts with a verdict chip per rule, and filters by verdict and failing rule', async () => {
    const all = await page('/console/rollouts').expect(200);
    expect(all.headers['content-type']).toBe('text/html; charset=utf-8');
    for (const id of ids.values()) expect(all.text).toContain(`href="/console/rollouts/${id}"`);
    const chips = all.text.match(/<span class="chip (pass|fail|pending|not-applicable)"/g) ?? [];
    expect(chips).toHaveLength(RULE_IDS.length * ids.size);

    const failing = await page('/console/rollouts?verdict=failing&rule=compatibility-checked').expect(200);
    expect(failing.text).toContain(ids.get('02-version-bump-only'));
    expect(failing.text).not.toContain(ids.get('01-compliant'));
    const compliant = await page('/console/rollouts?verdict=compliant').expect(200);
    expect(compliant.text).toContain(ids.get('01-compliant'));
    expect(compliant.text).not.toContain(ids.get('02-version-bump-only'));
    const pending = await page('/console/rollouts?verdict=pending&status=in_progress&from=&to=').expect(200);
    expect(pending.text).toContain(ids.get('08-in-flight'));
    expect(pending.text).not.toContain(ids.get('01-compliant'));
  });

  it('pages with a keyset cursor', async () => {
    for (let i = 0; i < 26; i++) {
      await request(t.server)
        .post('/api/v1/rollouts')
        .set(AUTH)
        .send({ title: `bulk ${i}`, environment: 'staging', products: [{ product: 'p', toVersion: '1' }] })
        .expect(201);
    }
    await settleProjections(t);
    const first = await page('/console/rollouts?environment=staging').expect(200);
    expect(first.text.match(/<tr><td><a href="\/console\/rollouts\//g)).toHaveLength(25);
    const next = /href="(\/console\/rollouts\?[^"]*cursor=[^"]+)"/
      .exec(first.text)?.[1]
      ?.replaceAll('&amp;', '&');
    expect(next).toBeDefined();
    const second = await page(next!).expect(200);
    expect(second.text.match(/<tr><td><a href="\/console\/rollouts\//g)).toHaveLength(1);
    expect(second.text).toContain('bulk 0');
    expect(second.text).not.toMatch(/cursor=/);
  });

  it('answers bad filters with a page naming the field', async () => {
    const res = await page('/console/rollouts?status=sideways').expect(400);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.text).toContain('status');
    await page('/console/rollouts/not-a-uuid').expect(400);
    const missing = await page('/console/rollouts/00000000-0000-4000-8000-00000000dead').expect(404);
    expect(missing.text).toContain('not found');
  });

  it('shows a rollout with its plan, evidence linked to its events, and downloads every format', async () => {
    const id = ids.get('02-version-bump-only')!;
    const res = await page(`/console/rollouts/${id}`).expect(200);
    expect(res.text).toContain('The plan (revision 1)');
    const link = /<a href="#(event-\d+)">/.exec(res.text)?.[1];
    expect(link).toBeDefined();
    expect(res.text).toContain(`<tr id="${link}">`);
    for (const format of ['json', 'csv', 'html', 'pdf']) {
      const href = new RegExp(`href="(/console/rollouts/${id}/report/${format}\\?asOf=\\d+)"`).exec(
        res.text,
      )?.[1];
      expect(href, format).toBeDefined();
      const file = await page(href!).buffer(true).expect(200);
      expect(file.headers['content-disposition']).toMatch(
        new RegExp(`filename="rollout-${id}-at-\\d+\\.${format}"`),
      );
    }
    const json = await page(`/console/rollouts/${id}/report/json`).expect(200);
    const api = await request(t.server)
      .get(`/api/v1/reports/rollouts/${id}`)
      .query({ format: 'json', asOf: json.body.basis.position })
      .set(bearer(auditor.key))
      .expect(200);
    expect(json.text).toBe(api.text);
  });

  it('records console downloads in the ledger under the signed-in key', async () => {
    const id = ids.get('01-compliant')!;
    await page(`/console/rollouts/${id}/report/csv`).expect(200);
    await settleLedger(t);
    const ledger = await request(t.server).get('/api/v1/ledger').query({ limit: 1000 }).set(AUTH).expect(200);
    const downloads = ledger.body.events.filter(
      (e: { type: string; data: { rolloutId?: string; format?: string } }) =>
        e.type === 'ReportDownloaded' && e.data.rolloutId === id && e.data.format === 'csv',
    );
    expect(downloads.at(-1).metadata.actor).toMatchObject({ name: 'Ada Auditor', role: 'auditor' });
  });

  it('shows the compliance page for a period, with its chart and downloads', async () => {
    const res = await page('/console/compliance?from=2000-01-01&to=2999-12-31').expect(200);
    expect(res.text).toMatch(/<svg [^>]*aria-labelledby="over-time-title/);
    expect(res.text).toContain('/console/compliance/report/pdf?from=2000-01-01&amp;to=2999-12-31&amp;asOf=');
    const empty = await page('/console/compliance?from=1999-01-01&to=1999-01-31').expect(200);
    expect(empty.text).toContain('No rollouts in this period.');
  });

  it('verifies the ledger on request, as a plain form', async () => {
    const before = await page('/console/integrity').expect(200);
    expect(before.text).toContain('Verify now');
    expect(before.text).toContain('BEGIN PUBLIC KEY');
    const res = await request(t.server)
      .post('/console/integrity/verify')
      .set('Cookie', cookie)
      .type('form')
      .send({});
    expect(res.status).toBe(201);
    expect(res.text).toContain('The ledger verifies');
    const foreign = await request(t.server)
      .post('/console/integrity/verify')
      .set('Cookie', cookie)
      .set('Origin', 'https://evil.example')
      .expect(403);
    expect(foreign.text).not.toContain('The ledger verifies');
  });

  it('signs out by clearing the cookie', async () => {
    const res = await request(t.server).post('/console/sign-out').set('Cookie', cookie).expect(303);
    expect(res.headers.location).toBe('/console/sign-in');
    expect(sessionOf(res).cookie).toBe('ul_console=');
  });
});
