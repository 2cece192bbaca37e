import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidTransition, NotFound } from '../../../src/common/errors.js';
import {
  evaluateRollout,
  RULE_IDS,
  type RuleId,
  VERDICTS,
  type Verdict,
} from '../../../src/compliance/rulebook.js';
import { decide, type RolloutCommand } from '../../../src/rollouts/rollout.decide.js';
import type { RecordedRolloutEvent } from '../../../src/rollouts/rollout.events.js';
import { type Plan, SURFACES } from '../../../src/rollouts/rollout.plan.js';
import { evolve, initialState, isClosed } from '../../../src/rollouts/rollout.state.js';
import { recordedAtOf } from '../../support/decider-spec.js';
import { ROLLOUT_ID } from '../../support/rollout-events.js';

// Random rollouts, decided and folded as the service would, with random plans rich enough that
// every rule can pass and fail.

const stepIds = ['a', 'b', 'c'] as const;
const stepIdArb = fc.constantFrom(...stepIds, 'x');
const products = ['api', 'db'] as const;
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const surfacesArb = fc.subarray([...SURFACES]);

const planParts = {
  products: fc.subarray(products.map((product) => ({ product, fromVersion: '1', toVersion: '2' }))),
  compatibility: fc.subarray(
    products.flatMap((product) =>
      (['compatible', 'incompatible'] as const).map((result) => ({
        product,
        reference: `c/${product}`,
        result,
      })),
    ),
  ),
  releaseNotes: fc.subarray(
    products.flatMap((product) => ['1', '2'].map((version) => ({ product, version, reference: 'n' }))),
  ),
  sequence: fc.uniqueArray(
    fc.record({
      id: fc.constantFrom(...stepIds),
      order: fc.nat(3),
      product: maybe(fc.constantFrom(...products)),
    }),
    { selector: (s) => s.id, minLength: 1, maxLength: 3 },
  ),
  sharedTruthChanges: fc.constantFrom('none', 'version-truth after b'),
  rollbackBoundary: fc.record(
    { reversibleState: fc.constant('schema'), irreversibleAfterStepId: fc.constantFrom('a', 'b', 'c', 'x') },
    { requiredKeys: [] },
  ),
  verification: fc.record(
    { pre: surfacesArb, post: surfacesArb, representativePaths: fc.subarray(['user signs in']) },
    { requiredKeys: [] },
  ),
};
const { rollbackBoundary: _, ...rest } = planParts;

/** Sparse plans (any part may be missing), and plans with every part and a usable-looking boundary. */
const planArb: fc.Arbitrary<Plan> = fc.oneof(
  fc.record(planParts, { requiredKeys: [] }),
  fc.record({
    ...rest,
    rollbackBoundary: fc.record({
      reversibleState: fc.constant('schema'),
      irreversibleAfterStepId: fc.constantFrom('a', 'b'),
    }),
  }),
);

const readbackArb = (phase?: 'pre' | 'during' | 'post') =>
  fc.record({
    type: fc.constant('RecordReadback' as const),
    phase:
      phase === undefined
        ? fc.constantFrom('pre' as const, 'during' as const, 'post' as const)
        : fc.constant(phase),
    surface: fc.constantFrom(...SURFACES),
    expected: fc.constant('1'),
    observed: fc.constant('1'),
    verdict: fc.constantFrom('pass' as const, 'pass' as const, 'fail' as const, 'warn' as const),
    stepId: maybe(stepIdArb),
  });

const commandArb: fc.Arbitrary<RolloutCommand> = fc.oneof(
  { weight: 1, arbitrary: planArb.map((plan) => ({ type: 'RevisePlan' as const, plan })) },
  { weight: 1, arbitrary: fc.constant({ type: 'ApprovePlan' as const, approver: 'alice' }) },
  { weight: 3, arbitrary: readbackArb() },
  { weight: 2, arbitrary: fc.constant({ type: 'StartRollout' as const }) },
  { weight: 6, arbitrary: fc.record({ type: fc.constant('StartStep' as const), stepId: stepIdArb }) },
  { weight: 6, arbitrary: fc.record({ type: fc.constant('CompleteStep' as const), stepId: stepIdArb }) },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('FailStep' as const),
      stepId: stepIdArb,
      reason: fc.constant('x'),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant('VerifyPath' as const),
      path: fc.constant('user signs in'),
      verdict: fc.constantFrom('pass' as const, 'fail' as const),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('StartRollback' as const),
      reason: fc.constant('x'),
      toStepId: maybe(stepIdArb),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ type: 'CompleteRollback' as const }) },
  { weight: 2, arbitrary: fc.constant({ type: 'CompleteRollout' as const }) },
  { weight: 1, arbitrary: fc.constant({ type: 'AbortRollout' as const, reason: 'x' }) },
);

/** What a careful pipeline does at the end: read every surface back, exercise a path, complete. */
const wrapUp: RolloutCommand[] = [
  ...SURFACES.map((surface) => ({
    type: 'RecordReadback' as const,
    phase: 'post' as const,
    surface,
    expected: '2',
    observed: '2',
    verdict: 'pass' as const,
  })),
  { type: 'VerifyPath', path: 'user signs in', verdict: 'pass' },
  { type: 'CompleteRollout' },
];

/** True four times in five. */
const often = fc.integer({ min: 1, max: 5 }).map((n) => n > 1);

