import { describe, it } from 'vitest';
import type { Plan } from '../../../src/rollouts/rollout.plan.js';
import { type Case, expectJudgement } from '../../support/compliance.js';
import { compliantPlan, compliantRollout, ev } from '../../support/rollout-events.js';

const bump: Plan = {
  title: 'Bump api',
  products: [{ product: 'api', fromVersion: '1.9.0', toVersion: '2.0.0' }],
  releaseNotes: [{ product: 'api', version: '2.0.0', reference: 'notes/api' }],
  sharedTruthChanges: 'version-truth publishes api 2.0.0',
};
const bumpRollout = (p: Plan) => [ev.planned(p), ev.started(), ev.completed()];

const cases: Case[] = [
  [
    'a plan with every part',
    compliantRollout,
    'pass',
    [1],
    'the plan is more than a version bump: it has compatibility, sequence, rollback boundary and verification',
  ],
  [
    'compatibility alone',
    bumpRollout({ ...bump, compatibility: compliantPlan.compatibility }),
    'pass',
    [1],
    'it has compatibility',
  ],
  [
    'a sequence alone',
    bumpRollout({ ...bump, sequence: [{ id: 'api', order: 1 }] }),
    'pass',
    [1],
    'it has sequence',
  ],
  [
    'a rollback boundary alone',
    bumpRollout({ ...bump, rollbackBoundary: { reversibleState: 'all of it' } }),
    'pass',
    [1],
    'it has rollback boundary',
  ],
  [
    'verification alone',
    bumpRollout({ ...bump, verification: { representativePaths: ['user signs in'] } }),
    'pass',
    [1],
    'it has verification',
  ],
  [
    'products and versions only (scenario 02)',
    bumpRollout(bump),
    'fail',
    [1],
    'the plan is only a version bump: products and versions, with no compatibility, sequence, rollback boundary or verification',
  ],
  [
    'empty parts are no parts',
    bumpRollout({
      ...bump,
      compatibility: [],
      sequence: [],
      rollbackBoundary: {},
      verification: { pre: [], post: [] },
    }),
    'fail',
    [1],
    'only a version bump',
  ],
  [
    'the revision in force at the start counts',
    [ev.planned(compliantPlan), ev.revised(bump), ev.started(), ev.completed()],
    'fail',
    [2],
    'only a version bump',
  ],
  ['no plan recorded', [], 'fail', [], 'only a version bump'],
];

describe('failure-mode-version-bump-only', () => {
  it.each(cases)('%s', (...row) => {
    expectJudgement('failure-mode-version-bump-only', row);
  });
});
