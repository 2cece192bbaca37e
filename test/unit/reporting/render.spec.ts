import { describe, expect, it } from 'vitest';
import { evaluateRollout } from '../../../src/compliance/rulebook.js';
import { canonicalJson, canonicalJsonChunks } from '../../../src/ledger/hashing.js';
import { buildPeriodReport } from '../../../src/reporting/period-report.js';
import { complianceOverTime, ruleRates, stepTimeline } from '../../../src/reporting/render/charts.js';
import type { Drawing, Shape } from '../../../src/reporting/render/drawing.js';
import { escapeHtml, fillTemplate, html, raw } from '../../../src/reporting/render/html.js';
import {
  periodReportHtml,
  rolloutReportHtml,
  TABLE_ROW_LIMIT,
} from '../../../src/reporting/render/report-html.js';
import { toSvg } from '../../../src/reporting/render/svg.js';
import { negotiate } from '../../../src/reporting/reports.controller.js';
import { buildRolloutReport, type ReportBasis } from '../../../src/reporting/rollout-report.js';
import { compliantRollout, positioned, ROLLOUT_ID } from '../../support/rollout-events.js';

const basis: ReportBasis = {
  position: 42,
  chainHead: 'ab'.repeat(32),
  rulebookVersion: 'test',
  serviceVersion: '0',
};
const reportOf = (events = positioned(compliantRollout)) =>
  buildRolloutReport(ROLLOUT_ID, events, evaluateRollout(events), basis);
const texts = (d: Drawing) =>
  d.shapes.filter((s): s is Extract<Shape, { kind: 'text' }> => s.kind === 'text');
const rects = (d: Drawing) =>
  d.shapes.filter((s): s is Extract<Shape, { kind: 'rect' }> => s.kind === 'rect');

describe('html: escaping by default', () => {
  it('escapes every interpolated string, and only those', () => {
    const value = `<img src=x onerror="alert('x')">&`;
    expect(html`<td title="${value}">${value}</td>`.value).toBe(
      '<td title="&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt;&amp;">&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt;&amp;</td>',
    );
    expect(html`<p>${raw('<b>ok</b>')}</p>`.value).toBe('<p><b>ok</b></p>');
    expect(html`${['<a>', html`<b>`, 1, null, undefined, false]}`.value).toBe('&lt;a&gt;<b>1');
    expect(escapeHtml('plain')).toBe('plain');
  });

  it('refuses a template slot nothing fills, and a value no slot takes', () => {
    const full = {
      title: html`t`,
      style: html``,
      header: html``,
      basis: html``,
      overTime: html``,
      perRule: html``,
    };
    expect(() => fillTemplate('compliance.html', full)).toThrow(/\{\{perProduct\}\}/);
    const every = Object.fromEntries(
      [
        'title',
        'style',
        'header',
        'basis',
        'overTime',
        'perRule',
        'perProduct',
        'failures',
        'rollbacks',
        'rollouts',
        'footer',
      ].map((k) => [k, html`[${k}]`]),
    );
    expect(fillTemplate('compliance.html', every)).toContain('[failures]');
    expect(() => fillTemplate('compliance.html', { ...every, extra: html`` })).toThrow(/no slot for extra/);
  });
});

