import type { Principal } from '../auth/principal.js';
import { RULE_IDS } from '../compliance/rule.js';
import type { Json } from '../database/schema.js';
import type { Checkpoint, VerifyResult } from '../ledger/ledger.types.js';
import type { PeriodReport } from '../reporting/period-report.js';
import { driftTimeline } from '../reporting/render/charts.js';
import { html, reportAsset, type SafeHtml } from '../reporting/render/html.js';
import { badge, none, periodSections, rolloutSections, table } from '../reporting/render/report-html.js';
import { toSvg } from '../reporting/render/svg.js';
import { REPORT_FORMATS } from '../reporting/reports.service.js';
import type { RolloutReport } from '../reporting/rollout-report.js';
import { STATUSES } from '../rollouts/rollouts.dto.js';
import type { RolloutSummary } from '../rollouts/rollouts.repository.js';
import type { DriftDay, DriftRecord } from '../snapshots/drift.repository.js';
import type { SnapshotSummary } from '../snapshots/snapshots.repository.js';

export type Section = 'rollouts' | 'compliance' | 'drift' | 'integrity';

const NAV: [Section, string][] = [
  ['rollouts', 'Rollouts'],
  ['compliance', 'Compliance'],
  ['drift', 'Drift'],
  ['integrity', 'Integrity'],
];

const SYMBOL: Record<string, string> = { pass: '✓', fail: '✗', pending: '…', 'not-applicable': '–' };

/** A whole console page: the shared styles, the navigation (when signed in), the content. */
export function layout(
  title: string,
  content: SafeHtml,
  shell?: { principal: Principal; section: Section },
): string {
  const nav = shell
    ? html`<header class="bar"><span class="brand">upgrade-ledger</span>
<nav aria-label="Console">${NAV.map(
        ([id, label]) =>
          html`<a href="/console/${id}"${id === shell.section ? html` aria-current="page"` : ''}>${label}</a>`,
      )}</nav>
<form method="post" action="/console/sign-out"><span>${shell.principal.name} (${shell.principal.role})</span><button type="submit">Sign out</button></form>
</header>`
    : html`<header class="bar"><span class="brand">upgrade-ledger</span></header>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${html`${title}`.value} · upgrade-ledger console</title>
<style>${reportAsset('report.css')}${reportAsset('console.css')}</style>
</head>
<body>
<a class="skip" href="#main">Skip to the content</a>
${nav.value}
<main id="main">
${content.value}
</main>
</body>
</html>`;
}

export function signInPage(next: string, error?: string): string {
  return layout(
    'Sign in',
    html`<h1>Sign in</h1>
<p>Sign in with your API key. It is kept in a cookie that scripts cannot read and other sites cannot send, and only for this browser session.</p>
${error ? html`<p class="notice bad" role="alert">${error}</p>` : ''}
<form class="stack" method="post" action="/console/sign-in">
<input type="hidden" name="next" value="${next}">
<label for="key">API key<input id="key" name="key" type="password" autocomplete="current-password" required></label>
<button class="primary" type="submit">Sign in</button>
</form>`,
  );
}

export function errorPage(status: number, title: string, detail: string, principal?: Principal): string {
  return layout(
    title,
    html`<h1>${title}</h1><p class="notice bad">${detail}</p><p>HTTP ${status}. <a href="/console/rollouts">Back to the rollouts</a></p>`,
    principal ? { principal, section: 'rollouts' } : undefined,
  );
}

/** A rule's verdict as a small chip: its number, a symbol and a colour; the name for screen readers. */
function chip(index: number, verdict: string): SafeHtml {
  const rule = RULE_IDS[index] ?? '';
  return html`<span class="chip ${verdict}" title="${rule}: ${verdict}"><span class="sr-only">${rule}: ${verdict}</span><span aria-hidden="true">${index + 1}${SYMBOL[verdict] ?? ''}</span></span>`;
}

export interface RolloutsFilter {
  from?: string;
  to?: string;
  product?: string;
  environment?: string;
  status?: string;
  verdict?: string;
  rule?: string;
}

export const VERDICT_FILTERS = {
  failing: 'failing one or more rules',
  pending: 'nothing failing, something pending',
  compliant: 'every rule passed or not applicable',
} as const;

