import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidTransition, NotFound } from '../../src/common/errors.js';
import { decide, type RolloutCommand } from '../../src/rollouts/rollout.decide.js';
import {
  type RecordedRolloutEvent,
  ROLLOUT_EVENT_TYPES,
  type RolloutEvent,
  type RolloutEventType,
} from '../../src/rollouts/rollout.events.js';
import { type Plan, SURFACES } from '../../src/rollouts/rollout.plan.js';
import {
  evolve,
  foldRollout,
  initialState,
  isClosed,
  type RolloutState,
  type RolloutStatus,
} from '../../src/rollouts/rollout.state.js';
import { recordedAtOf as at, recorded } from '../support/decider-spec.js';
import { ev, history, plan, ROLLOUT_ID, revisedPlan } from '../support/rollout-events.js';

const fold = (events: RolloutEvent[]) => foldRollout(ROLLOUT_ID, recorded(events));

describe('evolve: a whole rollout', () => {
  it('folds plan, readbacks, steps, path verification and completion into the rollout state', () => {
    const state = fold([
      ev.planned(),
      ev.approved('alice', 'ship it'),
      ev.readback({
        phase: 'pre',
        surface: 'version-truth',
        expected: { api: '1.9.0' },
        observed: { api: '1.9.0' },
        verdict: 'pass',
      }),
      ev.readback({
        phase: 'pre',
        surface: 'observability-readiness',
        expected: true,
        observed: true,
        verdict: 'pass',
      }),
      ev.started(),
      ev.stepStarted('schema'),
      ev.stepCompleted('schema'),
      ev.stepStarted('api'),
      ev.readback({
        phase: 'during',
        surface: 'contracts-drift',
        expected: [],
        observed: [],
        verdict: 'pass',
        stepId: 'api',
      }),
      ev.stepCompleted('api'),
      ev.stepStarted('docs'),
      ev.stepCompleted('docs'),
      ev.readback({
        phase: 'post',
        surface: 'version-truth',
        expected: { api: '2.0.0' },
        observed: { api: '2.0.0' },
        verdict: 'pass',
      }),
      ev.pathVerified('operator lists rollouts', 'pass', 'run 42'),
      ev.completed(),
    ]);

    expect(state).toEqual<RolloutState>({
      id: ROLLOUT_ID,
      exists: true,
      status: 'completed',
      plan,
      planRevision: 1,
      approvals: [{ approver: 'alice', comment: 'ship it', at: at(2) }],
      // In plan order (by `order`), not in the order the plan lists them.
      steps: [
        {
          id: 'schema',
          planned: true,
          status: 'completed',
          attempts: 1,
          startedAt: at(6),
          completedAt: at(7),
        },
        { id: 'api', planned: true, status: 'completed', attempts: 1, startedAt: at(8), completedAt: at(10) },
        {
          id: 'docs',
          planned: true,
          status: 'completed',
          attempts: 1,
          startedAt: at(11),
          completedAt: at(12),
        },
      ],
      readbacks: [
        {
          phase: 'pre',
          surface: 'version-truth',
          expected: { api: '1.9.0' },
          observed: { api: '1.9.0' },
          verdict: 'pass',
          at: at(3),
        },
        {
          phase: 'pre',
          surface: 'observability-readiness',
          expected: true,
          observed: true,
          verdict: 'pass',
          at: at(4),
        },
        {
          phase: 'during',
          surface: 'contracts-drift',
          expected: [],
          observed: [],
          verdict: 'pass',
          stepId: 'api',
          at: at(9),
        },
        {
          phase: 'post',
          surface: 'version-truth',
          expected: { api: '2.0.0' },
          observed: { api: '2.0.0' },
          verdict: 'pass',
          at: at(13),
        },
      ],
      pathVerifications: [
        { path: 'operator lists rollouts', verdict: 'pass', evidence: 'run 42', at: at(14) },
      ],
      rollbacks: [],
      createdAt: at(1),
      startedAt: at(5),
      completedAt: at(15),
      updatedAt: at(15),
      version: 15,
    });
  });

  it('starts from a rollout that does not exist, at version 0', () => {
    expect(foldRollout(ROLLOUT_ID, [])).toStrictEqual(initialState(ROLLOUT_ID));
    expect(initialState(ROLLOUT_ID)).toMatchObject({ exists: false, version: 0, planRevision: 0, steps: [] });
  });

  it('takes the rollout id from the plan event', () => {
    expect(foldRollout('placeholder', recorded([ev.planned(plan, 'r-42')]))).toMatchObject({
      id: 'r-42',
      exists: true,
      status: 'planned',
    });
  });

  it('aborts with the reason and time', () => {
    const state = fold(history.abortedInProgress);
    expect(state).toMatchObject({ status: 'aborted', abortReason: 'change window closed', abortedAt: at(4) });
    expect(state.completedAt).toBeUndefined();
    expect(isClosed(state)).toBe(true);
  });

  it('is closed only when completed or aborted', () => {
    expect(isClosed(fold(history.missing))).toBe(false);
    expect(isClosed(fold(history.planned))).toBe(false);
    expect(isClosed(fold(history.inProgress))).toBe(false);
    expect(isClosed(fold(history.rollingBack))).toBe(false);
    expect(isClosed(fold(history.completed))).toBe(true);
    expect(isClosed(fold(history.abortedWhilePlanned))).toBe(true);
  });
});

