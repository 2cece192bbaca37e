import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/ledger/hashing.js';
import { decide } from '../../src/rollouts/rollout.decide.js';
import { planSchema } from '../../src/rollouts/rollout.plan.js';
import { foldRollout } from '../../src/rollouts/rollout.state.js';

/** Every part of a plan, each object with more than one key written in reverse key order. */
const plan = {
  verification: {
    representativePaths: ['sign-in', 'docs search'],
    pre: ['version-truth', 'observability-readiness'],
    post: ['version-truth', 'contracts-drift'],
  },
  title: 'Upgrade identity stack',
  sharedTruthChanges: 'version-truth publishes identity 3.3.0',
  sequence: [
    { reversible: true, product: 'identity', order: 1, layer: 'data', id: 'migrate', action: 'migrate' },
    { reversible: false, product: 'identity', order: 2, id: 'roll', action: 'roll pods' },
  ],
  scope: 'stack-wide',
  rollbackBoundary: { reversibleState: 'pods and additive schema', irreversibleAfterStepId: 'roll' },
  releaseNotes: [
    { version: '3.3.0', reviewedBy: 'maria', reference: 'notes/identity/3.3.0', product: 'identity' },
  ],
  products: [{ toVersion: '3.3.0', product: 'identity', fromVersion: '3.2.0' }],
  environment: 'production',
  compatibility: [
    {
      result: 'compatible',
      reference: 'compat/identity',
      product: 'identity',
      checkedAt: '2026-11-02T09:00:00Z',
    },
  ],
};

describe('planSchema', () => {
  it('gives a plan in canonical key order, whatever order its keys arrived in', () => {
    const parsed = planSchema.parse(plan);
    // The same value: only the order of its keys changed.
    expect(parsed).toEqual(plan);
    expect(JSON.stringify(parsed)).not.toBe(JSON.stringify(plan));
    // So hashing it copies nothing (canonicalJson copies only objects whose keys are out of order).
    expect(JSON.stringify(parsed)).toBe(canonicalJson(plan));
  });

  it('gives the RolloutPlanned event data in canonical key order too', () => {
    const parsed = planSchema.parse(plan);
    const id = '0b6f6a46-6c2b-4a5e-9a55-8a2f3c1f1e01';
    const [event] = decide({ type: 'PlanRollout', rolloutId: id, plan: parsed }, foldRollout(id, []));
    expect(event?.type).toBe('RolloutPlanned');
    expect(JSON.stringify(event?.data)).toBe(canonicalJson(event?.data));
  });
});

/** Every object schema inside `schema` (through optionals and arrays), with where it is. */
function objectShapes(schema: unknown, at = 'plan'): [string, string[]][] {
  const s = schema as { shape?: Record<string, unknown>; unwrap?: () => unknown; element?: unknown };
  if (s.shape)
    return [
      [at, Object.keys(s.shape)],
      ...Object.entries(s.shape).flatMap(([k, v]) => objectShapes(v, `${at}.${k}`)),
    ];
  if (typeof s.unwrap === 'function') return objectShapes(s.unwrap(), at);
  if (s.element) return objectShapes(s.element, `${at}[]`);
  return [];
}

describe('planSchema, every object in it', () => {
  it('lists its keys in canonical order, so a part added later stays canonical', () => {
    const shapes = objectShapes(planSchema);
    // The plan, its rollback boundary and verification, and the items of its four lists.
    expect(shapes.length).toBe(7);
    for (const [at, keys] of shapes) expect({ at, keys }).toEqual({ at, keys: [...keys].sort() });
  });
});