function select(
  name: string,
  label: string,
  value: string | undefined,
  options: [string, string][],
): SafeHtml {
  return html`<label for="f-${name}">${label}<select id="f-${name}" name="${name}"><option value="">any</option>${options.map(
    ([v, text]) => html`<option value="${v}"${v === value ? html` selected` : ''}>${text}</option>`,
  )}</select></label>`;
}

const query = (params: Record<string, string | undefined>) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
};

export function rolloutsPage(
  principal: Principal,
  filter: RolloutsFilter,
  rows: { summary: RolloutSummary; verdicts: string[] }[],
  next: string | undefined,
  scannedOut: boolean,
): string {
  const list = rows.length
    ? table(
        ['Rollout', 'Environment', 'Products', 'Status', 'Created', 'Verdicts by rule'],
        rows.map(({ summary: r, verdicts }) => [
          html`<a href="/console/rollouts/${r.id}">${r.title ?? r.id}</a>`,
          r.environment ?? '—',
          r.products.join(', '),
          r.status,
          r.createdAt.slice(0, 16).replace('T', ' '),
          html`<span class="chips">${verdicts.map((v, i) => chip(i, v))}</span>`,
        ]),
      )
    : none('No rollout matches these filters.');
  return layout(
    'Rollouts',
    html`<h1>Rollouts</h1>
<form class="filters" method="get" action="/console/rollouts" aria-label="Filter the rollouts">
<label for="f-from">Created from<input id="f-from" type="date" name="from" value="${filter.from ?? ''}"></label>
<label for="f-to">to (inclusive)<input id="f-to" type="date" name="to" value="${filter.to ?? ''}"></label>
<label for="f-product">Product<input id="f-product" name="product" value="${filter.product ?? ''}" size="12"></label>
<label for="f-environment">Environment<input id="f-environment" name="environment" value="${filter.environment ?? ''}" size="12"></label>
${select(
  'status',
  'Status',
  filter.status,
  STATUSES.map((s) => [s, s]),
)}
${select('verdict', 'Verdict', filter.verdict, Object.entries(VERDICT_FILTERS))}
${select(
  'rule',
  'Failing rule',
  filter.rule,
  RULE_IDS.map((id, i) => [id, `${i + 1}. ${id}`]),
)}
<button class="primary" type="submit">Filter</button> <a class="button" href="/console/rollouts">Clear</a>
</form>
${list}
${scannedOut ? html`<p class="notice">Many rollouts were read to find these; more may match further on.</p>` : ''}
<nav class="pager" aria-label="Pages">${
      next
        ? html`<a class="button" href="/console/rollouts${query({ ...filter, cursor: next })}">Next page</a>`
        : ''
    }<a class="button" href="/console/rollouts${query({ ...filter })}">First page</a></nav>
<details><summary>Rule numbers</summary><ol class="legend">${RULE_IDS.map((id) => html`<li><code>${id}</code></li>`)}</ol></details>`,
    { principal, section: 'rollouts' },
  );
}

function planPart(value: Json): SafeHtml {
  if (value === null) return html`\u2014`;
  if (typeof value === 'object') return html`<pre class="code">${JSON.stringify(value, null, 2)}</pre>`;
  return html`${String(value)}`;
}

export function rolloutPage(principal: Principal, report: RolloutReport, plan: Record<string, Json>): string {
  const id = report.rollout.id;
  const s = rolloutSections(report);
  const downloads = REPORT_FORMATS.map(
    (f) =>
      html`<a class="button" href="/console/rollouts/${id}/report/${f}?asOf=${report.basis.position}" download>Download ${f.toUpperCase()}</a>`,
  );
  return layout(
    `Rollout ${report.rollout.title ?? id}`,
    html`${s.header}
<div class="downloads" aria-label="Download this report">${downloads}</div>
<section aria-labelledby="verdicts-h"><h2 id="verdicts-h">Verdicts by rule</h2>${s.verdicts}</section>
<section aria-labelledby="plan-h"><h2 id="plan-h">The plan (revision ${report.rollout.planRevision})</h2>
<dl class="facts">${Object.entries(plan).map(([k, v]) => html`<dt>${k}</dt><dd>${planPart(v)}</dd>`)}</dl></section>
<section aria-labelledby="timeline-h"><h2 id="timeline-h">Step timeline</h2>${s.timeline}</section>
<section aria-labelledby="readbacks-h"><h2 id="readbacks-h">Readbacks, before and after</h2>${s.readbacks}</section>
<section aria-labelledby="paths-h"><h2 id="paths-h">Path verifications</h2>${s.paths}</section>
<section aria-labelledby="rollbacks-h"><h2 id="rollbacks-h">Rollbacks</h2>${s.rollbacks}</section>
<section aria-labelledby="drift-h"><h2 id="drift-h">Drift of shared truth during the rollout</h2>${s.drift}</section>
<section aria-labelledby="facts-h"><h2 id="facts-h">Facts from delivery tools</h2>${s.facts}</section>
<section aria-labelledby="actors-h"><h2 id="actors-h">Actors</h2>${s.actors}</section>
<section aria-labelledby="events-h"><h2 id="events-h">Events</h2>${s.events}</section>
<section aria-labelledby="basis-h"><h2 id="basis-h">What this page was built from</h2>${s.basis}</section>`,
    { principal, section: 'rollouts' },
  );
}

