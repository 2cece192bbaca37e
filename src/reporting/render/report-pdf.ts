import type { Json } from '../../database/schema.js';
import type { PeriodReport } from '../period-report.js';
import type { ReportBasis, RolloutReport } from '../rollout-report.js';
import { complianceOverTime, ruleRates, stepTimeline } from './charts.js';
import { COLOURS, clip } from './drawing.js';
import { type Cell, PdfReport } from './pdf-document.js';
import { ruleTitle, TABLE_ROW_LIMIT } from './report-html.js';

const verdictCell = (verdict: string): Cell => ({
  text: verdict.toUpperCase(),
  bold: true,
  colour: COLOURS[verdict as 'pass' | 'fail' | 'pending' | 'not-applicable'] ?? COLOURS.ink,
});
const percent = (rate: number | null) => (rate === null ? 'n/a' : `${(rate * 100).toFixed(1)}%`);
const compact = (value: Json) => clip(JSON.stringify(value), 400);

function basisSection(pdf: PdfReport, basis: ReportBasis): void {
  pdf.heading('What this report was built from').facts([
    ['Ledger position', basis.position],
    ['Chain head', { text: basis.chainHead, mono: true }],
    ['Rulebook', basis.rulebookVersion],
    ['Service', `upgrade-ledger ${basis.serviceVersion}`],
  ]);
  pdf.paragraph(
    `To verify offline: export the ledger up to position ${basis.position} (GET /api/v1/exports/ledger?to=${basis.position}), ` +
      'run "npx upgrade-ledger verify export.ndjson --public-key ledger.pub", and check that the chain head it prints ' +
      `at position ${basis.position} is the one above. asOf=${basis.position} rebuilds this report exactly.`,
    { colour: COLOURS.muted, size: 8.5 },
  );
}

function readbackText(cells: RolloutReport['readbacks'][number]['pre']): Cell {
  if (cells.length === 0) return { text: 'none recorded', colour: COLOURS.muted };
  return cells
    .map(
      (c) =>
        `${c.verdict.toUpperCase()} at position ${c.position ?? 'pending'}${c.stepId ? `, step ${c.stepId}` : ''}\n` +
        `expected ${compact(c.expected)}\nobserved ${compact(c.observed)}`,
    )
    .join('\n\n');
}

