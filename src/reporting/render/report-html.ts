import { RULES } from '../../compliance/rulebook.js';
import type { Json } from '../../database/schema.js';
import type { PeriodReport } from '../period-report.js';
import type { ReportBasis, RolloutReport } from '../rollout-report.js';
import { complianceOverTime, ruleRates, stepTimeline } from './charts.js';
import { fillTemplate, type HtmlValue, html, raw, reportAsset, type SafeHtml } from './html.js';
import { toSvg } from './svg.js';

/**
 * Rows listed per table in HTML and PDF. A period can hold 100,000 rollouts; past this many the
 * table says how many more there are, and the JSON and CSV formats list every one.
 */
export const TABLE_ROW_LIMIT = 2000;

const RULE_TITLES = new Map<string, string>(RULES.map((r) => [r.id, r.title]));

export const ruleTitle = (id: string): string => RULE_TITLES.get(id) ?? id;

export const badge = (verdict: string) => html`<span class="badge ${verdict}">${verdict}</span>`;
export const none = (what: string) => html`<p class="none">${what}</p>`;
export const percent = (rate: number | null) => (rate === null ? 'n/a' : `${(rate * 100).toFixed(1)}%`);
const json = (value: Json) => JSON.stringify(value, null, 2);

/**
 * A table with a header row; rows past TABLE_ROW_LIMIT are counted, not listed. `rowIds` gives
 * rows an id, so that other parts of the page can link to them.
 */
export function table(
  headers: readonly string[],
  rows: readonly HtmlValue[][],
  numeric: readonly number[] = [],
  rowIds: readonly (string | null)[] = [],
): SafeHtml {
  const shown = rows.slice(0, TABLE_ROW_LIMIT);
  const cls = (i: number) => (numeric.includes(i) ? 'num' : null);
  const id = (i: number) => (rowIds[i] ? html` id="${rowIds[i]}"` : '');
  return html`<table>
<thead><tr>${headers.map((h, i) => html`<th scope="col"${cls(i) ? html` class="num"` : ''}>${h}</th>`)}</tr></thead>
<tbody>${shown.map((r, n) => html`<tr${id(n)}>${r.map((c, i) => html`<td${cls(i) ? html` class="num"` : ''}>${c}</td>`)}</tr>\n`)}</tbody>
</table>${rows.length > shown.length ? html`<p class="none">\u2026 and ${rows.length - shown.length} more rows: the CSV and JSON formats list every one.</p>` : ''}`;
}

export function basisBlock(basis: ReportBasis): SafeHtml {
  return html`<div class="basis"><dl class="facts">
<dt>Ledger position</dt><dd>${basis.position}</dd>
<dt>Chain head at that position</dt><dd><code>${basis.chainHead}</code></dd>
<dt>Rulebook</dt><dd>${basis.rulebookVersion}</dd>
<dt>Service</dt><dd>upgrade-ledger ${basis.serviceVersion}</dd>
</dl>
<p>To trust this report without trusting the operator: export the ledger up to position ${basis.position}
(<code>GET /api/v1/exports/ledger?to=${basis.position}</code>), run
<code>npx upgrade-ledger verify export.ndjson --public-key ledger.pub</code>, and check that the chain head it
prints at position ${basis.position} is the one above. The same <code>asOf=${basis.position}</code> always
rebuilds this report exactly.</p></div>`;
}

const footer = (basis: ReportBasis) =>
  html`<p>Built from ledger position ${basis.position}, chain head <code>${basis.chainHead}</code>, rulebook
${basis.rulebookVersion}, by upgrade-ledger ${basis.serviceVersion}. The generation time is in the
<code>X-Generated-At</code> response header, not in the report, so the same position gives the same report.</p>`;

function page(template: string, title: string, slots: Record<string, SafeHtml>): string {
  return fillTemplate(template, {
    title: html`${title}`,
    style: html`<style>${raw(reportAsset('report.css'))}</style>`,
    ...slots,
  });
}

function readbackCell(cells: RolloutReport['readbacks'][number]['pre']): SafeHtml {
  if (cells.length === 0) return none('none recorded');
  return html`${cells.map(
    (
      c,
    ) => html`<div class="readback">${badge(c.verdict)} at position ${c.position ?? 'not yet sequenced'}${c.stepId ? html`, step <code>${c.stepId}</code>` : ''}
<pre><b>expected</b> ${json(c.expected)}
<b>observed</b> ${json(c.observed)}</pre></div>`,
  )}`;
}

/** The event's anchor on a rollout page: evidence links to it. */
export const eventAnchor = (position: number) => `event-${position}`;

/** Ledger positions as links to their rows in the page's events table. */
const evidenceLinks = (positions: readonly number[]) =>
  positions.length
    ? html`${positions.map((p, i) => html`${i ? ', ' : ''}<a href="#${eventAnchor(p)}">${p}</a>`)}`
    : '—';

