import { describe, it } from 'vitest';
import { type Case, expectJudgement } from '../../support/compliance.js';
import { compliantPlan, compliantRollout, ev, rolloutWith } from '../../support/rollout-events.js';

const cases: Case[] = [
  [
    'declared',
    compliantRollout,
    'pass',
    [1],
    'shared truth: "version-truth publishes api 2.0.0 after step api"',
  ],
  [
    'declared as none',
    rolloutWith({ ...compliantPlan, sharedTruthChanges: 'none' }),
    'pass',
    [1],
    'shared truth: "none"',
  ],
  [
    'a long declaration is cut to one readable line',
    rolloutWith({ ...compliantPlan, sharedTruthChanges: `version-truth\npublishes ${'x'.repeat(200)}` }),
    'pass',
    [1],
    /^shared truth: "version-truth publishes x{70,}…"$/,
  ],
  [
    'not declared (scenario 12)',
    rolloutWith({ ...compliantPlan, sharedTruthChanges: undefined }),
    'fail',
    [1],
    'the plan does not say where shared-truth publication changes',
  ],
  ['blank', rolloutWith({ ...compliantPlan, sharedTruthChanges: '   ' }), 'fail', [1], 'sharedTruthChanges'],
  [
    'dropped by the revision in force at the start',
    [
      ev.planned(compliantPlan),
      ev.revised({ ...compliantPlan, sharedTruthChanges: undefined }),
      ev.started(),
    ],
    'fail',
    [2],
    'does not say where',
  ],
];

describe('shared-truth-change-declared', () => {
  it.each(cases)('%s', (...row) => {
    expectJudgement('shared-truth-change-declared', row);
  });
});
