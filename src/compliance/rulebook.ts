import type { RecordedRolloutEvent } from '../rollouts/rollout.events.js';
import type { Rule, RuleResult } from './rule.js';
import { compatibilityChecked } from './rules/compatibility-checked.js';
import { failureModeRollbackWithoutBoundary } from './rules/failure-mode-rollback-without-boundary.js';
import { failureModeVersionBumpOnly } from './rules/failure-mode-version-bump-only.js';
import { postVerification } from './rules/post-verification.js';
import { preVerification } from './rules/pre-verification.js';
import { releaseNotesCited } from './rules/release-notes-cited.js';
import { rollbackBoundaryDeclared } from './rules/rollback-boundary-declared.js';
import { rollbackWithinBoundary } from './rules/rollback-within-boundary.js';
import { sequenceExplicit } from './rules/sequence-explicit.js';
import { sequenceFollowed } from './rules/sequence-followed.js';
import { sharedTruthChangeDeclared } from './rules/shared-truth-change-declared.js';
import { verificationPlanned } from './rules/verification-planned.js';

export { RULE_IDS, type Rule, type RuleId, type RuleResult, VERDICTS, type Verdict } from './rule.js';

/**
 * The version of the rulebook a report was judged by. Bump it whenever a rule's verdict can
 * change for the same events (a new rule, a changed condition); wording-only changes to a
 * finding bump the last part.
 */
export const RULEBOOK_VERSION = '2026.11.1';

/** The rules, in the order of the table in DESIGN.md §3 (Compliance). */
export const RULES: readonly Rule[] = [
  sequenceExplicit,
  sequenceFollowed,
  compatibilityChecked,
  releaseNotesCited,
  verificationPlanned,
  preVerification,
  postVerification,
  rollbackBoundaryDeclared,
  rollbackWithinBoundary,
  sharedTruthChangeDeclared,
  failureModeVersionBumpOnly,
  failureModeRollbackWithoutBoundary,
];

/**
 * Judges a rollout by every rule, in table order. Pure: the events of one rollout stream, in
 * stream order, in; one result per rule out. "The plan" is the plan in force at `RolloutStarted`
 * (the latest plan before the start, if the rollout has not started).
 *
 * @example
 * const results = evaluateRollout(await rollouts.events(id));
 * results.find((r) => r.id === 'pre-verification')?.verdict; // 'pass' | 'fail' | 'pending' | 'not-applicable'
 */
export function evaluateRollout(events: readonly RecordedRolloutEvent[]): RuleResult[] {
  return RULES.map((rule) => rule.evaluate(events));
}