/** The rollout report as a PDF: the same content as the HTML, the timeline as vector drawing. */
export function rolloutReportPdf(report: RolloutReport): Promise<Buffer> {
  const r = report.rollout;
  const s = report.summary;
  const pdf = new PdfReport(`Rollout report: ${r.title ?? r.id}`, report.basis);
  pdf.title(
    `Rollout report: ${r.title ?? r.id}`,
    `Rollout ${r.id} · ${r.environment ?? 'no environment'} · ${r.status} · plan revision ${r.planRevision}`,
  );
  pdf.paragraph(
    `Verdicts: ${s.pass} pass · ${s.fail} fail · ${s.pending} pending · ${s.notApplicable} not applicable`,
    {
      colour: s.fail ? COLOURS.fail : COLOURS.ink,
    },
  );
  pdf.table(
    [
      { header: 'Product', width: 2 },
      { header: 'From', width: 1 },
      { header: 'To', width: 1 },
    ],
    r.products.map((p) => [p.product, p.fromVersion ?? '—', p.toVersion]),
  );
  pdf.facts([
    ['Scope', r.scope ?? '—'],
    ['Created', r.createdAt ?? '—'],
    ['Started', r.startedAt ?? '—'],
    ['Completed', r.completedAt ?? '—'],
    ...(r.abortedAt ? [['Aborted', `${r.abortedAt}: ${r.abortReason ?? ''}`] as const] : []),
    ['Missing from the plan', r.missingPlanParts.length ? r.missingPlanParts.join(', ') : 'nothing'],
  ]);
  basisSection(pdf, report.basis);
  pdf.heading('Verdicts by rule').table(
    [
      { header: 'Rule', width: 196 },
      { header: 'Verdict', width: 96 },
      { header: 'Evidence', width: 52 },
      { header: 'Finding', width: 167 },
    ],
    report.rules.map((rule) => [
      { text: `${rule.id}\n${ruleTitle(rule.id)}`, mono: true },
      verdictCell(rule.verdict),
      rule.evidence.join(', ') || '—',
      rule.finding,
    ]),
  );
  pdf.heading('Step timeline').drawing(stepTimeline(report));
  pdf.heading('Readbacks, before and after');
  if (report.readbacks.length === 0) pdf.paragraph('No readback was recorded.', { colour: COLOURS.muted });
  else
    pdf.table(
      [
        { header: 'Surface', width: 1.4 },
        { header: 'Before (pre)', width: 3 },
        { header: 'After (post)', width: 3 },
      ],
      report.readbacks.map((row) => [row.surface, readbackText(row.pre), readbackText(row.post)]),
    );
  pdf.heading('Path verifications');
  if (report.pathVerifications.length === 0)
    pdf.paragraph('No path verification was recorded.', { colour: COLOURS.muted });
  else
    pdf.table(
      [
        { header: 'Path', width: 2 },
        { header: 'Verdict', width: 1 },
        { header: 'Evidence', width: 3 },
        { header: 'Position', width: 1, align: 'right' },
      ],
      report.pathVerifications.map((p) => [
        p.path,
        verdictCell(p.verdict),
        p.evidence ?? '—',
        p.position ?? '—',
      ]),
    );
  pdf.heading('Rollbacks');
  if (report.rollbacks.length === 0) pdf.paragraph('No rollback.', { colour: COLOURS.muted });
  else
    pdf.table(
      [
        { header: 'Reason', width: 3 },
        { header: 'To step', width: 1.5 },
        { header: 'Started', width: 2 },
        { header: 'Completed', width: 2 },
      ],
      report.rollbacks.map((b) => [
        b.reason,
        b.toStepId ?? '—',
        b.startedAt,
        b.completedAt ?? 'not completed',
      ]),
    );
  pdf.heading('Drift of shared truth during the rollout');
  if (report.drift.length === 0)
    pdf.paragraph('No drift of shared truth was open during the rollout (or no snapshot was taken).', {
      colour: COLOURS.muted,
    });
  else
    pdf.table(
      [
        { header: 'Target / what', width: 2.2 },
        { header: 'Expected → observed', width: 2 },
        { header: 'Detected', width: 2 },
        { header: 'Resolved', width: 2 },
        { header: 'Attributed to', width: 2.2 },
      ],
      report.drift.map((d) => [
        `${d.target}\n${d.key}`,
        `${d.expected ?? 'absent'} → ${d.observed ?? 'absent'}`,
        `${d.detectedAt} (#${d.detectedPosition})`,
        d.resolvedAt ? `${d.resolvedAt} (#${d.resolvedPosition}, ${d.resolution})` : 'still open',
        d.attributedTo,
      ]),
    );
  pdf.heading('Facts from delivery tools');
  if (report.externalFacts.length === 0)
    pdf.paragraph('No delivery tool reported a fact about this rollout.', { colour: COLOURS.muted });
  else
    pdf.table(
      [
        { header: 'When', width: 2 },
        { header: 'What', width: 2 },
        { header: 'Summary', width: 4 },
        { header: 'Outcome', width: 1.2 },
        { header: 'Position', width: 1, align: 'right' },
      ],
      report.externalFacts.map((f) => [
        f.occurredAt,
        `${f.kind}${f.attachedFrom ? '\n(attached later)' : ''}`,
        f.summary,
        f.outcome ?? '—',
        f.position ?? 'pending',
      ]),
    );
  pdf.heading('Actors').table(
    [
      { header: 'Name', width: 2 },
      { header: 'Key', width: 3 },
      { header: 'Role', width: 1 },
      { header: 'Events', width: 1, align: 'right' },
    ],
    report.actors.map((a) => [a.name, { text: a.id, mono: true }, a.role, a.events]),
  );
  pdf.heading('Events').table(
    [
      { header: 'Position', width: 1, align: 'right' },
      { header: 'Version', width: 1, align: 'right' },
      { header: 'Type', width: 2.5 },
      { header: 'Recorded', width: 2.6 },
      { header: 'Actor', width: 2 },
    ],
    report.events.map((e) => [
      e.position ?? 'pending',
      e.streamVersion,
      e.type,
      e.recordedAt,
      e.actor ?? '—',
    ]),
    { limit: TABLE_ROW_LIMIT, more: 'events' },
  );
  return pdf.finish();
}

