import { describe, it } from 'vitest';
import type { Plan } from '../../../src/rollouts/rollout.plan.js';
import { type Case, expectJudgement } from '../../support/compliance.js';
import { compliantPlan, compliantRollout, ev } from '../../support/rollout-events.js';

const rolledBack = (p: Plan) => [
  ev.planned(p),
  ev.started(),
  ev.stepStarted('schema'),
  ev.stepFailed('schema'),
  ev.rollbackStarted('lock timeouts'),
  ev.rollbackCompleted(),
  ev.aborted(),
];

const cases: Case[] = [
  ['no rollback', compliantRollout, 'not-applicable', [], 'no rollback started'],
  [
    'a rollback with the boundary declared (scenarios 04, 05)',
    rolledBack(compliantPlan),
    'pass',
    [1, 5],
    '1 rollback (#5) started with the boundary declared (irreversible after api)',
  ],
  [
    'a rollback with no boundary (scenario 03)',
    rolledBack({ ...compliantPlan, rollbackBoundary: undefined }),
    'fail',
    [1, 5],
    '1 rollback (#5) started without a boundary: the plan declares no rollback boundary',
  ],
  [
    'a boundary that never says where the change becomes irreversible',
    rolledBack({ ...compliantPlan, rollbackBoundary: { reversibleState: 'schema is additive' } }),
    'fail',
    [1, 5],
    'started without a boundary: the rollback boundary does not say after which step the change is irreversible',
  ],
  [
    'a boundary naming no planned step',
    rolledBack({
      ...compliantPlan,
      rollbackBoundary: { reversibleState: 'x', irreversibleAfterStepId: 'pods' },
    }),
    'fail',
    [1, 5],
    'irreversibleAfterStepId pods names no planned step',
  ],
  [
    'every rollback is cited',
    [...rolledBack({ title: 'bump' }).slice(0, -1), ev.rollbackStarted('again')],
    'fail',
    [1, 5, 7],
    '2 rollbacks (#5 and #7) started without a boundary',
  ],
  [
    'the boundary in force at the start counts',
    [ev.planned({ title: 'bump' }), ev.revised(compliantPlan), ev.started(), ev.rollbackStarted()],
    'pass',
    [2, 4],
    'started with the boundary declared',
  ],
];

describe('failure-mode-rollback-without-boundary', () => {
  it.each(cases)('%s', (...row) => {
    expectJudgement('failure-mode-rollback-without-boundary', row);
  });
});
