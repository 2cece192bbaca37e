import { boundaryOf, defineRule, evidence, fail, pass, quote } from '../facts.js';

export const rollbackBoundaryDeclared = defineRule(
  'rollback-boundary-declared',
  'The rollback boundary is declared',
  'Pass when the plan has `rollbackBoundary` with `reversibleState` and `irreversibleAfterStepId` naming a planned step; fail otherwise.',
  ({ plan, planEvent }) => {
    const used = evidence(planEvent);
    const boundary = boundaryOf(plan);
    if (!boundary.declared) return fail(used, boundary.problem);
    return pass(
      used,
      `reversible: ${quote(boundary.reversibleState, 60)}; irreversible after step ${boundary.step.id} (order ${boundary.step.order})`,
    );
  },
);
