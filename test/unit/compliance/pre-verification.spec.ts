import { describe, it } from 'vitest';
import { type Case, expectJudgement } from '../../support/compliance.js';
import { compliant, compliantPlan, compliantRollout, ev, rb } from '../../support/rollout-events.js';

// compliantPlan: verification.pre = version-truth, observability-readiness.
const planned = ev.planned(compliantPlan);

const cases: Case[] = [
  [
    'shared truth and readiness read back passing before the start',
    compliantRollout,
    'pass',
    [1, 2, 3, 4],
    'before the start (#4): version-truth pass (#2) and observability-readiness pass (#3)',
  ],
  [
    'a readback re-done after a failure: the latest counts',
    [
      planned,
      rb.pre('version-truth'),
      rb.pre('observability-readiness', 'fail'),
      rb.pre('observability-readiness'),
      ev.started(),
    ],
    'pass',
    [1, 2, 4, 5],
    'observability-readiness pass (#4)',
  ],
  [
    'a warning is not a failure',
    [planned, rb.pre('version-truth', 'warn'), rb.pre('observability-readiness'), ev.started()],
    'pass',
    [1, 2, 3, 4],
    'version-truth warn (#2)',
  ],
  [
    'the latest readback of a surface failed (scenario 10)',
    [planned, rb.pre('version-truth'), rb.pre('observability-readiness', 'fail'), ev.started()],
    'fail',
    [1, 2, 3, 4],
    'before the start (#4): the latest observability-readiness readback (#3) failed',
  ],
  [
    'a passing readback followed by a failing one',
    [
      planned,
      rb.pre('version-truth'),
      rb.pre('version-truth', 'fail'),
      rb.pre('observability-readiness'),
      ev.started(),
    ],
    'fail',
    [1, 3, 4, 5],
    'the latest version-truth readback (#3) failed',
  ],
  [
    'no readiness surface read back',
    [
      ev.planned({
        ...compliantPlan,
        verification: { ...compliantPlan.verification, pre: ['contracts-drift'] },
      }),
      rb.pre('contracts-drift'),
      ev.started(),
    ],
    'fail',
    [1, 2, 3],
    'no pre readback of a readiness surface (observability-readiness or recovery-readiness)',
  ],
  [
    'a surface the plan names for before the change is missing',
    [
      ev.planned({ ...compliantPlan, verification: { pre: ['version-truth', 'recovery-readiness'] } }),
      rb.pre('version-truth'),
      rb.pre('observability-readiness'),
      ev.started(),
    ],
    'fail',
    [1, 2, 3, 4],
    'no pre readback of recovery-readiness',
  ],
  [
    'a readback after the start does not count',
    [planned, rb.pre('version-truth'), ev.started(), rb.pre('observability-readiness')],
    'fail',
    [1, 2, 3],
    'no pre readback of observability-readiness; pre readbacks after the start do not count (observability-readiness #4)',
  ],
  [
    'readbacks of another phase do not count',
    [planned, rb.pre('version-truth'), rb.during('observability-readiness'), ev.started()],
    'fail',
    [1, 2, 4],
    'no pre readback of observability-readiness',
  ],
  [
    'started without any readback (scenario 02)',
    [ev.planned({ title: 'bump' }), ev.started(), ev.completed()],
    'fail',
    [1, 2],
    'no pre readback of a shared-truth surface (version-truth or contracts-drift) and a readiness surface',
  ],
  [
    'not started yet, nothing read back',
    [planned],
    'pending',
    [1],
    'not started yet: no pre readback so far of version-truth and observability-readiness',
  ],
  [
    'not started yet, everything read back',
    [planned, ...compliant.preflight],
    'pending',
    [1, 2, 3],
    'not started yet: pre readbacks so far: version-truth pass (#2) and observability-readiness pass (#3)',
  ],
  [
    'not started yet, a failed readback is still pending',
    [planned, rb.pre('version-truth', 'fail')],
    'pending',
    [1, 2],
    'not started yet',
  ],
  [
    'aborted before the start (interpretation: nothing was changed)',
    [planned, rb.pre('version-truth'), ev.aborted()],
    'not-applicable',
    [3],
    'aborted before the start (#3): nothing was changed',
  ],
  [
    'the plan in force at the start names the surfaces',
    [
      planned,
      rb.pre('version-truth'),
      rb.pre('observability-readiness'),
      ev.revised({ ...compliantPlan, verification: { pre: ['contracts-drift'] } }),
      ev.started(),
    ],
    'fail',
    [2, 3, 4, 5],
    'no pre readback of contracts-drift',
  ],
];

describe('pre-verification', () => {
  it.each(cases)('%s', (...row) => {
    expectJudgement('pre-verification', row);
  });
});
