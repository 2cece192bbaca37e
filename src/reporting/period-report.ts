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
 * Folds rollout reports, one at a time, into the period report. Keeps only the aggregates and a
 * short line per rollout, so a period of 100,000 rollouts never holds 100,000 full reports.
 * Deterministic: rollouts stay in the order they are added (ledger order), products and days
 * are sorted.
 */
export class PeriodAccumulator {
  private readonly perRule = new Map<RuleId, Counts>(RULE_IDS.map((id) => [id, emptyCounts()]));
  private readonly perProduct = new Map<string, { rollouts: number; compliant: number }>();
  private readonly perDay = new Map<string, { rollouts: number; compliant: number }>();
  private readonly failures: PeriodReport['failures'] = [];
  private readonly rollbackItems: PeriodReport['rollbacks']['items'] = [];
  private readonly rollouts: PeriodReport['rollouts'] = [];
  private compliant = 0;

  add(r: RolloutReport): void {
    const ok = !hasFailure(r.rules);
    if (ok) this.compliant++;
    for (const rule of r.rules) {
      const counts = this.perRule.get(rule.id);
      if (counts) counts[rule.verdict]++;
      if (rule.verdict === 'fail') {
        this.failures.push({
          rolloutId: r.rollout.id,
          ruleId: rule.id,
          finding: rule.finding,
          evidence: rule.evidence,
        });
      }
    }
    const products = [...new Set(r.rollout.products.map((p) => p.product))].sort();
    for (const product of products) {
      const p = this.perProduct.get(product) ?? { rollouts: 0, compliant: 0 };
      p.rollouts++;
      if (ok) p.compliant++;
      this.perProduct.set(product, p);
    }
    const day = (r.rollout.createdAt ?? '').slice(0, 10);
    const d = this.perDay.get(day) ?? { rollouts: 0, compliant: 0 };
    d.rollouts++;
    if (ok) d.compliant++;
    this.perDay.set(day, d);
    for (const rb of r.rollbacks) {
      const elapsed = rb.completedAt ? (Date.parse(rb.completedAt) - Date.parse(rb.startedAt)) / 1000 : null;
      // Never NaN: the JSON is streamed after its headers, where a value with no JSON form would
      // cut the body short instead of answering 500 (report-files.ts).
      const seconds = elapsed !== null && Number.isFinite(elapsed) ? elapsed : null;
      this.rollbackItems.push({
        rolloutId: r.rollout.id,
        reason: rb.reason,
        startedAt: rb.startedAt,
        completedAt: rb.completedAt,
        seconds,
      });
    }
    this.rollouts.push({
      id: r.rollout.id,
      title: r.rollout.title,
      environment: r.rollout.environment,
      products,
      status: r.rollout.status,
      createdAt: r.rollout.createdAt,
      verdicts: Object.fromEntries(r.rules.map((rule) => [rule.id, rule.verdict])) as Record<RuleId, Verdict>,
    });
  }

  result(filter: PeriodFilter, basis: ReportBasis): PeriodReport {
    const recovered = this.rollbackItems.flatMap((i) => (i.seconds === null ? [] : [i.seconds]));
    const byKey = <T>([a]: [string, T], [b]: [string, T]) => (a < b ? -1 : a > b ? 1 : 0);
    return {
      report: 'compliance',
      basis,
      filter,
      totals: {
        rollouts: this.rollouts.length,
        compliant: this.compliant,
        complianceRate: rate(this.compliant, this.rollouts.length),
        rollbacks: this.rollbackItems.length,
      },
      perRule: RULE_IDS.map((id) => {
        const counts = this.perRule.get(id) ?? emptyCounts();
        return { id, counts, complianceRate: rate(counts.pass, counts.pass + counts.fail) };
      }),
      perProduct: [...this.perProduct.entries()]
        .sort(byKey)
        .map(([product, p]) => ({ product, ...p, complianceRate: rate(p.compliant, p.rollouts) })),
      overTime: [...this.perDay.entries()].sort(byKey).map(([date, d]) => ({ date, ...d })),
      failures: this.failures,
      rollbacks: {
        count: this.rollbackItems.length,
        meanTimeToRecoverSeconds: recovered.length
          ? Math.round((recovered.reduce((a, b) => a + b, 0) / recovered.length) * 1000) / 1000
          : null,
        items: this.rollbackItems,
      },
      rollouts: this.rollouts,
    };
  }
}

/** The period report of these rollout reports (see PeriodAccumulator). */
export function buildPeriodReport(
  reports: readonly RolloutReport[],
  filter: PeriodFilter,
  basis: ReportBasis,
): PeriodReport {
  const acc = new PeriodAccumulator();
  for (const r of reports) acc.add(r);
  return acc.result(filter, basis);
}
