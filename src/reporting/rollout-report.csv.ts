import { RULE_IDS } from '../compliance/rule.js';
import { csvLine } from './csv.js';
import type { PeriodReport } from './period-report.js';
import type { RolloutReport } from './rollout-report.js';

export const ROLLOUT_REPORT_CSV_COLUMNS = [
  'rollout_id',
  'rule_id',
  'verdict',
  'evidence_positions',
  'finding',
  'rollout_status',
  'environment',
  'rulebook_version',
  'as_of_position',
  'chain_head',
  'external_facts',
] as const;

/** The rollout's external facts in one cell: `<occurredAt> <kind>: <summary>`, separated by ` | `. */
function externalFactsCell(report: RolloutReport): string {
  return report.externalFacts.map((f) => `${f.occurredAt} ${f.kind}: ${f.summary}`).join(' | ');
}

/**
 * One row per rule, each carrying the rollout and the basis it was judged on, so every row stands
 * on its own in a spreadsheet. Deterministic: no generation time.
 */
export function rolloutReportCsv(report: RolloutReport): string {
  let out = csvLine([...ROLLOUT_REPORT_CSV_COLUMNS]);
  for (const rule of report.rules) {
    out += csvLine([
      report.rollout.id,
      rule.id,
      rule.verdict,
      rule.evidence.join(' '),
      rule.finding,
      report.rollout.status,
      report.rollout.environment,
      report.basis.rulebookVersion,
      report.basis.position,
      report.basis.chainHead,
      externalFactsCell(report),
    ]);
  }
  return out;
}

/** One row per rollout of the period: its verdict for each rule, and the basis. */
export function periodReportCsv(report: PeriodReport): string {
  let out = csvLine([
    'rollout_id',
    'created_at',
    'environment',
    'products',
    'status',
    ...RULE_IDS,
    'rulebook_version',
    'as_of_position',
    'chain_head',
  ]);
  for (const r of report.rollouts) {
    out += csvLine([
      r.id,
      r.createdAt,
      r.environment,
      r.products.join(' '),
      r.status,
      ...RULE_IDS.map((id) => r.verdicts[id]),
      report.basis.rulebookVersion,
      report.basis.position,
      report.basis.chainHead,
    ]);
  }
  return out;
}