describe('evolve: plan revisions', () => {
  it('replaces the plan, resets steps and approvals, and bumps the revision', () => {
    const state = fold([
      ev.planned(),
      ev.approved('alice'),
      ev.approved('bob'),
      ev.revised(revisedPlan, 'docs first'),
    ]);
    expect(state).toMatchObject({
      plan: revisedPlan,
      planRevision: 2,
      approvals: [],
      status: 'planned',
      version: 4,
    });
    expect(state.steps).toStrictEqual([
      { id: 'docs', planned: true, status: 'pending', attempts: 0 },
      { id: 'api', planned: true, status: 'pending', attempts: 0 },
    ]);
  });

  it('counts every revision, and keeps approvals given after the last one', () => {
    const state = fold([
      ev.planned(),
      ev.revised(),
      ev.approved('alice'),
      ev.revised(plan),
      ev.approved('bob', 'ok'),
    ]);
    expect(state.planRevision).toBe(3);
    expect(state.plan).toBe(plan);
    expect(state.approvals).toEqual([{ approver: 'bob', comment: 'ok', at: at(5) }]);
    expect(state.steps.map((s) => s.id)).toEqual(['schema', 'api', 'docs']);
  });

  it('has no steps for a plan without a sequence', () => {
    expect(fold([ev.planned({ title: 'bump only' })]).steps).toEqual([]);
  });
});

describe('evolve: steps', () => {
  it('appends a step that is not in the plan as unplanned, after the planned ones', () => {
    const state = fold([...history.inProgress, ev.stepStarted('hotfix'), ev.stepCompleted('hotfix')]);
    expect(state.steps.map((s) => [s.id, s.planned, s.status])).toEqual([
      ['schema', true, 'pending'],
      ['api', true, 'pending'],
      ['docs', true, 'pending'],
      ['hotfix', false, 'completed'],
    ]);
    expect(state.steps[3]).toEqual({
      id: 'hotfix',
      planned: false,
      status: 'completed',
      attempts: 1,
      startedAt: at(3),
      completedAt: at(4),
    });
  });

  it('records a failure with its reason and time', () => {
    const state = fold([
      ...history.inProgress,
      ev.stepStarted('schema'),
      ev.stepFailed('schema', 'lock timeout'),
    ]);
    expect(state.steps[0]).toEqual({
      id: 'schema',
      planned: true,
      status: 'failed',
      attempts: 1,
      startedAt: at(3),
      failedAt: at(4),
      failureReason: 'lock timeout',
    });
  });

  it('counts attempts across a retry and clears the earlier failure', () => {
    const state = fold([
      ...history.inProgress,
      ev.stepStarted('schema'),
      ev.stepFailed('schema'),
      ev.stepStarted('schema'),
      ev.stepCompleted('schema'),
    ]);
    expect(state.steps[0]).toEqual({
      id: 'schema',
      planned: true,
      status: 'completed',
      attempts: 2,
      startedAt: at(5),
      completedAt: at(6),
    });
    expect(state.steps[0]?.failedAt).toBeUndefined();
    expect(state.steps[0]?.failureReason).toBeUndefined();
  });

  it('changes only the step the event names', () => {
    const state = fold([...history.inProgress, ev.stepStarted('api')]);
    expect(state.steps.map((s) => s.status)).toEqual(['pending', 'running', 'pending']);
  });
});