export interface PeriodFilterForm {
  from?: string;
  to?: string;
  product?: string;
  environment?: string;
}

export function compliancePage(principal: Principal, form: PeriodFilterForm, report: PeriodReport): string {
  const s = periodSections(report);
  const q = query({ ...form, asOf: String(report.basis.position) });
  return layout(
    'Compliance',
    html`<h1>Compliance</h1>
<form class="filters" method="get" action="/console/compliance" aria-label="Choose the period">
<label for="p-from">Planned from<input id="p-from" type="date" name="from" value="${form.from ?? ''}"></label>
<label for="p-to">to (inclusive)<input id="p-to" type="date" name="to" value="${form.to ?? ''}"></label>
<label for="p-product">Product<input id="p-product" name="product" value="${form.product ?? ''}" size="12"></label>
<label for="p-environment">Environment<input id="p-environment" name="environment" value="${form.environment ?? ''}" size="12"></label>
<button class="primary" type="submit">Show</button>
</form>
${s.header}
<div class="downloads" aria-label="Download this report">${REPORT_FORMATS.map(
      (f) =>
        html`<a class="button" href="/console/compliance/report/${f}${q}" download>Download ${f.toUpperCase()}</a>`,
    )}</div>
<section aria-labelledby="over-time-h"><h2 id="over-time-h">Compliance over time</h2>${s.overTime}</section>
<section aria-labelledby="rules-h"><h2 id="rules-h">Compliance by rule</h2>${s.perRule}</section>
<section aria-labelledby="products-h"><h2 id="products-h">Compliance by product</h2>${s.perProduct}</section>
<section aria-labelledby="failures-h"><h2 id="failures-h">Failures</h2>${s.failures}</section>
<section aria-labelledby="rollbacks-h"><h2 id="rollbacks-h">Rollbacks and time to recover</h2>${s.rollbacks}</section>
<section aria-labelledby="basis-h"><h2 id="basis-h">What this page was built from</h2>${s.basis}</section>`,
    { principal, section: 'compliance' },
  );
}

export interface IntegrityView {
  head: { position: number; hash: string };
  checkpoint: Checkpoint | undefined;
  publicKey: { keyId: string; publicKeyPem: string };
  result?: VerifyResult;
}

export function integrityPage(principal: Principal, view: IntegrityView): string {
  const { head, checkpoint, publicKey, result } = view;
  const verdict = !result
    ? ''
    : result.ok
      ? html`<p class="notice ok" role="status" id="verify-result">${badge('pass')} The ledger verifies: every entry from 1 to ${result.verifiedThrough} chains to the next, and ${result.checkpointsVerified} signed checkpoints match.</p>`
      : html`<p class="notice bad" role="alert" id="verify-result">${badge('fail')} The ledger does not verify: broken at position ${result.brokenAt}: ${result.reason}. Verified through ${result.verifiedThrough}.</p>`;
  return layout(
    'Integrity',
    html`<h1>Integrity</h1>
<section aria-labelledby="head-h"><h2 id="head-h">Ledger head</h2>
<dl class="facts"><dt>Position</dt><dd>${head.position}</dd><dt>Chain head</dt><dd><code>${head.hash}</code></dd></dl></section>
<section aria-labelledby="checkpoint-h"><h2 id="checkpoint-h">Latest signed checkpoint</h2>
${
  checkpoint
    ? html`<dl class="facts"><dt>Position</dt><dd>${checkpoint.position}</dd><dt>Head hash</dt><dd><code>${checkpoint.headHash}</code></dd>
<dt>Signed at</dt><dd>${checkpoint.createdAt}</dd><dt>Key</dt><dd><code>${checkpoint.keyId}</code></dd><dt>Signature (Ed25519)</dt><dd><code>${checkpoint.signature}</code></dd></dl>`
    : none('No checkpoint has been signed yet.')
}
<h3>Public key <code>${publicKey.keyId}</code></h3><pre class="code">${publicKey.publicKeyPem}</pre></section>
<section aria-labelledby="verify-h"><h2 id="verify-h">Verify now</h2>
<p>Recomputes every hash of the chain from the first entry to the head and checks every checkpoint's signature.</p>
<form method="post" action="/console/integrity/verify"><button class="primary" type="submit">Verify now</button></form>
${verdict}</section>
<section aria-labelledby="offline-h"><h2 id="offline-h">Verify offline, without trusting this server</h2>
<ol><li>Save the public key above as <code>ledger.pub</code> (or fetch <code>GET /api/v1/ledger/public-keys</code> and compare).</li>
<li>Export the ledger: <code>curl -H "Authorization: Bearer $KEY" "${'<server>'}/api/v1/exports/ledger?format=ndjson" -o ledger.ndjson</code></li>
<li>Verify it with the CLI from the upgrade-ledger package: <code>npx upgrade-ledger verify ledger.ndjson --public-key ledger.pub</code></li>
<li>Compare the chain head it prints with the one a report states at its ledger position.</li></ol></section>`,
    { principal, section: 'integrity' },
  );
}

