import { defineRule, evidence, fail, listOf, pass, plural } from '../facts.js';

export const compatibilityChecked = defineRule(
  'compatibility-checked',
  'Compatibility was checked',
  'Pass when every moved product has compatibility evidence with result `compatible`; fail otherwise.',
  ({ plan, planEvent }) => {
    const used = evidence(planEvent);
    const products = [...new Set((plan.products ?? []).map((p) => p.product))];
    if (products.length === 0) {
      return fail(used, 'the plan names no products it moves, so no compatibility check can be tied to one');
    }
    const evidenceFor = plan.compatibility ?? [];
    const missing = products.flatMap((product) => {
      const checks = evidenceFor.filter((c) => c.product === product);
      if (checks.some((c) => c.result === 'compatible')) return [];
      if (checks.length === 0) return [`${product} (no compatibility evidence)`];
      return [`${product} (${checks.map((c) => `${c.result} per ${c.reference}`).join(', ')})`];
    });
    if (missing.length > 0) return fail(used, `not checked compatible: ${listOf(missing, 3)}`);
    return pass(used, `${plural(products.length, 'moved product')} checked compatible: ${listOf(products)}`);
  },
);
