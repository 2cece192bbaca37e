import { csvLine } from './csv.js';
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
] as const;

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
    ]);
  }
  return out;
}
