import { describe, expect, it } from 'vitest';
import {
  attribute,
  type DriftChange,
  detectDrift,
  foldDrift,
  type OpenDrift,
  type RolloutWindow,
  type VerifiedVersion,
} from '../../../src/snapshots/drift.js';
import type { Observation } from '../../../src/snapshots/observation.js';
import type { SnapshotEvent } from '../../../src/snapshots/snapshot.events.js';

const ALL_READY = {
  'version-truth': true,
  'contracts-drift': true,
  'observability-readiness': true,
  'recovery-readiness': true,
} as const;

const obs = (
  versions: Record<string, string> | null,
  ready: Observation['ready'] = ALL_READY,
): Observation => ({
  snapshotId: 's',
  tickAt: '2026-11-26T08:00:00.000Z',
  versions,
  ready,
});
const truth = (entries: Record<string, string>) =>
  new Map<string, VerifiedVersion>(
    Object.entries(entries).map(([p, v]) => [p, { version: v, position: 42, rolloutId: 'r1' }]),
  );
const openDrift = (over: Partial<OpenDrift> & Pick<OpenDrift, 'key'>): OpenDrift => ({
  driftId: 'd1',
  kind: 'version',
  product: over.key.replace('version:', ''),
  surface: null,
  basis: 'ledger',
  expected: '1.5.0',
  observed: '1.6.0',
  tickAt: '2026-11-26T07:45:00.000Z',
  ...over,
});
/** A change reduced to what the table below states. */
const brief = (c: DriftChange) =>
  c.type === 'detected'
    ? `+${c.key} ${c.basis} ${c.expected}→${c.observed}${c.supersedes ? ` (supersedes ${c.supersedes})` : ''}`
    : `-${c.key} ${c.resolution}`;

