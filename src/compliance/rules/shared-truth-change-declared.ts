import { defineRule, evidence, fail, nonEmpty, pass, quote } from '../facts.js';

export const sharedTruthChangeDeclared = defineRule(
  'shared-truth-change-declared',
  'Shared-truth changes are declared',
  'Pass when the plan has a non-empty `sharedTruthChanges` (it may be "none"); fail otherwise.',
  ({ plan, planEvent }) => {
    const used = evidence(planEvent);
    if (!nonEmpty(plan.sharedTruthChanges)) {
      return fail(
        used,
        'the plan does not say where shared-truth publication changes (sharedTruthChanges; "none" if it does not)',
      );
    }
    return pass(used, `shared truth: ${quote(plan.sharedTruthChanges, 100)}`);
  },
);
