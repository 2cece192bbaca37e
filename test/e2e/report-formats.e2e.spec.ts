import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RULE_IDS } from '../../src/compliance/rule.js';
import { AUTH, settleLedger, startTestApp, type TestApp } from '../support/app.js';
import { replayScenario } from '../support/replay.js';
import { loadScenarios } from '../support/scenarios.js';

const run = promisify(execFile);
const scenarios = loadScenarios();

/** A binary body as a Buffer (supertest buffers text types only). */
const binary = (req: request.Test) =>
  req.buffer(true).parse((res, done) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => done(null, Buffer.concat(chunks)));
  });

/** Where the files that were read back are kept, for a person to open after the run. */
const OUTPUT = path.resolve('test-output/reports');

/** The text of a PDF as poppler's pdftotext extracts it, table rows kept on their lines. */
async function pdfText(pdf: Buffer, name: string): Promise<string> {
  const file = path.join(OUTPUT, `${name}.pdf`);
  await writeFile(file, pdf);
  const { stdout } = await run('pdftotext', ['-layout', file, '-']);
  return stdout;
}

/** Strips tags and decodes the entities our HTML writer makes, for reading a page's text. */
const htmlText = (page: string) =>
  page
    .replace(/<[^>]+>/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ');

describe('reports as HTML and PDF, read back by real readers', () => {
  let t: TestApp;
  const ids = new Map<string, string>();

  beforeAll(async () => {
    t = await startTestApp();
    await mkdir(OUTPUT, { recursive: true });
    for (const s of scenarios) ids.set(s.scenario, await replayScenario(t, s));
    await settleLedger(t);
  });
  afterAll(() => t.close());

  const report = (id: string, format: string, query: Record<string, string | number> = {}) =>
    request(t.server)
      .get(`/api/v1/reports/rollouts/${id}`)
      .query({ format, ...query })
      .set(AUTH);

  it('finds the conformance set', () => {
    expect(scenarios.length).toBeGreaterThanOrEqual(13);
  });

  for (const s of scenarios) {
    it(`${s.scenario}: pdftotext reads every rule with its verdict, and the basis`, async () => {
      const id = ids.get(s.scenario)!;
      const res = await binary(report(id, 'pdf')).expect(200);
      expect(res.headers['content-type']).toBe('application/pdf');
      expect(res.headers['content-disposition']).toMatch(/^attachment; filename="rollout-.*\.pdf"$/);
      const body = res.body as Buffer;
      expect(body.subarray(0, 5).toString()).toBe('%PDF-');
      const text = await pdfText(body, `rollout-${s.scenario}`);
      const lines = text.split('\n');
      for (const rule of RULE_IDS) {
        // In the verdict table each rule's row starts with its id and carries its verdict.
        const row = lines.find(
          (l) => l.trimStart().startsWith(rule) && /PASS|FAIL|PENDING|NOT-APPLICABLE/.test(l),
        );
        expect(row, `${rule} row in:\n${text}`).toBeDefined();
        expect(row).toContain(s.verdicts[rule]!.toUpperCase());
      }
      expect(text).toContain(`Ledger position ${res.headers['x-ledger-position']}`);
      expect(text.replace(/\s+/g, '')).toContain(res.headers['x-chain-head']);
      expect(text).toContain('Step timeline');
    });

    it(`${s.scenario}: the HTML page names every rule's verdict and draws the timeline`, async () => {
      const id = ids.get(s.scenario)!;
      const res = await report(id, 'html').expect(200);
      expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
      const rows = [
        ...res.text.matchAll(/<tr><td><code>([a-z-]+)<\/code>.*?<span class="badge ([a-z-]+)">/g),
      ];
      expect(Object.fromEntries(rows.map((m) => [m[1], m[2]]))).toEqual(s.verdicts);
      expect(res.text).toMatch(/<svg [^>]*role="img"/);
      expect(res.text).toContain(res.headers['x-chain-head']);
      expect(res.text).not.toMatch(/<script/i);
    });
  }

  it('gives the same verdicts in every format, at the same asOf', async () => {
    const id = ids.get('04-rollback-past-boundary')!;
    const json = await report(id, 'json').expect(200);
    const asOf = json.body.basis.position;
    const html = await report(id, 'html', { asOf }).expect(200);
    const pdf = await pdfText(
      (await binary(report(id, 'pdf', { asOf })).expect(200)).body,
      'rollout-at-asof',
    );
    for (const rule of json.body.rules as { id: string; verdict: string; finding: string }[]) {
      expect(html.text).toContain(`<span class="badge ${rule.verdict}">`);
      expect(htmlText(html.text)).toContain(rule.finding);
      // A finding wraps inside its PDF cell, and pdftotext interleaves the lines of neighbouring
      // cells: every word of it must be there.
      // Long words break at their hyphens.
      const words = new Set(pdf.split(/[\s-]+/));
      for (const word of rule.finding.split(/[\s-]+/)) expect(words, word).toContain(word);
    }
    expect(html.text).toContain('Rollbacks');
    expect(json.body.rollbacks.length).toBeGreaterThan(0);
    expect(htmlText(html.text)).toContain(json.body.rollbacks[0].reason);
  });

  it('renders HTML deterministically for an asOf, too', async () => {
    const id = ids.get('01-compliant')!;
    const first = await report(id, 'html').expect(200);
    const again = await report(id, 'html', { asOf: Number(first.headers['x-ledger-position']) }).expect(200);
    expect(again.text).toBe(first.text);
  });

  it('negotiates the format from Accept, and refuses what it cannot make with a 406', async () => {
    const id = ids.get('01-compliant')!;
    const url = `/api/v1/reports/rollouts/${id}`;
    const pdf = await binary(request(t.server).get(url).set(AUTH).set('Accept', 'application/pdf')).expect(
      200,
    );
    expect((pdf.body as Buffer).subarray(0, 5).toString()).toBe('%PDF-');
    const html = await request(t.server)
      .get(url)
      .set(AUTH)
      .set('Accept', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8')
      .expect(200);
    expect(html.headers['content-type']).toMatch(/^text\/html/);
    expect(html.headers['content-disposition']).toMatch(/^inline;/);
    const preferred = await request(t.server)
      .get(url)
      .set(AUTH)
      .set('Accept', 'application/pdf;q=0.5, text/csv')
      .expect(200);
    expect(preferred.headers['content-type']).toMatch(/^text\/csv/);
    const refused = await request(t.server).get(url).set(AUTH).set('Accept', 'image/png').expect(406);
    expect(refused.headers['content-type']).toMatch(/problem\+json/);
    expect(refused.body.detail).toContain('application/pdf');
    const badFormat = await request(t.server).get(url).query({ format: 'docx' }).set(AUTH).expect(400);
    expect(JSON.stringify(badFormat.body)).toContain('format');
  });

  it('prints hostile or non-Latin titles as text: escaped in HTML, intact in PDF', async () => {
    const [create, ...rest] = scenarios.find((s) => s.scenario === '01-compliant')!.calls;
    const title = 'Überprüfung <script>alert(1)</script> «Ελληνικά» & Кириллица';
    const created = await request(t.server)
      .post(create!.path)
      .set(AUTH)
      .send({ ...(create!.body as object), title })
      .expect(201);
    const id = created.body.id as string;
    for (const call of rest.slice(0, 2)) {
      await request(t.server)
        .post(call.path.replace('{id}', id))
        .set(AUTH)
        .send(call.body as object)
        .expect(200);
    }
    await settleLedger(t);
    const html = await report(id, 'html').expect(200);
    expect(html.text).not.toContain('<script>');
    expect(html.text).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    const pdf = await pdfText((await binary(report(id, 'pdf')).expect(200)).body, 'rollout-unicode-title');
    // The title may wrap across lines: compare the characters.
    expect(pdf.replace(/\s+/g, '')).toContain(title.replace(/\s+/g, ''));
  });

  it('makes the period report as HTML and PDF, with its charts and the failing rules', async () => {
    const json = await request(t.server).get('/api/v1/reports/compliance').set(AUTH).expect(200);
    const asOf = json.body.basis.position;
    const html = await request(t.server)
      .get('/api/v1/reports/compliance')
      .query({ format: 'html', asOf })
      .set(AUTH)
      .expect(200);
    expect(html.text.match(/<svg [^>]*role="img"/g)).toHaveLength(2);
    const text = htmlText(html.text);
    expect(text).toContain(`${json.body.totals.rollouts} rollouts`);
    for (const rule of json.body.perRule as { id: string; counts: { fail: number } }[]) {
      expect(text).toContain(rule.id);
    }
    const pdfRes = await binary(
      request(t.server).get('/api/v1/reports/compliance').query({ format: 'pdf', asOf }).set(AUTH),
    ).expect(200);
    expect(pdfRes.headers['content-disposition']).toBe(`attachment; filename="compliance-at-${asOf}.pdf"`);
    const pdf = await pdfText(pdfRes.body, 'compliance');
    expect(pdf).toContain('Compliance over time');
    expect(pdf).toContain('Compliance rate per rule');
    const lines = pdf.split('\n');
    for (const rule of json.body.perRule as { id: string; counts: Record<string, number> }[]) {
      const row = lines.find((l) => l.trimStart().startsWith(`${rule.id} `) && /(\d|%|n\/a)\s*$/.test(l));
      expect(row, `${rule.id} in:\n${pdf}`).toBeDefined();
      const numbers = row!.trim().split(/\s+/).slice(1, 5).map(Number);
      expect(numbers).toEqual([
        rule.counts.pass,
        rule.counts.fail,
        rule.counts.pending,
        rule.counts['not-applicable'],
      ]);
    }
    for (const failure of json.body.failures as { rolloutId: string }[]) {
      expect(pdf).toContain(failure.rolloutId);
    }
  });
});
