import type { RecordedRolloutEvent } from '../rollouts/rollout.events.js';

/** The rule ids, in the order of the rulebook's table (DESIGN.md §3, Compliance). */
export const RULE_IDS = [
  'sequence-explicit',
  'sequence-followed',
  'compatibility-checked',
  'release-notes-cited',
  'verification-planned',
  'pre-verification',
  'post-verification',
  'rollback-boundary-declared',
  'rollback-within-boundary',
  'shared-truth-change-declared',
  'failure-mode-version-bump-only',
  'failure-mode-rollback-without-boundary',
] as const;
export type RuleId = (typeof RULE_IDS)[number];

export const VERDICTS = ['pass', 'fail', 'pending', 'not-applicable'] as const;
export type Verdict = (typeof VERDICTS)[number];

/** What one rule says about one rollout. */
export interface RuleResult {
  id: RuleId;
  verdict: Verdict;
  /**
   * Ledger positions of the events the verdict relied on: ascending, unique. Events that are
   * not sequenced yet (no position) contribute nothing.
   */
  evidence: number[];
  /** One line a person can read: what is missing, the first deviation, or what was found. */
  finding: string;
}

/** A rule of the rulebook: a pure function of a rollout's events (in stream order). */
export interface Rule {
  id: RuleId;
  title: string;
  /** When the rule passes, and what it gives otherwise (the table's wording). */
  description: string;
  evaluate(events: readonly RecordedRolloutEvent[]): RuleResult;
}