/** The period compliance report as a PDF, with compliance over time and per rule as drawings. */
export function periodReportPdf(report: PeriodReport): Promise<Buffer> {
  const f = report.filter;
  const period = `${f.from ?? 'the beginning'} to ${f.to ?? 'now'}${f.product ? `, product ${f.product}` : ''}${f.environment ? `, environment ${f.environment}` : ''}`;
  const t = report.totals;
  const pdf = new PdfReport(`Compliance report: ${period}`, report.basis);
  pdf.title('Compliance report', `Rollouts planned from ${period}`);
  pdf.facts([
    ['Rollouts', t.rollouts],
    ['With no failing rule', t.compliant],
    ['Compliance rate', percent(t.complianceRate)],
    ['Rollbacks', t.rollbacks],
    [
      'Mean time to recover',
      report.rollbacks.meanTimeToRecoverSeconds === null
        ? 'n/a'
        : `${report.rollbacks.meanTimeToRecoverSeconds} s`,
    ],
  ]);
  basisSection(pdf, report.basis);
  pdf.heading('Compliance over time').drawing(complianceOverTime(report.overTime));
  pdf.heading('Compliance by rule').drawing(ruleRates(report.perRule));
  pdf.table(
    [
      { header: 'Rule', width: 3.2 },
      { header: 'Pass', width: 1, align: 'right' },
      { header: 'Fail', width: 1, align: 'right' },
      { header: 'Pending', width: 1, align: 'right' },
      { header: 'N/A', width: 1, align: 'right' },
      { header: 'Rate', width: 1, align: 'right' },
    ],
    report.perRule.map((r) => [
      r.id,
      r.counts.pass,
      r.counts.fail,
      r.counts.pending,
      r.counts['not-applicable'],
      percent(r.complianceRate),
    ]),
  );
  pdf.heading('Compliance by product');
  if (report.perProduct.length === 0) pdf.paragraph('No product was moved.', { colour: COLOURS.muted });
  else
    pdf.table(
      [
        { header: 'Product', width: 3 },
        { header: 'Rollouts', width: 1, align: 'right' },
        { header: 'Compliant', width: 1, align: 'right' },
        { header: 'Rate', width: 1, align: 'right' },
      ],
      report.perProduct.map((p) => [p.product, p.rollouts, p.compliant, percent(p.complianceRate)]),
    );
  pdf.heading('Failures');
  if (report.failures.length === 0) pdf.paragraph('No rule failed.', { colour: COLOURS.muted });
  else
    pdf.table(
      [
        { header: 'Rollout', width: 2.6 },
        { header: 'Rule', width: 2.4 },
        { header: 'Verdict', width: 1 },
        { header: 'Finding', width: 4 },
      ],
      report.failures.map((x) => [
        { text: x.rolloutId, mono: true },
        x.ruleId,
        verdictCell('fail'),
        x.finding,
      ]),
      { limit: TABLE_ROW_LIMIT, more: 'failures' },
    );
  pdf.heading('Rollbacks and time to recover');
  if (report.rollbacks.items.length === 0) pdf.paragraph('No rollback.', { colour: COLOURS.muted });
  else
    pdf.table(
      [
        { header: 'Rollout', width: 180 },
        { header: 'Reason', width: 161 },
        { header: 'Started', width: 115 },
        { header: 'Seconds', width: 55, align: 'right' },
      ],
      report.rollbacks.items.map((i) => [
        { text: i.rolloutId, mono: true },
        i.reason,
        i.startedAt,
        i.seconds ?? '—',
      ]),
      { limit: TABLE_ROW_LIMIT, more: 'rollbacks' },
    );
  pdf.heading('Rollouts');
  if (report.rollouts.length === 0) pdf.paragraph('No rollout in this period.', { colour: COLOURS.muted });
  else
    pdf.table(
      [
        { header: 'Rollout', width: 180 },
        { header: 'Environment', width: 80 },
        { header: 'Status', width: 70 },
        { header: 'Failed rules', width: 181 },
      ],
      report.rollouts.map((r) => {
        const failed = Object.entries(r.verdicts)
          .filter(([, v]) => v === 'fail')
          .map(([id]) => id);
        return [
          { text: `${r.id}${r.title ? `\n${r.title}` : ''}`, mono: true },
          r.environment ?? '—',
          r.status,
          failed.length ? { text: `FAIL: ${failed.join(', ')}`, colour: COLOURS.fail } : verdictCell('pass'),
        ];
      }),
      { limit: TABLE_ROW_LIMIT, more: 'rollouts' },
    );
  return pdf.finish();
}
