import { clauses, defineRule, evidence, fail, nonEmpty, pass, plural, stepsOf } from '../facts.js';

export const sequenceExplicit = defineRule(
  'sequence-explicit',
  'The sequence is explicit',
  'Pass when the plan has at least one step, each with an id, a distinct order, and a product or layer; fail otherwise.',
  ({ plan, planEvent }) => {
    const used = evidence(planEvent);
    const steps = stepsOf(plan);
    if (steps.length === 0) {
      return fail(used, 'the plan has no steps: nothing says which product or layer moves first');
    }
    const problems: string[] = [];
    const ids = new Set<string>();
    const byOrder = new Map<number, string>();
    steps.forEach((step, i) => {
      const name = nonEmpty(step.id) ? step.id : `number ${i + 1} in the sequence`;
      if (!nonEmpty(step.id)) problems.push(`step ${name} has no id`);
      else if (ids.has(step.id)) problems.push(`step id ${step.id} is used twice`);
      else ids.add(step.id);
      if (typeof step.order !== 'number' || !Number.isFinite(step.order)) {
        problems.push(`step ${name} has no order`);
      } else {
        const other = byOrder.get(step.order);
        if (other === undefined) byOrder.set(step.order, name);
        else problems.push(`steps ${other} and ${name} share order ${step.order}`);
      }
      if (!nonEmpty(step.product) && !nonEmpty(step.layer))
        problems.push(`step ${name} names no product or layer`);
    });
    if (problems.length > 0) return fail(used, `the sequence is not explicit: ${clauses(problems)}`);
    const inOrder = [...steps].sort((a, b) => a.order - b.order).map((s) => s.id);
    return pass(used, `${plural(steps.length, 'step')} in order: ${inOrder.join(' → ')}`);
  },
);
