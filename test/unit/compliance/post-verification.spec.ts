import { describe, it } from 'vitest';
import { type Case, expectJudgement } from '../../support/compliance.js';
import { compliant, compliantPlan, compliantRollout, ev, rb } from '../../support/rollout-events.js';

// compliantRollout: 1 planned, 2-3 pre, 4 started, 5-10 steps (docs completes at 10),
// 11 post version-truth, 12 post observability-readiness, 13 path, 14 completed.
const beforePost = compliantRollout.slice(0, 10); // 1..10
const path = ev.pathVerified('operator lists rollouts', 'pass', 'run 42');

const cases: Case[] = [
  [
    'shared truth, readiness and a path after the last step, all passing',
    compliantRollout,
    'pass',
    [1, 10, 11, 12, 13, 14],
    'after the last completed step (docs, #10): version-truth pass (#11) and observability-readiness pass (#12); path "operator lists rollouts" passed (#13)',
  ],
  [
    'a path that is not in the plan still counts (scenario 13)',
    [
      ...beforePost,
      rb.post('version-truth'),
      rb.post('observability-readiness'),
      ev.pathVerified('user signs in'),
      ev.completed(),
    ],
    'pass',
    [1, 10, 11, 12, 13, 14],
    'path "user signs in" passed (#13)',
  ],
  [
    'a plan without steps: after the start',
    [
      ev.planned({ title: 'bump' }),
      ev.started(),
      rb.post('contracts-drift'),
      rb.post('recovery-readiness'),
      path,
      ev.completed(),
    ],
    'pass',
    [1, 2, 3, 4, 5, 6],
    'after the start (#2): contracts-drift pass (#3) and recovery-readiness pass (#4)',
  ],
  [
    'a failed path and a passing one',
    [
      ...beforePost,
      ...compliant.postflight,
      ev.pathVerified('operator lists rollouts', 'fail'),
      ev.completed(),
    ],
    'pass',
    [1, 10, 11, 12, 13, 14, 15],
    'passed (#13)',
  ],
  [
    'nothing read back after the change (scenario 07)',
    [...beforePost, ev.completed()],
    'fail',
    [1, 10, 11],
    'after the last completed step (docs, #10): no post readback of version-truth and observability-readiness; no representative user or operator path was verified',
  ],
  [
    'no representative path (scenario 11)',
    [...beforePost, rb.post('version-truth'), rb.post('observability-readiness'), ev.completed()],
    'fail',
    [1, 10, 11, 12, 13],
    'no representative user or operator path was verified',
  ],
  [
    'the path failed',
    [
      ...beforePost,
      rb.post('version-truth'),
      rb.post('observability-readiness'),
      ev.pathVerified('operator lists rollouts', 'fail'),
      ev.completed(),
    ],
    'fail',
    [1, 10, 11, 12, 13, 14],
    'no representative path passed ("operator lists rollouts" fail #13)',
  ],
  [
    'a readback failed',
    [
      ...beforePost,
      rb.post('version-truth', 'fail'),
      rb.post('observability-readiness'),
      path,
      ev.completed(),
    ],
    'fail',
    [1, 10, 11, 12, 13, 14],
    'version-truth read back fail (#11)',
  ],
  [
    'every readback must pass, even one re-done later',
    [
      ...beforePost,
      rb.post('version-truth', 'fail'),
      rb.post('version-truth'),
      rb.post('observability-readiness'),
      path,
      ev.completed(),
    ],
    'fail',
    [1, 10, 11, 12, 13, 14, 15],
    'version-truth read back fail (#11)',
  ],
  [
    'a warning is not passing',
    [
      ...beforePost,
      rb.post('version-truth'),
      rb.post('observability-readiness', 'warn'),
      path,
      ev.completed(),
    ],
    'fail',
    [1, 10, 11, 12, 13, 14],
    'observability-readiness read back warn (#12)',
  ],
  [
    'a surface the plan names for after the change is missing',
    [
      ev.planned({
        ...compliantPlan,
        verification: { ...compliantPlan.verification, post: ['contracts-drift', 'observability-readiness'] },
      }),
      ...compliantRollout.slice(1),
    ],
    'fail',
    [1, 10, 11, 12, 13, 14],
    'no post readback of contracts-drift',
  ],
  [
    'readbacks and a path before the last step do not count',
    [
      ...compliantRollout.slice(0, 8), // schema and api done
      rb.post('version-truth'),
      rb.post('observability-readiness'),
      path,
      ev.stepStarted('docs'),
      ev.stepCompleted('docs'),
      ev.completed(),
    ],
    'fail',
    [1, 13, 14],
    'after the last completed step (docs, #13): no post readback of version-truth and observability-readiness; no representative user or operator path was verified; post readbacks before then do not count (version-truth #9 and observability-readiness #10)',
  ],
  [
    'readbacks of another phase do not count',
    [...beforePost, rb.during('version-truth'), rb.during('observability-readiness'), path, ev.completed()],
    'fail',
    [1, 10, 13, 14],
    'no post readback of version-truth and observability-readiness',
  ],
  [
    'completed without steps or readbacks (scenario 02)',
    [ev.planned({ title: 'bump' }), ev.started(), ev.completed()],
    'fail',
    [1, 2, 3],
    'after the start (#2): no post readback of a shared-truth surface (version-truth or contracts-drift) and a readiness surface',
  ],
  [
    'planned',
    [ev.planned(compliantPlan)],
    'pending',
    [],
    'not started yet: judged once the rollout completes',
  ],
  [
    'in flight (scenario 08)',
    [...beforePost, ...compliant.postflight],
    'pending',
    [],
    'in flight: judged once the rollout completes',
  ],
  ['rolling back', [...compliantRollout.slice(0, 6), ev.rollbackStarted()], 'pending', [], 'in flight'],
  [
    'aborted after a rollback (scenarios 03-05)',
    [
      ...compliantRollout.slice(0, 6),
      ev.rollbackStarted(),
      ev.rollbackCompleted(),
      ev.aborted('rolled back'),
    ],
    'not-applicable',
    [9],
    'aborted (#9): the rollback rules govern',
  ],
  [
    'aborted even after passing checks',
    [...beforePost, ...compliant.postflight, ev.aborted()],
    'not-applicable',
    [14],
    'aborted (#14)',
  ],
];

describe('post-verification', () => {
  it.each(cases)('%s', (...row) => {
    expectJudgement('post-verification', row);
  });
});