export interface DriftView {
  targets: { target: string; latestAt: string; latestStatus: string; days: DriftDay[] }[];
  open: DriftRecord[];
  snapshots: SnapshotSummary[];
}

const attribution = (a: Json): SafeHtml => {
  const x = a as { kind?: string; rolloutId?: string; stepId?: string | null; title?: string | null } | null;
  if (x?.kind === 'rollout' && x.rolloutId) {
    return html`<a href="/console/rollouts/${x.rolloutId}">${x.title ?? x.rolloutId}</a>${x.stepId ? html`, step <code>${x.stepId}</code>` : ''}`;
  }
  return html`out of band`;
};

/** Drift as a table: what was expected, what was seen, since when, and whose window it fell in. */
function driftTable(records: readonly DriftRecord[]): SafeHtml {
  return table(
    ['Target', 'What', 'Expected', 'Observed', 'Detected', 'Resolved', 'Attributed to'],
    records.map((d) => [
      d.target,
      html`<code>${d.key}</code>`,
      d.expected ?? 'absent',
      d.observed ?? 'absent',
      html`${d.detectedAt.slice(0, 19).replace('T', ' ')} <small>(#${d.detectedPosition})</small>`,
      d.resolvedAt ? `${d.resolvedAt.slice(0, 19).replace('T', ' ')} (${d.resolution ?? ''})` : 'open',
      attribution(d.attribution),
    ]),
  );
}

export function driftPage(principal: Principal, view: DriftView): string {
  return layout(
    'Drift',
    html`<h1>Drift</h1>
<p>Shared truth as the scheduled snapshots saw it, against what the ledger says was last verified.</p>
<section aria-labelledby="open-h"><h2 id="open-h">Open drift</h2>${view.open.length ? driftTable(view.open) : none('No drift is open.')}</section>
<section aria-labelledby="timeline-h"><h2 id="timeline-h">Timeline per target (last 30 days)</h2>
${
  view.targets.length
    ? view.targets.map(
        (t, i) => html`<figure>${toSvg(driftTimeline(t.target, t.days), `drift-${i}`)}
<figcaption>${t.target}: latest snapshot ${t.latestAt.slice(0, 19).replace('T', ' ')} (${t.latestStatus}). Red: drift detected; green: resolved; line: open at the end of the day.</figcaption></figure>`,
      )
    : none('No snapshot has been taken yet: set SNAPSHOT_TARGETS to snapshot a platform.')
}</section>
<section aria-labelledby="snapshots-h"><h2 id="snapshots-h">Latest snapshots</h2>
${
  view.snapshots.length
    ? table(
        ['Target', 'Tick', 'Status', 'Reason', 'Position'],
        view.snapshots.map((s) => [
          s.target,
          s.tickAt.slice(0, 19).replace('T', ' '),
          badge(s.status === 'taken' ? 'pass' : 'fail'),
          s.reason ?? '—',
          s.position,
        ]),
        [4],
      )
    : none('No snapshot yet.')
}</section>`,
    { principal, section: 'drift' },
  );
}
