import { describe, it } from 'vitest';
import type { Plan } from '../../../src/rollouts/rollout.plan.js';
import { type Case, expectJudgement } from '../../support/compliance.js';
import { compliantPlan, compliantRollout, ev, rolloutWith } from '../../support/rollout-events.js';

const verifying = (verification: Plan['verification']) => rolloutWith({ ...compliantPlan, verification });
const paths = ['operator lists rollouts'];

const cases: Case[] = [
  [
    'shared truth, readiness and a path after the change',
    compliantRollout,
    'pass',
    [1],
    'after the change the plan reads back version-truth and observability-readiness and exercises "operator lists rollouts"',
  ],
  [
    'the other shared-truth and readiness surfaces serve as well',
    verifying({ post: ['contracts-drift', 'recovery-readiness'], representativePaths: paths }),
    'pass',
    [1],
    'contracts-drift and recovery-readiness',
  ],
  [
    'no verification (scenario 13)',
    verifying(undefined),
    'fail',
    [1],
    'the plan has no verification and so does not name a shared-truth surface (version-truth or contracts-drift) in verification.post, a readiness surface (observability-readiness or recovery-readiness) in verification.post and a representative user or operator path',
  ],
  [
    'no readiness surface after the change',
    verifying({ post: ['version-truth', 'contracts-drift'], representativePaths: paths }),
    'fail',
    [1],
    "the plan's verification does not name a readiness surface (observability-readiness or recovery-readiness) in verification.post for after the change",
  ],
  [
    'no shared-truth surface after the change',
    verifying({ post: ['recovery-readiness'], representativePaths: paths }),
    'fail',
    [1],
    'does not name a shared-truth surface (version-truth or contracts-drift) in verification.post for after',
  ],
  [
    'no representative path',
    verifying({ post: ['version-truth', 'observability-readiness'] }),
    'fail',
    [1],
    'does not name a representative user or operator path for after the change',
  ],
  [
    'a blank representative path',
    verifying({ post: ['version-truth', 'observability-readiness'], representativePaths: ['  '] }),
    'fail',
    [1],
    'a representative user or operator path',
  ],
  [
    'surfaces planned only before the change do not count',
    verifying({ pre: ['version-truth', 'observability-readiness'], representativePaths: paths }),
    'fail',
    [1],
    'a shared-truth surface (version-truth or contracts-drift) in verification.post and a readiness surface',
  ],
  [
    'the revision in force at the start counts',
    [ev.planned({ title: 'x' }), ev.revised(compliantPlan), ev.started()],
    'pass',
    [2],
    'reads back version-truth',
  ],
];

describe('verification-planned', () => {
  it.each(cases)('%s', (...row) => {
    expectJudgement('verification-planned', row);
  });
});
