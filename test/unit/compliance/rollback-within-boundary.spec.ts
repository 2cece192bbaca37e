import { describe, it } from 'vitest';
import { type Case, expectJudgement } from '../../support/compliance.js';
import { compliant, compliantPlan, compliantRollout, ev } from '../../support/rollout-events.js';

// compliantPlan: schema (1), api (2), docs (3); irreversible after api. Events 1..4: planned,
// pre readbacks, started.
const started = [ev.planned(compliantPlan), ...compliant.preflight, ev.started()];
const schemaStart = ev.stepStarted('schema');
const schemaDone = ev.stepCompleted('schema');
const apiStart = ev.stepStarted('api');
const apiDone = ev.stepCompleted('api');
const docsStart = ev.stepStarted('docs');

const cases: Case[] = [
  ['no rollback', compliantRollout, 'not-applicable', [], 'no rollback started'],
  [
    'no boundary declared (scenario 03)',
    [
      ev.planned({ ...compliantPlan, rollbackBoundary: undefined }),
      ev.started(),
      ev.stepStarted('docs'),
      ev.rollbackStarted(),
    ],
    'not-applicable',
    [1, 4],
    'no boundary to judge the rollback against: the plan declares no rollback boundary',
  ],
  [
    'a boundary naming no planned step',
    [
      ev.planned({
        ...compliantPlan,
        rollbackBoundary: { reversibleState: 'x', irreversibleAfterStepId: 'nope' },
      }),
      ev.started(),
      ev.rollbackStarted(),
    ],
    'not-applicable',
    [1, 3],
    'names no planned step',
  ],
  [
    'a rollback before the boundary was reached (scenario 05)',
    [
      ...started,
      schemaStart,
      schemaDone,
      ev.rollbackStarted('errors', 'schema'),
      ev.rollbackCompleted(),
      ev.aborted(),
    ],
    'pass',
    [1, 7],
    '1 rollback started before any step after api (order 2) had started',
  ],
  [
    'a rollback while the boundary step itself runs',
    [...started, schemaStart, schemaDone, apiStart, ev.rollbackStarted('api errors', 'api')],
    'pass',
    [1, 8],
    'before any step after api',
  ],
  [
    'a rollback after the boundary step completed, before the next one started',
    [
      ...started,
      schemaStart,
      schemaDone,
      apiStart,
      apiDone,
      ev.rollbackStarted(),
      ev.rollbackCompleted(),
      ev.rollbackStarted(),
    ],
    'pass',
    [1, 9, 11],
    '2 rollbacks started before any step after api',
  ],
  [
    'a rollback after a step past the boundary started (scenario 04)',
    [...started, ...compliant.steps, ev.rollbackStarted('portal errors', 'schema')],
    'fail',
    [1, 9, 11],
    'rollback started (#11) after step docs (order 3) had started (#9), past the boundary after api (order 2)',
  ],
  [
    'a step past the boundary that failed still crossed it',
    [
      ...started,
      schemaStart,
      schemaDone,
      apiStart,
      apiDone,
      docsStart,
      ev.stepFailed('docs'),
      ev.rollbackStarted(),
    ],
    'fail',
    [1, 9, 11],
    'after step docs (order 3) had started (#9)',
  ],
  [
    'the first rollback past the boundary is named',
    [
      ...started,
      schemaStart,
      ev.stepFailed('schema'),
      ev.rollbackStarted('first'),
      ev.rollbackCompleted(),
      ...compliant.steps,
      ev.rollbackStarted('second'),
    ],
    'fail',
    [1, 13, 15],
    'rollback started (#15) after step docs (order 3) had started (#13)',
  ],
  [
    'an unplanned step is not ordered after the boundary',
    [...started, ev.stepStarted('hotfix'), ev.rollbackStarted()],
    'pass',
    [1, 6],
    '1 rollback started',
  ],
];

describe('rollback-within-boundary', () => {
  it.each(cases)('%s', (...row) => {
    expectJudgement('rollback-within-boundary', row);
  });
});