describe('detectDrift', () => {
  it.each<
    [string, Observation, Observation | undefined, Map<string, VerifiedVersion>, OpenDrift[], string[]]
  >([
    ['nothing to compare with on the first snapshot', obs({ gateway: '1.0' }), undefined, truth({}), [], []],
    [
      'same as the ledger: no drift',
      obs({ gateway: '1.5.0' }),
      undefined,
      truth({ gateway: '1.5.0' }),
      [],
      [],
    ],
    [
      'differs from the ledger: detected against the ledger, even on the first snapshot',
      obs({ gateway: '1.6.0' }),
      undefined,
      truth({ gateway: '1.5.0' }),
      [],
      ['+version:gateway ledger 1.5.0→1.6.0'],
    ],
    [
      'a verified product missing from the platform is drift to "absent"',
      obs({}),
      undefined,
      truth({ gateway: '1.5.0' }),
      [],
      ['+version:gateway ledger 1.5.0→null'],
    ],
    [
      'an unverified product that changed since the previous snapshot',
      obs({ identity: '3.3.0' }),
      obs({ identity: '3.2.0' }),
      truth({}),
      [],
      ['+version:identity previous-snapshot 3.2.0→3.3.0'],
    ],
    [
      'a product that appeared since the previous snapshot',
      obs({ identity: '3.2.0', cache: '7.0' }),
      obs({ identity: '3.2.0' }),
      truth({}),
      [],
      ['+version:cache previous-snapshot null→7.0'],
    ],
    [
      'still drifted, unchanged: nothing new',
      obs({ gateway: '1.6.0' }),
      obs({ gateway: '1.6.0' }),
      truth({ gateway: '1.5.0' }),
      [openDrift({ key: 'version:gateway' })],
      [],
    ],
    [
      'back to the verified version: resolved as matching the ledger',
      obs({ gateway: '1.5.0' }),
      obs({ gateway: '1.6.0' }),
      truth({ gateway: '1.5.0' }),
      [openDrift({ key: 'version:gateway' })],
      ['-version:gateway matches-ledger'],
    ],
    [
      'moved on again while open: superseded by a new drift',
      obs({ gateway: '1.7.0' }),
      obs({ gateway: '1.6.0' }),
      truth({ gateway: '1.5.0' }),
      [openDrift({ key: 'version:gateway' })],
      ['-version:gateway superseded', '+version:gateway ledger 1.5.0→1.7.0 (supersedes d1)'],
    ],
    [
      'an unverified change keeps its baseline until reverted',
      obs({ identity: '3.3.0' }),
      obs({ identity: '3.3.0' }),
      truth({}),
      [
        openDrift({
          key: 'version:identity',
          basis: 'previous-snapshot',
          expected: '3.2.0',
          observed: '3.3.0',
        }),
      ],
      [],
    ],
    [
      'an unverified change reverted',
      obs({ identity: '3.2.0' }),
      obs({ identity: '3.3.0' }),
      truth({}),
      [
        openDrift({
          key: 'version:identity',
          basis: 'previous-snapshot',
          expected: '3.2.0',
          observed: '3.3.0',
        }),
      ],
      ['-version:identity reverted'],
    ],
    [
      'an unverified change the ledger then verifies: resolved as matching the ledger',
      obs({ identity: '3.3.0' }),
      obs({ identity: '3.3.0' }),
      truth({ identity: '3.3.0' }),
      [
        openDrift({
          key: 'version:identity',
          basis: 'previous-snapshot',
          expected: '3.2.0',
          observed: '3.3.0',
        }),
      ],
      ['-version:identity matches-ledger'],
    ],
    [
      'version-truth unreadable: unknown is not drift, and nothing resolves',
      obs(null),
      obs({ gateway: '1.6.0' }),
      truth({ gateway: '1.5.0' }),
      [openDrift({ key: 'version:gateway' })],
      [],
    ],
    [
      'a surface that was ready is not any more',
      obs({}, { ...ALL_READY, 'recovery-readiness': false }),
      obs({}),
      truth({}),
      [],
      ['+readiness:recovery-readiness previous-snapshot ready→not-ready'],
    ],
    [
      'not ready from the start: no baseline, no drift',
      obs({}, { ...ALL_READY, 'recovery-readiness': false }),
      undefined,
      truth({}),
      [],
      [],
    ],
    [
      'ready again',
      obs({}),
      obs({}, { ...ALL_READY, 'recovery-readiness': false }),
      truth({}),
      [
        openDrift({
          key: 'readiness:recovery-readiness',
          kind: 'readiness',
          product: null,
          surface: 'recovery-readiness',
        }),
      ],
      ['-readiness:recovery-readiness ready-again'],
    ],
    [
      'a surface that could not be read changes nothing',
      obs({}, { 'version-truth': true }),
      obs({}),
      truth({}),
      [
        openDrift({
          key: 'readiness:recovery-readiness',
          kind: 'readiness',
          product: null,
          surface: 'recovery-readiness',
        }),
      ],
      [],
    ],
  ])('%s', (_story, current, previous, verified, open, expected) => {
    expect(detectDrift({ current, previous, truth: verified, open }).map(brief)).toEqual(expected);
  });

  it('carries the ledger position that established the expected version', () => {
    const [change] = detectDrift({
      current: obs({ gateway: '2.0' }),
      previous: undefined,
      truth: truth({ gateway: '1.5.0' }),
      open: [],
    });
    expect(change).toMatchObject({
      type: 'detected',
      ledgerPosition: 42,
      product: 'gateway',
      kind: 'version',
    });
  });
});

describe('foldDrift', () => {
  const detected = (driftId: string, key: string, tickAt: string): SnapshotEvent => ({
    type: 'DriftDetected',
    data: {
      driftId,
      target: 'prod',
      environment: 'prod',
      key,
      kind: 'version',
      product: key.slice(8),
      surface: null,
      basis: 'ledger',
      expected: '1',
      observed: '2',
      ledgerPosition: 1,
      snapshotId: 's',
      previousSnapshotId: null,
      tickAt,
      window: { from: null, to: tickAt },
      attribution: { kind: 'out-of-band' },
      supersedes: null,
    },
  });
  it('keeps what is still open and the latest tick it reflects', () => {
    const state = foldDrift([
      detected('a', 'version:x', '2026-11-26T08:00:00.000Z'),
      detected('b', 'version:y', '2026-11-26T08:15:00.000Z'),
      {
        type: 'DriftResolved',
        data: {
          driftId: 'a',
          target: 'prod',
          key: 'version:x',
          resolution: 'matches-ledger',
          observed: '1',
          snapshotId: 's2',
          tickAt: '2026-11-26T08:30:00.000Z',
          window: { from: null, to: '2026-11-26T08:30:00.000Z' },
          attribution: { kind: 'out-of-band' },
        },
      },
    ]);
    expect(state.open.map((d) => d.driftId)).toEqual(['b']);
    expect(state.lastTickAt).toBe('2026-11-26T08:30:00.000Z');
  });
  it('is empty for an empty stream', () => {
    expect(foldDrift([])).toEqual({ open: [], lastTickAt: null });
  });
});

