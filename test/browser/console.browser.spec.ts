import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RULE_IDS } from '../../src/compliance/rule.js';
import { type SamplePlatform, startSamplePlatform } from '../fixtures/sample-platform.js';
import { AUTH, settleLedger, settleProjections, startTestApp, type TestApp } from '../support/app.js';
import { type CreatedKey, createKey } from '../support/auth.js';
import {
  axeViolations,
  type Browser,
  type BrowserContext,
  collectProblems,
  launchBrowser,
  type Page,
  SCREENSHOTS,
} from '../support/browser.js';
import { replayScenario } from '../support/replay.js';
import { loadScenarios } from '../support/scenarios.js';
import { waitFor } from '../support/wait.js';

const run = promisify(execFile);
const scenarios = loadScenarios();
const DOWNLOADS = path.resolve('test-output/downloads');

describe('the auditor console in headless Chromium', () => {
  let t: TestApp;
  let platform: SamplePlatform;
  let browser: Browser;
  let base: string;
  let auditor: CreatedKey;
  const ids = new Map<string, string>();

  beforeAll(async () => {
    platform = await startSamplePlatform({ versions: { identity: '3.3.0', 'portal-docs': '2026.4' } });
    // Snapshots only when asked: 03:00 UTC on 29 February never comes during a run.
    t = await startTestApp({
      env: { SNAPSHOT_TARGETS: `production=${platform.url}`, SNAPSHOT_CRON: '0 0 3 29 2 *' },
    });
    await t.app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(t.app.getHttpServer().address() as AddressInfo).port}`;
    auditor = await createKey(t.server, { role: 'auditor', name: 'Ada Auditor' });
    for (const s of scenarios) ids.set(s.scenario, await replayScenario(t, s));
    await settleLedger(t);
    // An out-of-band change after the rollouts: drift for the drift page.
    await request(t.server).post('/api/v1/snapshots').set(AUTH).send({}).expect(200);
    platform.setVersion('identity', '9.9.9');
    await request(t.server).post('/api/v1/snapshots').set(AUTH).send({}).expect(200);
    await waitFor('the drift to be projected', async () => {
      const res = await request(t.server).get('/api/v1/drift?open=true').set(AUTH).expect(200);
      return res.body.items.length > 0;
    });
    // The rollout list and the drift page read projections, which follow the ledger.
    await settleProjections(t);
    browser = await launchBrowser();
    await mkdir(DOWNLOADS, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
    await platform?.close();
  });

  async function signIn(context: BrowserContext): Promise<Page> {
    const page = await context.newPage();
    await page.goto(`${base}/console`);
    expect(new URL(page.url()).pathname).toBe('/console/sign-in');
    await page.getByLabel('API key').fill(auditor.key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/console\/rollouts$/);
    return page;
  }

  /** Screenshot, accessibility check and a look at the page's own complaints, for every page. */
  async function check(page: Page, name: string, problems: string[]) {
    await page.screenshot({ path: path.join(SCREENSHOTS, `console-${name}.png`), fullPage: true });
    expect(await axeViolations(page), name).toEqual([]);
    expect(problems, name).toEqual([]);
  }

  it('walks an auditor through sign-in, filter, a rollout, its PDF, the period and verify-now', async () => {
    const context = await browser.newContext({
      acceptDownloads: true,
      viewport: { width: 1280, height: 900 },
    });
    const problems: string[] = [];
    context.on('page', (p) => problems.push(...collectProblems(p)));
    const signInPage = await context.newPage();
    const signInProblems = collectProblems(signInPage);
    await signInPage.goto(`${base}/console/rollouts`);
    await check(signInPage, 'sign-in', signInProblems);
    await signInPage.close();

    const page = await signIn(context);
    const pageProblems = collectProblems(page);

    // The session cookie: HttpOnly (no script sees it), SameSite=Strict, only for /console.
    const [session] = (await context.cookies()).filter((c) => c.name === 'ul_console');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/console' });
    expect(session?.expires).toBe(-1);
    expect(await page.evaluate('document.cookie')).toBe('');
    await check(page, 'rollouts', pageProblems);
    expect(await page.locator('tbody tr').count()).toBe(scenarios.length);

    // Filter: the rollouts failing one rule.
    await page.getByLabel('Verdict').selectOption('failing');
    await page.getByLabel('Failing rule').selectOption('post-verification');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/verdict=failing/);
    const failing = scenarios.filter((s) => s.verdicts['post-verification'] === 'fail');
    expect(await page.locator('tbody tr').count()).toBe(failing.length);
    await check(page, 'rollouts-filtered', pageProblems);

    // Open one: its timeline, verdicts with evidence links, downloads.
    const target = failing[0]!;
    await page.locator(`a[href="/console/rollouts/${ids.get(target.scenario)}"]`).click();
    await page.waitForURL(new RegExp(`/console/rollouts/${ids.get(target.scenario)}$`));
    const box = await page.getByRole('img', { name: 'Step timeline (UTC)' }).boundingBox();
    expect(box?.width).toBeGreaterThan(500);
    const verdicts = await page
      .locator('section[aria-labelledby="verdicts-h"] tbody tr')
      .evaluateAll((trs) =>
        trs.map((tr) => [tr.querySelector('code')?.textContent, tr.querySelector('.badge')?.textContent]),
      );
    expect(Object.fromEntries(verdicts)).toEqual(target.verdicts);
    await check(page, 'rollout', pageProblems);

    // Follow an evidence link to its event row.
    const evidence = page.locator('section[aria-labelledby="verdicts-h"] a[href^="#event-"]').first();
    const anchor = (await evidence.getAttribute('href'))!;
    await evidence.click();
    expect(page.url()).toContain(anchor);
    await expect(page.locator(`tr${anchor}`).isVisible()).resolves.toBe(true);

    // Download the PDF and read it with pdftotext.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download PDF' }).click(),
    ]);
    const file = path.join(DOWNLOADS, download.suggestedFilename());
    await download.saveAs(file);
    expect(download.suggestedFilename()).toMatch(/^rollout-.*-at-\d+\.pdf$/);
    const { stdout } = await run('pdftotext', ['-layout', file, '-']);
    for (const rule of RULE_IDS) {
      const row = stdout
        .split('\n')
        .find((l) => l.trimStart().startsWith(rule) && /PASS|FAIL|PENDING|NOT-APPLICABLE/.test(l));
      expect(row, rule).toContain(target.verdicts[rule]!.toUpperCase());
    }

    // The period, with its chart.
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Compliance' }).click();
    await page.waitForURL(/\/console\/compliance$/);
    expect(
      (await page.getByRole('img', { name: 'Compliance over time (per day, UTC)' }).boundingBox())?.width,
    ).toBeGreaterThan(500);
    await check(page, 'compliance', pageProblems);

    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Drift' }).click();
    await page.waitForURL(/\/console\/drift$/);
    await expect(page.locator('section[aria-labelledby="open-h"] tbody').textContent()).resolves.toContain(
      'version:identity',
    );
    expect(
      (await page.getByRole('img', { name: 'Drift of production per day (UTC)' }).boundingBox())?.width,
    ).toBeGreaterThan(500);
    await check(page, 'drift', pageProblems);

    // Integrity: verify now.
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Integrity' }).click();
    await page.waitForURL(/\/console\/integrity$/);
    await page.getByRole('button', { name: 'Verify now' }).click();
    await expect(page.locator('#verify-result').textContent()).resolves.toContain('The ledger verifies');
    await check(page, 'integrity', pageProblems);

    // Sign out: the console is closed again.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/console\/sign-in$/);
    await page.goto(`${base}/console/integrity`);
    expect(new URL(page.url()).pathname).toBe('/console/sign-in');
    expect(problems).toEqual([]);
    await context.close();
  });

  it('works with JavaScript switched off', async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await signIn(context);
    await page.getByLabel('Verdict').selectOption('compliant');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/verdict=compliant/);
    const compliant = scenarios.filter(
      (s) => !Object.values(s.verdicts).some((v) => v === 'fail' || v === 'pending'),
    );
    expect(await page.locator('tbody tr').count()).toBe(compliant.length);
    await page.locator('tbody a').first().click();
    await page.waitForURL(/\/console\/rollouts\/[0-9a-f-]{36}$/);
    await page.goto(`${base}/console/integrity`);
    await page.getByRole('button', { name: 'Verify now' }).click();
    await expect(page.locator('#verify-result').textContent()).resolves.toContain('The ledger verifies');
    await context.close();
  });
});
