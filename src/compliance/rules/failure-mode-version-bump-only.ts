import type { Plan } from '../../rollouts/rollout.plan.js';
import { defineRule, evidence, fail, listOf, nonEmpty, pass } from '../facts.js';

/** The parts that make a plan more than a version bump, and whether this plan has each. */
function parts(plan: Plan): [string, boolean][] {
  const boundary = plan.rollbackBoundary;
  const verification = plan.verification;
  return [
    ['compatibility', (plan.compatibility?.length ?? 0) > 0],
    ['sequence', (plan.sequence?.length ?? 0) > 0],
    ['rollback boundary', nonEmpty(boundary?.reversibleState) || nonEmpty(boundary?.irreversibleAfterStepId)],
    [
      'verification',
      (verification?.pre?.length ?? 0) > 0 ||
        (verification?.post?.length ?? 0) > 0 ||
        (verification?.representativePaths ?? []).some(nonEmpty),
    ],
  ];
}

export const failureModeVersionBumpOnly = defineRule(
  'failure-mode-version-bump-only',
  'Failure mode: treating an upgrade as only a version bump',
  'Pass when the plan has at least one of compatibility, sequence, rollback boundary, verification; fail (the failure mode is present) otherwise.',
  ({ plan, planEvent }) => {
    const used = evidence(planEvent);
    const present = parts(plan)
      .filter(([, has]) => has)
      .map(([name]) => name);
    if (present.length === 0) {
      return fail(
        used,
        'the plan is only a version bump: products and versions, with no compatibility, sequence, rollback boundary or verification',
      );
    }
    return pass(used, `the plan is more than a version bump: it has ${listOf(present)}`);
  },
);