describe('attribute', () => {
  const rollout = (over: Partial<RolloutWindow> = {}): RolloutWindow => ({
    rolloutId: 'r1',
    title: 'Upgrade gateway',
    products: ['gateway'],
    startedAt: '2026-11-26T08:00:00.000Z',
    endedAt: '2026-11-26T08:30:00.000Z',
    steps: [
      {
        stepId: 'schema',
        product: 'db',
        startedAt: '2026-11-26T08:01:00.000Z',
        endedAt: '2026-11-26T08:05:00.000Z',
      },
      {
        stepId: 'roll',
        product: 'gateway',
        startedAt: '2026-11-26T08:05:00.000Z',
        endedAt: '2026-11-26T08:20:00.000Z',
      },
    ],
    ...over,
  });
  const w = (from: string | null, to: string) => ({ from, to });

  it.each<[string, string | null, { from: string | null; to: string }, RolloutWindow[], unknown]>([
    [
      'no rollout at all: out of band',
      'gateway',
      w('2026-11-26T08:00:00Z', '2026-11-26T08:15:00Z'),
      [],
      { kind: 'out-of-band' },
    ],
    [
      'inside the window of the step moving that product',
      'gateway',
      w('2026-11-26T08:04:00Z', '2026-11-26T08:10:00Z'),
      [rollout()],
      { kind: 'rollout', rolloutId: 'r1', stepId: 'roll', title: 'Upgrade gateway' },
    ],
    [
      'after the rollout completed: out of band',
      'gateway',
      w('2026-11-26T08:31:00Z', '2026-11-26T08:45:00Z'),
      [rollout()],
      { kind: 'out-of-band' },
    ],
    [
      'a product the rollout does not move: out of band',
      'identity',
      w('2026-11-26T08:04:00Z', '2026-11-26T08:10:00Z'),
      [rollout()],
      { kind: 'out-of-band' },
    ],
    [
      'in a rollout still in flight, between steps',
      'gateway',
      w('2026-11-26T08:21:00Z', '2026-11-26T08:40:00Z'),
      [rollout({ endedAt: null })],
      { kind: 'rollout', rolloutId: 'r1', stepId: null, title: 'Upgrade gateway' },
    ],
    [
      'readiness drift (no product) during a rollout: the rollout, the latest step',
      null,
      w('2026-11-26T08:02:00Z', '2026-11-26T08:06:00Z'),
      [rollout()],
      { kind: 'rollout', rolloutId: 'r1', stepId: 'roll', title: 'Upgrade gateway' },
    ],
    [
      'the first snapshot ever (no previous): any rollout up to it',
      'gateway',
      w(null, '2026-11-26T08:10:00Z'),
      [rollout()],
      { kind: 'rollout', rolloutId: 'r1', stepId: 'roll', title: 'Upgrade gateway' },
    ],
    [
      'two overlapping rollouts: the latest started',
      'gateway',
      w('2026-11-26T08:10:00Z', '2026-11-26T08:12:00Z'),
      [
        rollout(),
        rollout({ rolloutId: 'r2', title: null, startedAt: '2026-11-26T08:09:00.000Z', steps: [] }),
      ],
      { kind: 'rollout', rolloutId: 'r2', stepId: null, title: null },
    ],
  ])('%s', (_story, product, window, rollouts, expected) => {
    expect(attribute(product, window, rollouts)).toEqual(expected);
  });
});