/** The first `k` planned steps, run in plan order. */
const inOrder = (plan: Plan, k: number): RolloutCommand[] =>
  [...(plan.sequence ?? [])]
    .sort((a, b) => a.order - b.order)
    .slice(0, k)
    .flatMap((step) => [
      { type: 'StartStep' as const, stepId: step.id },
      { type: 'CompleteStep' as const, stepId: step.id },
    ]);

/**
 * A plan, a few pre readbacks, the start, some steps in order and perhaps a rollback, then
 * anything, perhaps wrapped up; now and then not even a plan.
 */
const scenarioArb = fc
  .record({
    plans: often,
    plan: planArb,
    preflight: fc.array(readbackArb('pre'), { maxLength: 4 }),
    start: often,
    steps: fc.nat(3),
    rollback: fc.boolean(),
    rest: fc.array(commandArb, { maxLength: 40 }),
    wrap: fc.boolean(),
  })
  .map(({ plans, plan, preflight, start, steps, rollback, rest, wrap }): RolloutCommand[] => [
    ...(plans ? [{ type: 'PlanRollout' as const, rolloutId: ROLLOUT_ID, plan }] : []),
    ...preflight,
    ...(start ? [{ type: 'StartRollout' as const }, ...inOrder(plan, steps)] : []),
    ...(rollback
      ? [{ type: 'StartRollback' as const, reason: 'x' }, { type: 'CompleteRollback' as const }]
      : []),
    ...rest,
    ...(wrap ? wrapUp : []),
  ]);

/** Ledger positions as the sequencer gives them: increasing from any start, the newest maybe not yet. */
const positionsArb = fc.record({ first: fc.integer({ min: 1, max: 1_000_000 }), unsequenced: fc.nat(3) });

function run(commands: RolloutCommand[]): RecordedRolloutEvent[] {
  let state = initialState(ROLLOUT_ID);
  const events: RecordedRolloutEvent[] = [];
  for (const command of commands) {
    let produced: ReturnType<typeof decide>;
    try {
      produced = decide(command, state);
    } catch (error) {
      if (error instanceof InvalidTransition || error instanceof NotFound) continue;
      throw error;
    }
    for (const event of produced) {
      const n = events.length + 1;
      const stamped = { ...event, streamVersion: n, recordedAt: recordedAtOf(n) };
      events.push(stamped);
      state = evolve(state, stamped);
    }
  }
  return events;
}

const sequence = (
  events: RecordedRolloutEvent[],
  { first, unsequenced }: { first: number; unsequenced: number },
) => events.map((e, i) => (i < events.length - unsequenced ? { ...e, position: first + i } : e));

describe('evaluateRollout: properties over any rollout decide and evolve can record', () => {
  it('never throws, gives all 12 rules in order, and cites only positions of the events it was given', () => {
    const seen = new Map<RuleId, Set<Verdict>>(RULE_IDS.map((id) => [id, new Set()]));
    fc.assert(
      fc.property(scenarioArb, positionsArb, (commands, positions) => {
        const events = sequence(run(commands), positions);
        const results = evaluateRollout(events);
        expect(results.map((r) => r.id)).toEqual([...RULE_IDS]);
        const given = new Set(events.flatMap((e) => (e.position === undefined ? [] : [e.position])));
        for (const r of results) {
          seen.get(r.id)?.add(r.verdict);
          expect(VERDICTS).toContain(r.verdict);
          for (const p of r.evidence) expect(given.has(p), `${r.id} cites ${p}`).toBe(true);
          expect(r.evidence, `${r.id}: ascending and unique`).toEqual(
            [...new Set(r.evidence)].sort((a, b) => a - b),
          );
          expect(r.finding, r.id).toMatch(/^\S[^\n]*$/);
        }
      }),
      { numRuns: 1000 },
    );
    // The generator must reach what each rule can say, or the property proves little.
    const reached = Object.fromEntries([...seen].map(([id, verdicts]) => [id, [...verdicts].sort()]));
    const planRule = ['fail', 'pass'];
    expect(reached).toEqual({
      'sequence-explicit': planRule,
      'sequence-followed': ['fail', 'not-applicable', 'pass', 'pending'],
      'compatibility-checked': planRule,
      'release-notes-cited': planRule,
      'verification-planned': planRule,
      'pre-verification': ['fail', 'not-applicable', 'pass', 'pending'],
      'post-verification': ['fail', 'not-applicable', 'pass', 'pending'],
      'rollback-boundary-declared': planRule,
      'rollback-within-boundary': ['fail', 'not-applicable', 'pass'],
      'shared-truth-change-declared': planRule,
      'failure-mode-version-bump-only': planRule,
      'failure-mode-rollback-without-boundary': ['fail', 'not-applicable', 'pass'],
    });
  });

  it('gives the same verdicts whether or not the events are sequenced yet', () => {
    fc.assert(
      fc.property(scenarioArb, positionsArb, (commands, positions) => {
        const events = run(commands);
        const verdicts = (list: RecordedRolloutEvent[]) => evaluateRollout(list).map((r) => r.verdict);
        expect(verdicts(sequence(events, positions))).toEqual(verdicts(events));
      }),
      { numRuns: 300 },
    );
  });

  it('leaves nothing pending once a rollout is closed', () => {
    let closed = 0;
    fc.assert(
      fc.property(scenarioArb, (commands) => {
        const events = run(commands);
        const state = events.reduce(evolve, initialState(ROLLOUT_ID));
        if (!isClosed(state)) return;
        closed++;
        expect(evaluateRollout(events).filter((r) => r.verdict === 'pending')).toEqual([]);
      }),
      { numRuns: 300 },
    );
    expect(closed).toBeGreaterThan(30);
  });
});
