import {
  boundaryOf,
  defineRule,
  evidence,
  fail,
  isType,
  notApplicable,
  pass,
  plural,
  type Recorded,
  ref,
  stepsOf,
} from '../facts.js';

export const rollbackWithinBoundary = defineRule(
  'rollback-within-boundary',
  'Rollbacks stayed within the boundary',
  'Pass when every rollback started while no step ordered after `irreversibleAfterStepId` had started; fail otherwise; not applicable with no rollback or no boundary.',
  ({ events, plan, planEvent }) => {
    const rollbacks = events.filter(isType('RollbackStarted'));
    if (rollbacks.length === 0) return notApplicable([], 'no rollback started');
    const boundary = boundaryOf(plan);
    if (!boundary.declared) {
      return notApplicable(
        evidence(planEvent, ...rollbacks),
        `no boundary to judge the rollback against: ${boundary.problem}`,
      );
    }
    const limit = boundary.step;
    const beyond = new Map(
      stepsOf(plan)
        .filter((s) => s.order > limit.order)
        .map((s) => [s.id, s.order]),
    );
    let crossed: Recorded | undefined;
    for (const e of events) {
      if (e.type === 'StepStarted' && crossed === undefined && beyond.has(e.data.stepId)) crossed = e;
      if (e.type === 'RollbackStarted' && crossed?.type === 'StepStarted') {
        return fail(
          evidence(planEvent, crossed, e),
          `rollback started (${ref(e)}) after step ${crossed.data.stepId} (order ${beyond.get(crossed.data.stepId)}) had started (${ref(crossed)}), past the boundary after ${limit.id} (order ${limit.order})`,
        );
      }
    }
    return pass(
      evidence(planEvent, ...rollbacks),
      `${plural(rollbacks.length, 'rollback')} started before any step after ${limit.id} (order ${limit.order}) had started`,
    );
  },
);
