import { RULE_IDS, type RuleId, type RuleResult, type Verdict } from '../compliance/rule.js';
import type { ReportBasis, RolloutReport } from './rollout-report.js';

export type PeriodFilter = {
  from: string | null;
  to: string | null;
  product: string | null;
  environment: string | null;
};

type Counts = Record<Verdict, number>;

export interface PeriodReport {
  report: 'compliance';
  basis: ReportBasis;
  filter: PeriodFilter;
  totals: { rollouts: number; compliant: number; complianceRate: number | null; rollbacks: number };
  /** Per rule: verdict counts and pass / (pass + fail). */
  perRule: { id: RuleId; counts: Counts; complianceRate: number | null }[];
  /** Per product: rollouts moving it, how many had no failing rule. */
  perProduct: { product: string; rollouts: number; compliant: number; complianceRate: number | null }[];
  /** Per day (UTC) of planning: for the compliance-over-time chart. */
  overTime: { date: string; rollouts: number; compliant: number }[];
  failures: { rolloutId: string; ruleId: RuleId; finding: string; evidence: number[] }[];
  rollbacks: {
    count: number;
    /** Mean seconds from a rollback's start to its completion (time to recover). */
    meanTimeToRecoverSeconds: number | null;
    items: {
      rolloutId: string;
      reason: string;
      startedAt: string;
      completedAt: string | null;
      seconds: number | null;
    }[];
  };
  rollouts: {
    id: string;
    title: string | null;
    environment: string | null;
    products: string[];
    status: string;
    createdAt: string | null;
    verdicts: Record<RuleId, Verdict>;
  }[];
}

const rate = (good: number, all: number) => (all === 0 ? null : Math.round((good / all) * 10_000) / 10_000);
const emptyCounts = (): Counts => ({ pass: 0, fail: 0, pending: 0, 'not-applicable': 0 });
const hasFailure = (rules: RuleResult[]) => rules.some((r) => r.verdict === 'fail');

/**
 * Aggregates per-rollout reports into the period report. Pure and deterministic: rollouts come
 * in ledger order, products and days are sorted.
 */
export function buildPeriodReport(
  reports: readonly RolloutReport[],
  filter: PeriodFilter,
  basis: ReportBasis,
): PeriodReport {
  const perRule = new Map<RuleId, Counts>(RULE_IDS.map((id) => [id, emptyCounts()]));
  const perProduct = new Map<string, { rollouts: number; compliant: number }>();
  const perDay = new Map<string, { rollouts: number; compliant: number }>();
  const failures: PeriodReport['failures'] = [];
  const rollbackItems: PeriodReport['rollbacks']['items'] = [];
  let compliant = 0;

  for (const r of reports) {
    const ok = !hasFailure(r.rules);
    if (ok) compliant++;
    for (const rule of r.rules) {
      const counts = perRule.get(rule.id);
      if (counts) counts[rule.verdict]++;
      if (rule.verdict === 'fail') {
        failures.push({
          rolloutId: r.rollout.id,
          ruleId: rule.id,
          finding: rule.finding,
          evidence: rule.evidence,
        });
      }
    }
    for (const product of new Set(r.rollout.products.map((p) => p.product))) {
      const p = perProduct.get(product) ?? { rollouts: 0, compliant: 0 };
      p.rollouts++;
      if (ok) p.compliant++;
      perProduct.set(product, p);
    }
    const day = (r.rollout.createdAt ?? '').slice(0, 10);
    const d = perDay.get(day) ?? { rollouts: 0, compliant: 0 };
    d.rollouts++;
    if (ok) d.compliant++;
    perDay.set(day, d);
    for (const rb of r.rollbacks) {
      const seconds = rb.completedAt ? (Date.parse(rb.completedAt) - Date.parse(rb.startedAt)) / 1000 : null;
      rollbackItems.push({
        rolloutId: r.rollout.id,
        reason: rb.reason,
        startedAt: rb.startedAt,
        completedAt: rb.completedAt,
        seconds,
      });
    }
  }
  const recovered = rollbackItems.flatMap((i) => (i.seconds === null ? [] : [i.seconds]));
  return {
    report: 'compliance',
    basis,
    filter,
    totals: {
      rollouts: reports.length,
      compliant,
      complianceRate: rate(compliant, reports.length),
      rollbacks: rollbackItems.length,
    },
    perRule: RULE_IDS.map((id) => {
      const counts = perRule.get(id) ?? emptyCounts();
      return { id, counts, complianceRate: rate(counts.pass, counts.pass + counts.fail) };
    }),
    perProduct: [...perProduct.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([product, p]) => ({ product, ...p, complianceRate: rate(p.compliant, p.rollouts) })),
    overTime: [...perDay.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([date, d]) => ({ date, ...d })),
    failures,
    rollbacks: {
      count: rollbackItems.length,
      meanTimeToRecoverSeconds: recovered.length
        ? Math.round((recovered.reduce((a, b) => a + b, 0) / recovered.length) * 1000) / 1000
        : null,
      items: rollbackItems,
    },
    rollouts: reports.map((r) => ({
      id: r.rollout.id,
      title: r.rollout.title,
      environment: r.rollout.environment,
      products: [...new Set(r.rollout.products.map((p) => p.product))].sort(),
      status: r.rollout.status,
      createdAt: r.rollout.createdAt,
      verdicts: Object.fromEntries(r.rules.map((rule) => [rule.id, rule.verdict])) as Record<RuleId, Verdict>,
    })),
  };
}