/** The parts of a rollout report page, each a section's content (see reports/rollout.html). */
export function rolloutSections(report: RolloutReport): Record<string, SafeHtml> {
  const r = report.rollout;
  const s = report.summary;
  const name = r.title ?? r.id;
  return {
    header: html`<h1>Rollout report: ${name}</h1>
<p class="subtitle">Rollout <code>${r.id}</code> \u00b7 ${r.environment ?? 'no environment'} \u00b7 ${r.status} \u00b7 plan revision ${r.planRevision}</p>
<div class="summary" aria-label="Verdict counts">
<div><strong>${s.pass}</strong>${badge('pass')}</div>
<div><strong>${s.fail}</strong>${badge('fail')}</div>
<div><strong>${s.pending}</strong>${badge('pending')}</div>
<div><strong>${s.notApplicable}</strong>${badge('not-applicable')}</div>
</div>
${table(
  ['Product', 'From', 'To'],
  r.products.map((p) => [p.product, p.fromVersion ?? '—', p.toVersion]),
)}
<dl class="facts">
<dt>Scope</dt><dd>${r.scope ?? '—'}</dd>
<dt>Created</dt><dd>${r.createdAt ?? '—'}</dd>
<dt>Started</dt><dd>${r.startedAt ?? '—'}</dd>
<dt>Completed</dt><dd>${r.completedAt ?? '—'}</dd>
${r.abortedAt ? html`<dt>Aborted</dt><dd>${r.abortedAt}: ${r.abortReason ?? ''}</dd>` : ''}
<dt>Missing from the plan</dt><dd>${r.missingPlanParts.length ? r.missingPlanParts.join(', ') : 'nothing'}</dd>
</dl>`,
    basis: basisBlock(report.basis),
    verdicts: table(
      ['Rule', 'Verdict', 'Evidence (ledger positions)', 'Finding'],
      report.rules.map((rule) => [
        html`<code>${rule.id}</code><br>${ruleTitle(rule.id)}`,
        badge(rule.verdict),
        evidenceLinks(rule.evidence),
        rule.finding,
      ]),
    ),
    timeline: html`<figure>${toSvg(stepTimeline(report), 'timeline')}
<figcaption>Bars run from each step's start to its end; green completed, red failed, amber rolled back, blue still running. Shaded bands are rollbacks.</figcaption></figure>`,
    readbacks: report.readbacks.length
      ? html`${report.readbacks.map(
          (row) => html`<h3>${row.surface}</h3>
<div class="side-by-side"><div><h4>Before (pre)</h4>${readbackCell(row.pre)}</div><div><h4>After (post)</h4>${readbackCell(row.post)}</div></div>
${row.during.length ? html`<h4>During</h4>${readbackCell(row.during)}` : ''}`,
        )}`
      : none('No readback was recorded.'),
    paths: report.pathVerifications.length
      ? table(
          ['Path', 'Verdict', 'Evidence', 'At', 'Position'],
          report.pathVerifications.map((p) => [
            p.path,
            badge(p.verdict),
            p.evidence ?? '—',
            p.at,
            p.position ?? '—',
          ]),
        )
      : none('No path verification was recorded.'),
    rollbacks: report.rollbacks.length
      ? table(
          ['Reason', 'To step', 'Started', 'Completed'],
          report.rollbacks.map((b) => [
            b.reason,
            b.toStepId ?? '—',
            b.startedAt,
            b.completedAt ?? 'not completed',
          ]),
        )
      : none('No rollback.'),
    drift: report.drift.length
      ? table(
          ['Target', 'What', 'Expected', 'Observed', 'Detected', 'Resolved', 'Attributed to'],
          report.drift.map((d) => [
            d.target,
            html`<code>${d.key}</code>`,
            d.expected ?? 'absent',
            d.observed ?? 'absent',
            html`${d.detectedAt} (<a href="#${eventAnchor(d.detectedPosition)}">#${d.detectedPosition}</a>)`,
            d.resolvedAt ? `${d.resolvedAt} (#${d.resolvedPosition}, ${d.resolution})` : 'still open',
            d.attributedTo,
          ]),
        )
      : none('No drift of shared truth was open during the rollout (or no snapshot was taken).'),
    facts: report.externalFacts.length
      ? table(
          ['When', 'What', 'Summary', 'Outcome', 'Source', 'Position'],
          report.externalFacts.map((f) => [
            f.occurredAt,
            html`<code>${f.kind}</code>${f.attachedFrom ? html`<br>attached later${f.note ? `: ${f.note}` : ''}` : ''}`,
            f.url ? html`<a href="${f.url}">${f.summary}</a>` : f.summary,
            f.outcome ?? '—',
            html`<code>${f.source}</code>`,
            f.position ?? 'pending',
          ]),
          [5],
        )
      : none('No delivery tool reported a fact about this rollout.'),
    actors: table(
      ['Name', 'Key', 'Role', 'Events'],
      report.actors.map((a) => [a.name, html`<code>${a.id}</code>`, a.role, a.events]),
      [3],
    ),
    events: table(
      ['Position', 'Version', 'Type', 'Recorded', 'Actor'],
      report.events.map((e) => [
        e.position ?? 'pending',
        e.streamVersion,
        e.type,
        e.recordedAt,
        e.actor ?? '—',
      ]),
      [0, 1],
      report.events.map((e) => (e.position === null ? null : eventAnchor(e.position))),
    ),
    footer: footer(report.basis),
  };
}