describe('evolve: rollbacks', () => {
  it('moves to rolling_back and back to in_progress, stamping the rollback it completes', () => {
    const rolling = fold([
      ...history.inProgress,
      ev.stepStarted('api'),
      ev.rollbackStarted('api errors', 'schema'),
    ]);
    expect(rolling.status).toBe('rolling_back');
    expect(rolling.rollbacks).toStrictEqual([{ reason: 'api errors', toStepId: 'schema', startedAt: at(4) }]);

    const done = fold([
      ...history.inProgress,
      ev.stepStarted('api'),
      ev.rollbackStarted('api errors', 'schema'),
      ev.rollbackCompleted(),
    ]);
    expect(done.status).toBe('in_progress');
    expect(done.rollbacks).toStrictEqual([
      { reason: 'api errors', toStepId: 'schema', startedAt: at(4), completedAt: at(5) },
    ]);
  });

  it('stamps only the last rollback when a second one completes', () => {
    const state = fold([
      ...history.inProgress,
      ev.rollbackStarted('first'),
      ev.rollbackCompleted(),
      ev.rollbackStarted('second'),
      ev.rollbackCompleted(),
    ]);
    expect(state.status).toBe('in_progress');
    expect(state.rollbacks).toStrictEqual([
      { reason: 'first', startedAt: at(3), completedAt: at(4) },
      { reason: 'second', startedAt: at(5), completedAt: at(6) },
    ]);
  });

  it('leaves an open rollback without completedAt', () => {
    const state = fold([
      ...history.inProgress,
      ev.rollbackStarted('first'),
      ev.rollbackCompleted(),
      ev.rollbackStarted('second'),
    ]);
    expect(state.rollbacks[1]).toStrictEqual({ reason: 'second', startedAt: at(5) });
  });
});

describe('evolve: versions and times', () => {
  it('takes the version and updatedAt of each event it folds', () => {
    const events = recorded([ev.planned(), ev.approved(), ev.started()]);
    let state = initialState(ROLLOUT_ID);
    for (const event of events) {
      state = evolve(state, event);
      expect(state.version).toBe(event.streamVersion);
      expect(state.updatedAt).toBe(event.recordedAt);
    }
    expect(state).toMatchObject({ createdAt: at(1), startedAt: at(3), version: 3 });
  });

  it('follows the stream version, not the number of events folded', () => {
    const base = fold(history.inProgress);
    const next = evolve(base, {
      ...ev.stepStarted('schema'),
      streamVersion: 42,
      recordedAt: '2026-02-01T00:00:00.000Z',
    });
    expect(next.version).toBe(42);
    expect(next.updatedAt).toBe('2026-02-01T00:00:00.000Z');
    expect(base.version).toBe(2);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties: any sequence of commands, decided and folded as the service would.

const stepIds = ['a', 'b', 'c'] as const;
const stepIdArb = fc.constantFrom(...stepIds, 'x');
const textArb = fc.constantFrom('why', 'because', 'evidence #1');
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const jsonArb = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.constantFrom('1.0', '2.0'),
  fc.constant({ ok: true }),
);

const planArb: fc.Arbitrary<Plan> = fc
  .uniqueArray(fc.record({ id: fc.constantFrom(...stepIds), order: fc.nat(5) }), {
    selector: (s) => s.id,
    maxLength: 3,
  })
  .map((sequence) => ({ sequence }));

const commandArb: fc.Arbitrary<RolloutCommand> = fc.oneof(
  {
    weight: 1,
    arbitrary: planArb.map((p) => ({ type: 'PlanRollout' as const, rolloutId: ROLLOUT_ID, plan: p })),
  },
  {
    weight: 1,
    arbitrary: fc.record({ type: fc.constant('RevisePlan' as const), plan: planArb, reason: maybe(textArb) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('ApprovePlan' as const),
      approver: textArb,
      comment: maybe(textArb),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('RecordReadback' as const),
      phase: fc.constantFrom('pre' as const, 'during' as const, 'post' as const),
      surface: fc.constantFrom(...SURFACES),
      expected: jsonArb,
      observed: jsonArb,
      verdict: fc.constantFrom('pass' as const, 'fail' as const, 'warn' as const),
      stepId: maybe(stepIdArb),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ type: 'StartRollout' as const }) },
  { weight: 6, arbitrary: fc.record({ type: fc.constant('StartStep' as const), stepId: stepIdArb }) },
  { weight: 5, arbitrary: fc.record({ type: fc.constant('CompleteStep' as const), stepId: stepIdArb }) },
  {
    weight: 2,
    arbitrary: fc.record({ type: fc.constant('FailStep' as const), stepId: stepIdArb, reason: textArb }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('VerifyPath' as const),
      path: textArb,
      verdict: fc.constantFrom('pass' as const, 'fail' as const),
      evidence: maybe(textArb),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant('StartRollback' as const),
      reason: textArb,
      toStepId: maybe(stepIdArb),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ type: 'CompleteRollback' as const }) },
  { weight: 1, arbitrary: fc.constant({ type: 'CompleteRollout' as const }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('AbortRollout' as const), reason: textArb }) },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('RecordRollback' as const),
      reason: textArb,
      toStepId: maybe(stepIdArb),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('RecordExternalFact' as const),
      fact: fc.record({
        kind: fc.constantFrom('incident.detected', 'environment.modified'),
        cdeventType: fc.constant('dev.cdevents.incident.detected.0.2.0'),
        source: textArb,
        cloudEventId: textArb,
        subjectId: textArb,
        occurredAt: fc.constant('2026-01-01T00:00:00.000Z'),
        summary: textArb,
        environment: maybe(textArb),
      }),
    }),
  },
);

