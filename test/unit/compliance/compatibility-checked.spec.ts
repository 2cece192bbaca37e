import { describe, it } from 'vitest';
import { type Case, expectJudgement } from '../../support/compliance.js';
import { compliantPlan, compliantRollout, ev, plan, rolloutWith } from '../../support/rollout-events.js';

// compliantPlan moves ledger-db 15 → 16 and api 1.9.0 → 2.0.0.
const cases: Case[] = [
  [
    'every moved product checked compatible',
    compliantRollout,
    'pass',
    [1],
    '2 moved products checked compatible: ledger-db and api',
  ],
  [
    'a moved product without compatibility evidence',
    rolloutWith(plan),
    'fail',
    [1],
    'not checked compatible: ledger-db (no compatibility evidence)',
  ],
  [
    'no compatibility evidence at all',
    rolloutWith({ ...compliantPlan, compatibility: undefined }),
    'fail',
    [1],
    'ledger-db (no compatibility evidence) and api (no compatibility evidence)',
  ],
  [
    'a check that came back incompatible',
    rolloutWith({
      ...compliantPlan,
      compatibility: [
        { product: 'ledger-db', reference: 'compat/ledger-db-16', result: 'compatible' },
        { product: 'api', reference: 'compat/api-2.0', result: 'incompatible' },
      ],
    }),
    'fail',
    [1],
    'not checked compatible: api (incompatible per compat/api-2.0)',
  ],
  [
    'conditional or unknown results are not compatible',
    rolloutWith({
      ...compliantPlan,
      compatibility: [
        { product: 'ledger-db', reference: 'c/1', result: 'conditional' },
        { product: 'api', reference: 'c/2', result: 'unknown' },
      ],
    }),
    'fail',
    [1],
    'ledger-db (conditional per c/1) and api (unknown per c/2)',
  ],
  [
    'evidence for another product does not count',
    rolloutWith({
      ...compliantPlan,
      compatibility: [{ product: 'portal', reference: 'compat/portal', result: 'compatible' }],
    }),
    'fail',
    [1],
    'ledger-db (no compatibility evidence)',
  ],
  [
    'a re-check that came back compatible counts',
    rolloutWith({
      ...compliantPlan,
      compatibility: [
        ...(compliantPlan.compatibility ?? []),
        { product: 'api', reference: 'compat/api-2.0-first-run', result: 'incompatible' },
      ],
    }),
    'pass',
    [1],
    'checked compatible',
  ],
  [
    'a product listed twice is checked once',
    rolloutWith({
      ...compliantPlan,
      products: [...(compliantPlan.products ?? []), { product: 'api', toVersion: '2.0.1' }],
    }),
    'pass',
    [1],
    '2 moved products',
  ],
  [
    'a plan that moves no product',
    rolloutWith({ ...compliantPlan, products: undefined }),
    'fail',
    [1],
    'the plan names no products it moves',
  ],
  [
    'the revision in force at the start counts',
    [ev.planned(compliantPlan), ev.revised(plan), ev.started()],
    'fail',
    [2],
    'ledger-db (no compatibility evidence)',
  ],
];

describe('compatibility-checked', () => {
  it.each(cases)('%s', (...row) => {
    expectJudgement('compatibility-checked', row);
  });
});