describe('negotiate: the report format', () => {
  it.each([
    [undefined, undefined, 'json'],
    ['pdf', 'text/csv', 'pdf'],
    [undefined, 'application/pdf', 'pdf'],
    [undefined, 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', 'html'],
    [undefined, 'application/pdf;q=0.5, text/csv', 'csv'],
    [undefined, 'text/csv;q=0, application/json', 'json'],
    [undefined, '*/*', 'json'],
    [undefined, 'text/*', 'html'],
    [undefined, '  ', 'json'],
  ] as const)('format=%s, Accept %s → %s', (format, accept, expected) => {
    expect(negotiate(format, accept)).toBe(expected);
  });

  it('refuses an Accept that names only types it cannot make', () => {
    expect(() => negotiate(undefined, 'image/png, application/xml')).toThrow(/application\/pdf/);
    expect(() => negotiate(undefined, 'application/pdf;q=0')).toThrow();
  });
});

describe('charts', () => {
  it('the step timeline draws one bar per started step, in plan order, inside its box', () => {
    const report = reportOf();
    const d = stepTimeline(report);
    const labels = texts(d)
      .filter((t) => t.x === 0)
      .map((t) => t.text);
    expect(labels).toEqual(report.timeline.map((s) => `${s.order}. ${s.stepId}`));
    const bars = rects(d).filter((r) => r.h === 13);
    expect(bars).toHaveLength(report.timeline.filter((s) => s.startedAt).length);
    for (const b of bars) {
      expect(b.x).toBeGreaterThanOrEqual(0);
      expect(b.x + b.w).toBeLessThanOrEqual(d.width);
    }
    // Later steps start no earlier than earlier ones in a compliant rollout.
    const xs = bars.map((b) => b.x);
    expect([...xs].sort((a, b) => a - b)).toEqual(xs);
    expect(d.description).toMatch(/^\d+ steps: /);
  });

  it('marks steps that never started, and says so when nothing started', () => {
    const events = positioned(compliantRollout.slice(0, 1));
    const d = stepTimeline(reportOf(events));
    expect(texts(d).some((t) => t.text === 'No step has started yet.')).toBe(true);
    expect(texts(d).filter((t) => t.text === 'not started')).toHaveLength(reportOf(events).timeline.length);
  });

  it('compliance over time stacks compliant and failing rollouts per day, and draws the rate', () => {
    const d = complianceOverTime([
      { date: '2026-11-01', rollouts: 4, compliant: 3 },
      { date: '2026-11-02', rollouts: 2, compliant: 2 },
    ]);
    const green = rects(d).filter((r) => r.fill === '#1a7f37');
    const red = rects(d).filter((r) => r.fill === '#cf222e');
    expect(green).toHaveLength(2);
    expect(red).toHaveLength(1);
    // 3 of the tallest day's 4 are green: the green bar is three times the red one.
    expect(green[0]!.h / red[0]!.h).toBeCloseTo(3);
    expect(d.shapes.filter((s) => s.kind === 'polyline')).toHaveLength(1);
    expect(d.description).toContain('2026-11-01: 3 of 4');
    expect(texts(complianceOverTime([])).some((t) => t.text === 'No rollouts in this period.')).toBe(true);
  });

  it('a period report never holds a recovery time that has no JSON form', () => {
    // Its JSON is streamed after the headers: a NaN would cut the body short instead of a 500.
    const odd = reportOf();
    odd.rollbacks = [
      { reason: 'odd', toStepId: null, startedAt: 'not a time', completedAt: '2026-11-01T00:00:00.000Z' },
      {
        reason: 'ok',
        toStepId: null,
        startedAt: '2026-11-01T00:00:00.000Z',
        completedAt: '2026-11-01T00:00:30.000Z',
      },
    ];
    const report = buildPeriodReport(
      [odd],
      { from: null, to: null, product: null, environment: null },
      basis,
    );
    expect(report.rollbacks.items.map((i) => i.seconds)).toEqual([null, 30]);
    expect(report.rollbacks.meanTimeToRecoverSeconds).toBe(30);
    expect([...canonicalJsonChunks(report, 64)].join('')).toBe(canonicalJson(report));
  });

  it('rule rates label each rule with its rate, or "not judged"', () => {
    const report = buildPeriodReport(
      [reportOf()],
      { from: null, to: null, product: null, environment: null },
      basis,
    );
    const d = ruleRates(report.perRule);
    const labels = texts(d)
      .filter((t) => t.anchor === 'end')
      .map((t) => t.text);
    expect(labels).toHaveLength(report.perRule.length);
    expect(labels).toContain('100.0% (1/1)');
    expect(labels).toContain('not judged');
  });

  it('SVG names and describes the picture, and escapes its texts', () => {
    const svg = toSvg(
      {
        width: 10,
        height: 10,
        title: 'T <1>',
        description: 'D & d',
        shapes: [{ kind: 'text', x: 1, y: 2, text: '<b>', size: 9, fill: '#000', anchor: 'start' }],
      },
      'x',
    ).value;
    expect(svg).toContain('role="img"');
    expect(svg).toContain('<title id="x-title">T &lt;1&gt;</title>');
    expect(svg).toContain('<desc id="x-desc">D &amp; d</desc>');
    expect(svg).toContain('>&lt;b&gt;</text>');
  });
});

describe('HTML pages', () => {
  it('a rollout page lists the rules with their verdicts and carries no script', () => {
    const page = rolloutReportHtml(reportOf());
    expect(page.startsWith('<!doctype html>')).toBe(true);
    expect(page).toContain(`<code>${basis.chainHead}</code>`);
    expect(page.match(/<span class="badge pass">pass<\/span>/g)?.length).toBeGreaterThan(5);
    expect(page).not.toMatch(/<script/i);
    expect(page).not.toMatch(/\{\{\w+\}\}/);
  });

  it('a long period lists the first rows and says how many more the CSV and JSON hold', () => {
    const one = reportOf(positioned(compliantRollout.slice(0, 1)));
    const many = Array.from({ length: TABLE_ROW_LIMIT + 5 }, (_, i) => ({
      ...one,
      rollout: { ...one.rollout, id: `r-${i}` },
    }));
    const page = periodReportHtml(
      buildPeriodReport(many, { from: null, to: null, product: null, environment: null }, basis),
    );
    expect(page).toContain('… and 5 more rows: the CSV and JSON formats list every one.');
    expect(page).toContain('<code>r-0</code>');
    expect(page).not.toContain(`<code>r-${TABLE_ROW_LIMIT}</code>`);
  });
});