/**
 * Most runs begin with a planned (and often started) rollout, so that deep states are reached
 * often; the rest start from nothing.
 */
const planThenStart: RolloutCommand[] = [
  { type: 'PlanRollout', rolloutId: ROLLOUT_ID, plan: { sequence: [{ id: 'a', order: 1 }] } },
  { type: 'StartRollout' },
];
const scenarioArb = fc
  .tuple(fc.constantFrom(0, 1, 2), fc.array(commandArb, { maxLength: 40 }))
  .map(([warmUp, commands]): RolloutCommand[] => [...planThenStart.slice(0, warmUp), ...commands]);

/** A probe of every command type, for checking what a state will still accept. */
const probes: RolloutCommand[] = fc.sample(commandArb, { numRuns: 300, seed: 7 });

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

const hasUndefined = (value: unknown): boolean =>
  value !== null &&
  typeof value === 'object' &&
  Object.values(value).some((v) => v === undefined || hasUndefined(v));

interface Run {
  state: RolloutState;
  events: RecordedRolloutEvent[];
}

/**
 * Runs commands as the service would (decide on the current state, then evolve with the next
 * stream version), checking on the way what must hold after every command.
 */
function run(commands: RolloutCommand[]): Run {
  // Frozen inputs: decide and evolve throw (ESM is strict mode) if they mutate state or events.
  let state = deepFreeze(initialState(ROLLOUT_ID));
  const events: RecordedRolloutEvent[] = [];
  for (const command of commands) {
    const before = state;
    let produced: RolloutEvent[];
    try {
      produced = decide(command, state);
    } catch (error) {
      if (!(error instanceof InvalidTransition || error instanceof NotFound)) throw error;
      // A missing rollout is the only thing that is "not found"; anything else is a transition.
      expect(error instanceof NotFound).toBe(!state.exists && command.type !== 'PlanRollout');
      continue;
    }
    // A closed rollout never accepts another event.
    expect(isClosed(before)).toBe(false);
    expect(produced.length).toBeGreaterThan(0);
    for (const event of produced) {
      expect(hasUndefined(event), `undefined field in ${JSON.stringify(event)}`).toBe(false);
      const stamped = deepFreeze({
        ...event,
        streamVersion: events.length + 1,
        recordedAt: at(events.length + 1),
      });
      events.push(stamped);
      state = deepFreeze(evolve(state, stamped));
    }
    expect(state.version).toBe(events.length);
    expect(new Set(state.steps.map((s) => s.id)).size).toBe(state.steps.length);
  }
  return { state, events };
}

describe('decide then evolve: properties', () => {
  it('never throws anything but domain errors, and the version counts the events', () => {
    const seenTypes = new Set<RolloutEventType>();
    const seenStatuses = new Set<RolloutStatus>();
    fc.assert(
      fc.property(scenarioArb, (commands) => {
        const { state, events } = run(commands);
        expect(state.version).toBe(events.length);
        for (const e of events) seenTypes.add(e.type);
        seenStatuses.add(state.status);
      }),
      { numRuns: 500 },
    );
    // The generator must reach every event and status, or the property proves little.
    expect([...seenTypes].sort()).toEqual([...ROLLOUT_EVENT_TYPES].sort());
    expect([...seenStatuses].sort()).toEqual([
      'aborted',
      'completed',
      'in_progress',
      'planned',
      'rolling_back',
    ]);
  });

  it('a closed rollout refuses every command with InvalidTransition', () => {
    let closedRuns = 0;
    fc.assert(
      fc.property(scenarioArb, (commands) => {
        const { state } = run(commands);
        if (!isClosed(state)) return;
        closedRuns++;
        for (const probe of probes) {
          expect(() => decide(probe, state)).toThrow(InvalidTransition);
        }
      }),
      { numRuns: 300 },
    );
    expect(closedRuns).toBeGreaterThan(10);
  });

  it('folding the recorded events gives the state built command by command, every time (purity)', () => {
    fc.assert(
      fc.property(scenarioArb, (commands) => {
        const { state, events } = run(commands);
        const first = foldRollout(ROLLOUT_ID, events);
        const second = foldRollout(ROLLOUT_ID, events);
        expect(first).toStrictEqual(second);
        expect(first).toStrictEqual(state);
        expect(first).not.toBe(second);
      }),
      { numRuns: 300 },
    );
  });

  it('the probes cover every command type', () => {
    expect(new Set(probes.map((p) => p.type)).size).toBe(15);
  });
});
