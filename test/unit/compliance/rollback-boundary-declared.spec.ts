import { describe, it } from 'vitest';
import type { Plan } from '../../../src/rollouts/rollout.plan.js';
import { type Case, expectJudgement } from '../../support/compliance.js';
import { compliantPlan, compliantRollout, ev, rolloutWith } from '../../support/rollout-events.js';

const bounded = (rollbackBoundary: Plan['rollbackBoundary'], p: Plan = compliantPlan) =>
  rolloutWith({ ...p, rollbackBoundary });

const cases: Case[] = [
  [
    'reversible state and a planned step',
    compliantRollout,
    'pass',
    [1],
    'reversible: "schema is additive"; irreversible after step api (order 2)',
  ],
  ['no boundary (scenario 03)', bounded(undefined), 'fail', [1], 'the plan declares no rollback boundary'],
  [
    'no reversible state',
    bounded({ irreversibleAfterStepId: 'api' }),
    'fail',
    [1],
    'the rollback boundary does not say which state can be safely reversed (reversibleState)',
  ],
  [
    'no irreversible step',
    bounded({ reversibleState: 'schema is additive' }),
    'fail',
    [1],
    'the rollback boundary does not say after which step the change is irreversible (irreversibleAfterStepId)',
  ],
  ['an empty boundary', bounded({}), 'fail', [1], 'reversibleState) and after which step'],
  [
    'a step that is not planned',
    bounded({ reversibleState: 'schema is additive', irreversibleAfterStepId: 'roll-pods' }),
    'fail',
    [1],
    "the rollback boundary's irreversibleAfterStepId roll-pods names no planned step",
  ],
  [
    'a plan without steps',
    bounded(
      { reversibleState: 'everything', irreversibleAfterStepId: 'api' },
      { ...compliantPlan, sequence: undefined },
    ),
    'fail',
    [1],
    'names no planned step',
  ],
  [
    'the revision in force at the start counts',
    [ev.planned({ title: 'x' }), ev.revised(compliantPlan), ev.started()],
    'pass',
    [2],
    'irreversible after step api',
  ],
];

describe('rollback-boundary-declared', () => {
  it.each(cases)('%s', (...row) => {
    expectJudgement('rollback-boundary-declared', row);
  });
});
