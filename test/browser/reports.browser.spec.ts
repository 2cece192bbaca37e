import type { AddressInfo } from 'node:net';
import path from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RULE_IDS } from '../../src/compliance/rule.js';
import { AUTH, settleLedger, startTestApp, type TestApp } from '../support/app.js';
import {
  axeViolations,
  type Browser,
  collectProblems,
  launchBrowser,
  SCREENSHOTS,
} from '../support/browser.js';
import { replayScenario } from '../support/replay.js';
import { loadScenarios } from '../support/scenarios.js';

const scenarios = loadScenarios();

describe('HTML reports in headless Chromium', () => {
  let t: TestApp;
  let browser: Browser;
  let base: string;
  const ids = new Map<string, string>();

  beforeAll(async () => {
    t = await startTestApp();
    await t.app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(t.app.getHttpServer().address() as AddressInfo).port}`;
    for (const name of ['01-compliant', '04-rollback-past-boundary', '08-in-flight']) {
      const s = scenarios.find((x) => x.scenario === name);
      if (!s) throw new Error(`scenario ${name} is missing`);
      ids.set(name, await replayScenario(t, s));
    }
    await settleLedger(t);
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  /** Opens a report as a browser would (Accept: text/html), with the key in a header. */
  async function open(url: string, screenshot: string) {
    const context = await browser.newContext({
      extraHTTPHeaders: AUTH,
      viewport: { width: 1100, height: 900 },
    });
    const page = await context.newPage();
    const problems = collectProblems(page);
    const response = await page.goto(`${base}${url}`, { waitUntil: 'load' });
    await page.screenshot({ path: path.join(SCREENSHOTS, screenshot), fullPage: true });
    return { page, problems, response, close: () => context.close() };
  }

  for (const name of ['01-compliant', '04-rollback-past-boundary', '08-in-flight']) {
    it(`${name}: renders with no console errors, the verdicts and a visible timeline`, async () => {
      const id = ids.get(name)!;
      const expected = scenarios.find((x) => x.scenario === name)!.verdicts;
      const { page, problems, response, close } = await open(
        `/api/v1/reports/rollouts/${id}`,
        `report-${name}.png`,
      );
      try {
        expect(response?.status()).toBe(200);
        expect(response?.headers()['content-type']).toMatch(/^text\/html/);
        const rows = await page
          .locator('section[aria-labelledby="verdicts-h"] tbody tr')
          .evaluateAll((trs) =>
            trs.map((tr) => [tr.querySelector('code')?.textContent, tr.querySelector('.badge')?.textContent]),
          );
        expect(Object.fromEntries(rows)).toEqual(expected);
        expect(rows.map(([rule]) => rule)).toEqual([...RULE_IDS]);
        const timeline = page.getByRole('img', { name: 'Step timeline (UTC)' });
        const box = await timeline.boundingBox();
        expect(box?.width).toBeGreaterThan(500);
        expect(box?.height).toBeGreaterThan(50);
        expect(await timeline.locator('rect').count()).toBeGreaterThan(0);
        expect(await axeViolations(page)).toEqual([]);
        expect(problems).toEqual([]);
      } finally {
        await close();
      }
    });
  }

  it('the period report renders its two charts with no console errors', async () => {
    const json = await request(t.server).get('/api/v1/reports/compliance').set(AUTH).expect(200);
    const { page, problems, close } = await open(
      '/api/v1/reports/compliance?format=html',
      'report-compliance.png',
    );
    try {
      for (const name of ['Compliance over time (per day, UTC)', 'Compliance rate per rule']) {
        const box = await page.getByRole('img', { name }).boundingBox();
        expect(box?.width, name).toBeGreaterThan(500);
      }
      await expect(page.locator('.summary strong').first().textContent()).resolves.toBe(
        String(json.body.totals.rollouts),
      );
      expect(await axeViolations(page)).toEqual([]);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('without a key the browser gets a 401 problem, not the report', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const response = await page.goto(`${base}/api/v1/reports/rollouts/${ids.get('01-compliant')}`);
    expect(response?.status()).toBe(401);
    expect(await page.content()).not.toContain('Verdicts by rule');
    await context.close();
  });
});
