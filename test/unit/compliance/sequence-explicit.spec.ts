import { describe, expect, it } from 'vitest';
import { sequenceExplicit } from '../../../src/compliance/rules/sequence-explicit.js';
import type { PlanStep } from '../../../src/rollouts/rollout.plan.js';
import { type Case, expectJudgement, judge } from '../../support/compliance.js';
import { recorded } from '../../support/decider-spec.js';
import {
  compliantPlan,
  compliantRollout,
  ev,
  revisedPlan,
  rolloutWith,
} from '../../support/rollout-events.js';

const withSteps = (sequence: PlanStep[] | undefined) => rolloutWith({ ...compliantPlan, sequence });

const cases: Case[] = [
  ['a compliant plan', compliantRollout, 'pass', [1], '3 steps in order: schema → api → docs'],
  ['no sequence', withSteps(undefined), 'fail', [1], 'the plan has no steps'],
  ['an empty sequence', withSteps([]), 'fail', [1], 'the plan has no steps'],
  [
    'a layer instead of a product',
    withSteps([{ id: 'docs', order: 1, layer: 'docs' }]),
    'pass',
    [1],
    '1 step in order: docs',
  ],
  [
    'a step with neither product nor layer',
    withSteps([
      { id: 'schema', order: 1, product: 'db' },
      { id: 'docs', order: 2, action: 'publish' },
    ]),
    'fail',
    [1],
    'step docs names no product or layer',
  ],
  [
    'a blank product and layer',
    withSteps([{ id: 'docs', order: 1, product: ' ', layer: '' }]),
    'fail',
    [1],
    'step docs names no product or layer',
  ],
  [
    'two steps with one order',
    withSteps([
      { id: 'schema', order: 1, product: 'db' },
      { id: 'api', order: 1, product: 'api' },
    ]),
    'fail',
    [1],
    'steps schema and api share order 1',
  ],
  [
    'a step without an id',
    withSteps([{ id: '', order: 1, product: 'db' }]),
    'fail',
    [1],
    'step number 1 in the sequence has no id',
  ],
  [
    'a step id used twice',
    withSteps([
      { id: 'api', order: 1, product: 'api' },
      { id: 'api', order: 2, product: 'api' },
    ]),
    'fail',
    [1],
    'step id api is used twice',
  ],
  [
    'a plan revised before the start: the revision is in force',
    [ev.planned({ title: 'bump' }), ev.revised(compliantPlan), ev.started()],
    'pass',
    [2],
    '3 steps',
  ],
  [
    'not started: the latest plan counts',
    [ev.planned(compliantPlan), ev.revised({ title: 'bump only' })],
    'fail',
    [2],
    'no steps',
  ],
  [
    'steps without product or layer in a revised plan',
    [ev.planned(compliantPlan), ev.revised(revisedPlan)],
    'fail',
    [2],
    'the sequence is not explicit: step docs names no product or layer; step api names no product or layer',
  ],
  ['no plan recorded at all', [], 'fail', [], 'no steps'],
];

describe('sequence-explicit', () => {
  it.each(cases)('%s', (...row) => {
    expectJudgement('sequence-explicit', row);
  });

  it('names the first three problems and counts the rest, on one line', () => {
    const steps = Array.from({ length: 4 }, (_, i) => ({ id: `s${i}`, order: 1 }));
    const result = judge('sequence-explicit', withSteps(steps));
    expect(result.finding).toBe(
      'the sequence is not explicit: step s0 names no product or layer; steps s0 and s1 share order 1; ' +
        'step s1 names no product or layer; and 4 more',
    );
  });

  it('cites no evidence for a plan that is not sequenced yet', () => {
    const result = sequenceExplicit.evaluate(recorded(compliantRollout));
    expect(result).toMatchObject({ verdict: 'pass', evidence: [] });
  });
});