/** The rollout report as one self-contained HTML page (inline CSS and SVG, no script). */
export function rolloutReportHtml(report: RolloutReport): string {
  return page(
    'rollout.html',
    `Rollout report: ${report.rollout.title ?? report.rollout.id}`,
    rolloutSections(report),
  );
}

function periodName(filter: PeriodReport['filter']): string {
  const when = `${filter.from ?? 'the beginning'} to ${filter.to ?? 'now'}`;
  const what = [
    filter.product && `product ${filter.product}`,
    filter.environment && `environment ${filter.environment}`,
  ]
    .filter(Boolean)
    .join(', ');
  return what ? `${when} (${what})` : when;
}

/** The parts of a period report page (see reports/compliance.html). */
export function periodSections(report: PeriodReport): Record<string, SafeHtml> {
  const t = report.totals;
  return {
    header: html`<h1>Compliance report</h1>
<p class="subtitle">Rollouts planned from ${periodName(report.filter)}</p>
<div class="summary" aria-label="Totals">
<div><strong>${t.rollouts}</strong>rollouts</div>
<div><strong>${t.compliant}</strong>with no failing rule</div>
<div><strong>${percent(t.complianceRate)}</strong>compliance rate</div>
<div><strong>${t.rollbacks}</strong>rollbacks</div>
</div>`,
    basis: basisBlock(report.basis),
    overTime: html`<figure>${toSvg(complianceOverTime(report.overTime), 'over-time')}
<figcaption>Bars: rollouts planned per day, green with no failing rule, red with one or more. Line: the day's compliance rate (right axis).</figcaption></figure>`,
    perRule: html`<figure>${toSvg(ruleRates(report.perRule), 'per-rule')}<figcaption>Rate = pass / (pass + fail); pending and not-applicable verdicts are not counted.</figcaption></figure>
${table(
  ['Rule', 'Pass', 'Fail', 'Pending', 'Not applicable', 'Rate'],
  report.perRule.map((r) => [
    html`<code>${r.id}</code>`,
    r.counts.pass,
    r.counts.fail,
    r.counts.pending,
    r.counts['not-applicable'],
    percent(r.complianceRate),
  ]),
  [1, 2, 3, 4, 5],
)}`,
    perProduct: report.perProduct.length
      ? table(
          ['Product', 'Rollouts', 'Compliant', 'Rate'],
          report.perProduct.map((p) => [p.product, p.rollouts, p.compliant, percent(p.complianceRate)]),
          [1, 2, 3],
        )
      : none('No product was moved.'),
    failures: report.failures.length
      ? table(
          ['Rollout', 'Rule', 'Finding', 'Evidence'],
          report.failures.map((f) => [
            html`<code>${f.rolloutId}</code>`,
            html`<code>${f.ruleId}</code>`,
            f.finding,
            f.evidence.join(', ') || '—',
          ]),
        )
      : none('No rule failed.'),
    rollbacks: html`<p>${report.rollbacks.count} rollbacks; mean time to recover ${
      report.rollbacks.meanTimeToRecoverSeconds === null
        ? 'n/a'
        : `${report.rollbacks.meanTimeToRecoverSeconds} s`
    }.</p>${
      report.rollbacks.items.length
        ? table(
            ['Rollout', 'Reason', 'Started', 'Completed', 'Seconds'],
            report.rollbacks.items.map((i) => [
              html`<code>${i.rolloutId}</code>`,
              i.reason,
              i.startedAt,
              i.completedAt ?? 'not completed',
              i.seconds ?? '—',
            ]),
            [4],
          )
        : ''
    }`,
    rollouts: report.rollouts.length
      ? table(
          ['Rollout', 'Environment', 'Products', 'Status', 'Failed rules'],
          report.rollouts.map((r) => {
            const failed = Object.entries(r.verdicts).filter(([, v]) => v === 'fail');
            return [
              html`<code>${r.id}</code>${r.title ? html`<br>${r.title}` : ''}`,
              r.environment ?? '—',
              r.products.join(', '),
              r.status,
              failed.length
                ? html`${failed.map(([id]) => html`${badge('fail')} <code>${id}</code><br>`)}`
                : badge('pass'),
            ];
          }),
        )
      : none('No rollout in this period.'),
    footer: footer(report.basis),
  };
}

/** The period compliance report as one self-contained HTML page. */
export function periodReportHtml(report: PeriodReport): string {
  return page('compliance.html', `Compliance report: ${periodName(report.filter)}`, periodSections(report));
}
