import { describe, expect, it } from 'vitest';
import { declaresRollbackBoundary } from '../../../src/platform-truth/platform-truth.service.js';
import { verifiedVersions } from '../../../src/platform-truth/verified-versions.js';
import type { RolloutEvent } from '../../../src/rollouts/rollout.events.js';
import { foldRollout } from '../../../src/rollouts/rollout.state.js';

const plan = {
  environment: 'production',
  products: [
    { product: 'gateway', fromVersion: '1.4.2', toVersion: '1.5.0' },
    { product: 'identity', toVersion: '3.3.0' },
  ],
  sequence: [{ id: 's1', order: 1 }],
};
const at = (events: RolloutEvent[]) =>
  foldRollout(
    'r1',
    events.map((e, i) => ({ ...e, streamVersion: i + 1, recordedAt: `2026-11-26T08:00:0${i}.000Z` })),
  );
const planned: RolloutEvent = { type: 'RolloutPlanned', data: { rolloutId: 'r1', plan } };
const readback = (observed: Record<string, string>, verdict: 'pass' | 'fail' = 'pass'): RolloutEvent => ({
  type: 'ReadbackRecorded',
  data: { phase: 'post', surface: 'version-truth', expected: {}, observed, verdict },
});
const completed: RolloutEvent = { type: 'RolloutCompleted', data: {} };

describe('verifiedVersions', () => {
  it('is nothing until the rollout completes', () => {
    expect(verifiedVersions(at([planned]))).toEqual([]);
  });

  it('takes the plan’s target versions of a completed rollout', () => {
    expect(verifiedVersions(at([planned, completed]))).toEqual([
      { product: 'gateway', version: '1.5.0' },
      { product: 'identity', version: '3.3.0' },
    ]);
  });

  it('prefers what the last passing post readback of version-truth observed', () => {
    const state = at([
      planned,
      readback({ gateway: '1.4.2' }),
      readback({ gateway: '1.5.1' }),
      readback({ gateway: 'x' }, 'fail'),
      completed,
    ]);
    expect(verifiedVersions(state)).toEqual([
      { product: 'gateway', version: '1.5.1' },
      { product: 'identity', version: '3.3.0' },
    ]);
  });
});

describe('declaresRollbackBoundary', () => {
  it.each([
    [{}, false],
    [{ rollbackBoundary: { reversibleState: 'pods' } }, false],
    [
      {
        rollbackBoundary: { reversibleState: 'pods', irreversibleAfterStepId: 'nope' },
        sequence: [{ id: 's1', order: 1 }],
      },
      false,
    ],
    [
      {
        rollbackBoundary: { reversibleState: 'pods', irreversibleAfterStepId: 's1' },
        sequence: [{ id: 's1', order: 1 }],
      },
      true,
    ],
  ])('%j → %s', (p, expected) => {
    expect(declaresRollbackBoundary(p)).toBe(expected);
  });
});
