import {
  boundaryOf,
  defineRule,
  evidence,
  fail,
  isType,
  listOf,
  notApplicable,
  pass,
  plural,
  ref,
} from '../facts.js';

export const failureModeRollbackWithoutBoundary = defineRule(
  'failure-mode-rollback-without-boundary',
  'Failure mode: planning rollback without defining the boundary',
  'Pass when every rollback started with a boundary declared; fail otherwise; not applicable with no rollback.',
  ({ events, plan, planEvent }) => {
    const rollbacks = events.filter(isType('RollbackStarted'));
    if (rollbacks.length === 0) return notApplicable([], 'no rollback started');
    const used = evidence(planEvent, ...rollbacks);
    const boundary = boundaryOf(plan);
    if (!boundary.declared) {
      return fail(
        used,
        `${plural(rollbacks.length, 'rollback')} (${listOf(rollbacks.map(ref), 3)}) started without a boundary: ${boundary.problem}`,
      );
    }
    return pass(
      used,
      `${plural(rollbacks.length, 'rollback')} (${listOf(rollbacks.map(ref), 3)}) started with the boundary declared (irreversible after ${boundary.step.id})`,
    );
  },
);
