import { describe, it } from 'vitest';
import { type Case, expectJudgement } from '../../support/compliance.js';
import { compliantPlan, compliantRollout, ev, plan, rolloutWith } from '../../support/rollout-events.js';

// compliantPlan moves ledger-db 15 → 16 and api 1.9.0 → 2.0.0, with notes for 16 and 2.0.0.
const cases: Case[] = [
  [
    'notes for every target version',
    compliantRollout,
    'pass',
    [1],
    'release notes cited for 2 target versions: ledger-db 16 and api 2.0.0',
  ],
  [
    'a target version without notes',
    rolloutWith(plan),
    'fail',
    [1],
    'no release notes cited for ledger-db 16',
  ],
  [
    'no release notes at all',
    rolloutWith({ ...compliantPlan, releaseNotes: undefined }),
    'fail',
    [1],
    'no release notes cited for ledger-db 16 and api 2.0.0',
  ],
  [
    'notes for the version moved from, not to',
    rolloutWith({
      ...compliantPlan,
      releaseNotes: [
        { product: 'ledger-db', version: '15', reference: 'notes/15' },
        { product: 'api', version: '2.0.0', reference: 'notes/api' },
      ],
    }),
    'fail',
    [1],
    'no release notes cited for ledger-db 16 (notes cite 15)',
  ],
  [
    "another product's notes for the same version do not count",
    rolloutWith({
      ...compliantPlan,
      releaseNotes: [
        { product: 'api', version: '16', reference: 'notes/wrong' },
        { product: 'api', version: '2.0.0', reference: 'notes/api' },
      ],
    }),
    'fail',
    [1],
    'ledger-db 16',
  ],
  [
    'each listed move needs its own notes',
    rolloutWith({
      ...compliantPlan,
      products: [...(compliantPlan.products ?? []), { product: 'api', toVersion: '2.0.1' }],
    }),
    'fail',
    [1],
    'api 2.0.1 (notes cite 2.0.0)',
  ],
  [
    'a plan that moves no product',
    rolloutWith({ ...compliantPlan, products: [] }),
    'fail',
    [1],
    'the plan names no products it moves',
  ],
  [
    'the revision in force at the start counts',
    [ev.planned(plan), ev.revised(compliantPlan), ev.started(), ev.revised(plan)],
    'pass',
    [2],
    'ledger-db 16',
  ],
];

describe('release-notes-cited', () => {
  it.each(cases)('%s', (...row) => {
    expectJudgement('release-notes-cited', row);
  });
});
