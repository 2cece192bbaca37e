import { describe, expect, it } from 'vitest';
import { InvalidTransition, NotFound } from '../../src/common/errors.js';
import { decide, type RolloutCommand } from '../../src/rollouts/rollout.decide.js';
import type { RolloutEvent } from '../../src/rollouts/rollout.events.js';
import { evolve, initialState } from '../../src/rollouts/rollout.state.js';
import { DeciderSpecification } from '../support/decider-spec.js';
import { ev, history, plan, ROLLOUT_ID, revisedPlan } from '../support/rollout-events.js';

const spec = DeciderSpecification.for({ decide, evolve, initialState: () => initialState(ROLLOUT_ID) });

/** One command of every type, with every optional field set. */
const everyCommand: RolloutCommand[] = [
  { type: 'PlanRollout', rolloutId: ROLLOUT_ID, plan },
  { type: 'RevisePlan', plan: revisedPlan, reason: 'docs first' },
  { type: 'ApprovePlan', approver: 'alice', comment: 'ok' },
  {
    type: 'RecordReadback',
    phase: 'post',
    surface: 'version-truth',
    expected: { api: '2.0.0' },
    observed: { api: '2.0.0' },
    verdict: 'pass',
    stepId: 'api',
  },
  { type: 'StartRollout' },
  { type: 'StartStep', stepId: 'docs' },
  { type: 'CompleteStep', stepId: 'schema' },
  { type: 'FailStep', stepId: 'schema', reason: 'timeout' },
  { type: 'VerifyPath', path: 'operator lists rollouts', verdict: 'pass', evidence: 'run 42' },
  { type: 'StartRollback', reason: 'errors', toStepId: 'schema' },
  { type: 'CompleteRollback' },
  { type: 'CompleteRollout' },
  { type: 'AbortRollout', reason: 'stop' },
];
const byType = (command: RolloutCommand) => [command.type, command] as const;

/** The statuses in which something can still be recorded, with a history that reaches each. */
const open = [
  ['planned', history.planned],
  ['in_progress', history.inProgress],
  ['rolling_back', history.rollingBack],
] as const;

describe('decide: PlanRollout', () => {
  it('plans a new rollout with its id and plan', () => {
    spec
      .given([])
      .when({ type: 'PlanRollout', rolloutId: ROLLOUT_ID, plan })
      .then([{ type: 'RolloutPlanned', data: { rolloutId: ROLLOUT_ID, plan } }]);
  });

  it('records an empty plan as it is (the rulebook reports what is missing)', () => {
    spec
      .given([])
      .when({ type: 'PlanRollout', rolloutId: ROLLOUT_ID, plan: {} })
      .then([{ type: 'RolloutPlanned', data: { rolloutId: ROLLOUT_ID, plan: {} } }]);
  });

  it.each(open)('refuses to plan a rollout that already exists (%s)', (status, given) => {
    const error = spec
      .given(given)
      .when({ type: 'PlanRollout', rolloutId: ROLLOUT_ID, plan })
      .thenThrows(InvalidTransition, `rollout ${ROLLOUT_ID} already exists`);
    expect(error.state).toBe(status);
  });
});

describe('decide: a rollout that does not exist', () => {
  it.each(everyCommand.filter((c) => c.type !== 'PlanRollout').map(byType))(
    '%s is refused as not found',
    (_, command) => {
      const error = spec
        .given(history.missing)
        .when(command)
        .thenThrows(NotFound, `rollout ${ROLLOUT_ID} not found`);
      expect(error).toMatchObject({ code: 'NotFound', resource: 'rollout', id: ROLLOUT_ID });
    },
  );
});

describe('decide: a closed rollout accepts nothing', () => {
  const closed = [
    ['completed', history.completed],
    ['aborted', history.abortedWhilePlanned],
    ['aborted', history.abortedInProgress],
  ] as const;

  describe.each(closed)('%s', (status, given) => {
    it.each(everyCommand.filter((c) => c.type !== 'PlanRollout').map(byType))(
      '%s is refused',
      (_, command) => {
        const error = spec
          .given(given)
          .when(command)
          .thenThrows(InvalidTransition, `the rollout is ${status}: nothing more can be recorded on it`);
        expect(error.state).toBe(status);
      },
    );

    it('PlanRollout is refused: the rollout exists', () => {
      spec
        .given(given)
        .when({ type: 'PlanRollout', rolloutId: ROLLOUT_ID, plan })
        .thenThrows(InvalidTransition, 'already exists');
    });
  });
});

describe('decide: RevisePlan', () => {
  it('revises a planned rollout, with the reason', () => {
    spec
      .given(history.planned)
      .when({ type: 'RevisePlan', plan: revisedPlan, reason: 'docs first' })
      .then([{ type: 'PlanRevised', data: { plan: revisedPlan, reason: 'docs first' } }]);
  });

  it('records no reason field when none is given', () => {
    spec
      .given(history.planned)
      .when({ type: 'RevisePlan', plan: revisedPlan, reason: undefined })
      .then([{ type: 'PlanRevised', data: { plan: revisedPlan } }]);
  });

  it('revises an approved plan that has not started (approval is then void)', () => {
    spec
      .given([ev.planned(), ev.approved()])
      .when({ type: 'RevisePlan', plan: revisedPlan })
      .then([{ type: 'PlanRevised', data: { plan: revisedPlan } }]);
  });

  it.each([
    ['in_progress', history.inProgress],
    ['rolling_back', history.rollingBack],
  ] as const)('refuses once the rollout has started (%s)', (status, given) => {
    const error = spec
      .given(given)
      .when({ type: 'RevisePlan', plan: revisedPlan })
      .thenThrows(InvalidTransition, 'the plan can only be revised before the rollout starts');
    expect(error.state).toBe(status);
  });
});

describe('decide: ApprovePlan', () => {
  it('approves a planned rollout, with the comment', () => {
    spec
      .given(history.planned)
      .when({ type: 'ApprovePlan', approver: 'alice', comment: 'looks safe' })
      .then([{ type: 'PlanApproved', data: { approver: 'alice', comment: 'looks safe' } }]);
  });

  it('records no comment field when none is given', () => {
    spec
      .given(history.planned)
      .when({ type: 'ApprovePlan', approver: 'alice', comment: undefined })
      .then([{ type: 'PlanApproved', data: { approver: 'alice' } }]);
  });

  it('records a second approver', () => {
    spec
      .given([ev.planned(), ev.approved('alice')])
      .when({ type: 'ApprovePlan', approver: 'bob' })
      .then([{ type: 'PlanApproved', data: { approver: 'bob' } }]);
  });

  it.each([
    ['in_progress', history.inProgress],
    ['rolling_back', history.rollingBack],
  ] as const)('refuses once the rollout has started (%s)', (status, given) => {
    const error = spec
      .given(given)
      .when({ type: 'ApprovePlan', approver: 'alice' })
      .thenThrows(InvalidTransition, 'a plan can only be approved before the rollout starts');
    expect(error.state).toBe(status);
  });
});

describe('decide: RecordReadback', () => {
  it.each(open)('records a readback while %s, with its step', (_, given) => {
    spec
      .given(given)
      .when({
        type: 'RecordReadback',
        phase: 'during',
        surface: 'contracts-drift',
        expected: { drift: [] },
        observed: { drift: ['api'] },
        verdict: 'fail',
        stepId: 'api',
      })
      .then([
        {
          type: 'ReadbackRecorded',
          data: {
            phase: 'during',
            surface: 'contracts-drift',
            expected: { drift: [] },
            observed: { drift: ['api'] },
            verdict: 'fail',
            stepId: 'api',
          },
        },
      ]);
  });

  it('records no stepId field when none is given, and keeps a null observation', () => {
    spec
      .given(history.planned)
      .when({
        type: 'RecordReadback',
        phase: 'pre',
        surface: 'recovery-readiness',
        expected: { ready: true },
        observed: null,
        verdict: 'warn',
        stepId: undefined,
      })
      .then([
        {
          type: 'ReadbackRecorded',
          data: {
            phase: 'pre',
            surface: 'recovery-readiness',
            expected: { ready: true },
            observed: null,
            verdict: 'warn',
          },
        },
      ]);
  });
});

describe('decide: VerifyPath', () => {
  it.each(open)('records a path verification while %s, with its evidence', (_, given) => {
    spec
      .given(given)
      .when({ type: 'VerifyPath', path: 'operator lists rollouts', verdict: 'fail', evidence: 'HTTP 500' })
      .then([
        {
          type: 'PathVerified',
          data: { path: 'operator lists rollouts', verdict: 'fail', evidence: 'HTTP 500' },
        },
      ]);
  });

  it('records no evidence field when none is given', () => {
    spec
      .given(history.inProgress)
      .when({ type: 'VerifyPath', path: 'user signs in', verdict: 'pass', evidence: undefined })
      .then([{ type: 'PathVerified', data: { path: 'user signs in', verdict: 'pass' } }]);
  });
});

describe('decide: StartRollout', () => {
  it('starts a planned rollout', () => {
    spec
      .given(history.planned)
      .when({ type: 'StartRollout' })
      .then([{ type: 'RolloutStarted', data: {} }]);
  });

  it('starts even after a failed pre-check and without approval (recorded, the rulebook reports it)', () => {
    spec
      .given([
        ev.planned(),
        ev.readback({
          phase: 'pre',
          surface: 'version-truth',
          expected: 'a',
          observed: 'b',
          verdict: 'fail',
        }),
      ])
      .when({ type: 'StartRollout' })
      .then([{ type: 'RolloutStarted', data: {} }]);
  });

  it.each([
    ['in_progress', history.inProgress],
    ['rolling_back', history.rollingBack],
  ] as const)('refuses to start twice (%s)', (status, given) => {
    const error = spec
      .given(given)
      .when({ type: 'StartRollout' })
      .thenThrows(InvalidTransition, 'the rollout has already started');
    expect(error.state).toBe(status);
  });
});

describe('decide: StartStep', () => {
  const startStep = (stepId: string): RolloutCommand => ({ type: 'StartStep', stepId });

  it('starts a planned step', () => {
    spec
      .given(history.inProgress)
      .when(startStep('schema'))
      .then([{ type: 'StepStarted', data: { stepId: 'schema' } }]);
  });

  it('starts a step out of plan order (recorded, the rulebook reports it)', () => {
    spec
      .given(history.inProgress)
      .when(startStep('docs'))
      .then([{ type: 'StepStarted', data: { stepId: 'docs' } }]);
  });

  it('starts a step that is not in the plan (recorded as unplanned)', () => {
    spec
      .given(history.inProgress)
      .when(startStep('hotfix'))
      .then([{ type: 'StepStarted', data: { stepId: 'hotfix' } }]);
  });

  it('starts a second step while another runs', () => {
    spec
      .given([...history.inProgress, ev.stepStarted('schema')])
      .when(startStep('api'))
      .then([{ type: 'StepStarted', data: { stepId: 'api' } }]);
  });

  it('retries a step that failed', () => {
    spec
      .given([...history.inProgress, ev.stepStarted('schema'), ev.stepFailed('schema')])
      .when(startStep('schema'))
      .then([{ type: 'StepStarted', data: { stepId: 'schema' } }]);
  });

  it('starts steps again once a rollback has completed', () => {
    spec
      .given([...history.rollingBack, ev.rollbackCompleted()])
      .when(startStep('schema'))
      .then([{ type: 'StepStarted', data: { stepId: 'schema' } }]);
  });

  it('refuses before the rollout has started', () => {
    const error = spec
      .given(history.planned)
      .when(startStep('schema'))
      .thenThrows(InvalidTransition, 'start the rollout before its steps');
    expect(error.state).toBe('planned');
  });

  it('refuses during a rollback', () => {
    const error = spec
      .given(history.rollingBack)
      .when(startStep('api'))
      .thenThrows(InvalidTransition, 'a rollback is under way: complete it before starting steps');
    expect(error.state).toBe('rolling_back');
  });

  it('refuses a step that is already running', () => {
    spec
      .given([...history.inProgress, ev.stepStarted('schema')])
      .when(startStep('schema'))
      .thenThrows(InvalidTransition, 'step schema is already running');
  });

  it('refuses an unplanned step that is already running', () => {
    spec
      .given([...history.inProgress, ev.stepStarted('hotfix')])
      .when(startStep('hotfix'))
      .thenThrows(InvalidTransition, 'step hotfix is already running');
  });

  it('refuses a step that has already completed', () => {
    spec
      .given([...history.inProgress, ev.stepStarted('schema'), ev.stepCompleted('schema')])
      .when(startStep('schema'))
      .thenThrows(InvalidTransition, 'step schema has already completed');
  });
});

describe.each([
  {
    type: 'CompleteStep' as const,
    verb: 'complete',
    command: (stepId: string): RolloutCommand => ({ type: 'CompleteStep', stepId }),
    event: (stepId: string): RolloutEvent => ({ type: 'StepCompleted', data: { stepId } }),
  },
  {
    type: 'FailStep' as const,
    verb: 'fail',
    command: (stepId: string): RolloutCommand => ({ type: 'FailStep', stepId, reason: 'timeout' }),
    event: (stepId: string): RolloutEvent => ({ type: 'StepFailed', data: { stepId, reason: 'timeout' } }),
  },
])('decide: $type', ({ verb, command, event }) => {
  it(`${verb}s a running step`, () => {
    spec
      .given([...history.inProgress, ev.stepStarted('schema')])
      .when(command('schema'))
      .then([event('schema')]);
  });

  it(`${verb}s a running unplanned step`, () => {
    spec
      .given([...history.inProgress, ev.stepStarted('hotfix')])
      .when(command('hotfix'))
      .then([event('hotfix')]);
  });

  it(`${verb}s a retried step that is running again`, () => {
    spec
      .given([
        ...history.inProgress,
        ev.stepStarted('schema'),
        ev.stepFailed('schema'),
        ev.stepStarted('schema'),
      ])
      .when(command('schema'))
      .then([event('schema')]);
  });

  it(`${verb}s a step that was running when the rollback started (what really happened)`, () => {
    spec
      .given([...history.inProgress, ev.stepStarted('api'), ev.rollbackStarted()])
      .when(command('api'))
      .then([event('api')]);
  });

  it('refuses a step that never started (not in the plan)', () => {
    const error = spec
      .given(history.inProgress)
      .when(command('hotfix'))
      .thenThrows(InvalidTransition, `step hotfix never started: only a running step can ${verb}`);
    expect(error.state).toBe('in_progress');
  });

  it('refuses a planned step that is still pending', () => {
    spec
      .given(history.inProgress)
      .when(command('api'))
      .thenThrows(InvalidTransition, `step api is pending: only a running step can ${verb}`);
  });

  it('refuses a pending step before the rollout has started', () => {
    const error = spec
      .given(history.planned)
      .when(command('schema'))
      .thenThrows(InvalidTransition, `step schema is pending: only a running step can ${verb}`);
    expect(error.state).toBe('planned');
  });

  it('refuses a step that has completed', () => {
    spec
      .given([...history.inProgress, ev.stepStarted('schema'), ev.stepCompleted('schema')])
      .when(command('schema'))
      .thenThrows(InvalidTransition, `step schema is completed: only a running step can ${verb}`);
  });

  it('refuses a step that has failed', () => {
    spec
      .given([...history.inProgress, ev.stepStarted('schema'), ev.stepFailed('schema')])
      .when(command('schema'))
      .thenThrows(InvalidTransition, `step schema is failed: only a running step can ${verb}`);
  });

  it('refuses a step that failed, during the rollback it caused', () => {
    const error = spec
      .given(history.rollingBack)
      .when(command('schema'))
      .thenThrows(InvalidTransition, `step schema is failed: only a running step can ${verb}`);
    expect(error.state).toBe('rolling_back');
  });
});

describe('decide: StartRollback', () => {
  it('starts a rollback to a step', () => {
    spec
      .given([...history.inProgress, ev.stepStarted('schema'), ev.stepCompleted('schema')])
      .when({ type: 'StartRollback', reason: 'contracts drift', toStepId: 'schema' })
      .then([{ type: 'RollbackStarted', data: { reason: 'contracts drift', toStepId: 'schema' } }]);
  });

  it('records no toStepId field when no target is given (recorded, the rulebook reports it)', () => {
    spec
      .given(history.inProgress)
      .when({ type: 'StartRollback', reason: 'contracts drift', toStepId: undefined })
      .then([{ type: 'RollbackStarted', data: { reason: 'contracts drift' } }]);
  });

  it('starts a rollback while a step is still running', () => {
    spec
      .given([...history.inProgress, ev.stepStarted('api')])
      .when({ type: 'StartRollback', reason: 'api errors' })
      .then([{ type: 'RollbackStarted', data: { reason: 'api errors' } }]);
  });

  it('starts a second rollback once the first has completed', () => {
    spec
      .given([...history.rollingBack, ev.rollbackCompleted()])
      .when({ type: 'StartRollback', reason: 'again' })
      .then([{ type: 'RollbackStarted', data: { reason: 'again' } }]);
  });

  it('refuses before the rollout has started', () => {
    const error = spec
      .given(history.planned)
      .when({ type: 'StartRollback', reason: 'cold feet' })
      .thenThrows(InvalidTransition, 'nothing to roll back: the rollout has not started');
    expect(error.state).toBe('planned');
  });

  it('refuses while a rollback is already under way', () => {
    const error = spec
      .given(history.rollingBack)
      .when({ type: 'StartRollback', reason: 'again', toStepId: 'schema' })
      .thenThrows(InvalidTransition, 'a rollback is already under way');
    expect(error.state).toBe('rolling_back');
  });
});

describe('decide: CompleteRollback', () => {
  it('completes the rollback under way', () => {
    spec
      .given(history.rollingBack)
      .when({ type: 'CompleteRollback' })
      .then([{ type: 'RollbackCompleted', data: {} }]);
  });

  it.each([
    ['planned', history.planned],
    ['in_progress', history.inProgress],
    ['in_progress', [...history.rollingBack, ev.rollbackCompleted()]],
  ] as const)('refuses without a rollback under way (%s)', (status, given) => {
    const error = spec
      .given(given)
      .when({ type: 'CompleteRollback' })
      .thenThrows(InvalidTransition, 'no rollback is under way');
    expect(error.state).toBe(status);
  });
});

describe('decide: CompleteRollout', () => {
  it('completes a rollout whose steps have all completed', () => {
    spec
      .given([
        ...history.inProgress,
        ...['schema', 'api', 'docs'].flatMap((id) => [ev.stepStarted(id), ev.stepCompleted(id)]),
        ev.pathVerified('operator lists rollouts'),
      ])
      .when({ type: 'CompleteRollout' })
      .then([{ type: 'RolloutCompleted', data: {} }]);
  });

  it('completes a rollout with pending and failed steps (recorded, the rulebook reports it)', () => {
    spec
      .given([...history.inProgress, ev.stepStarted('schema'), ev.stepFailed('schema')])
      .when({ type: 'CompleteRollout' })
      .then([{ type: 'RolloutCompleted', data: {} }]);
  });

  it('completes a rollout after its rollback has completed', () => {
    spec
      .given([...history.rollingBack, ev.rollbackCompleted()])
      .when({ type: 'CompleteRollout' })
      .then([{ type: 'RolloutCompleted', data: {} }]);
  });

  it('refuses before the rollout has started', () => {
    const error = spec
      .given(history.planned)
      .when({ type: 'CompleteRollout' })
      .thenThrows(InvalidTransition, 'the rollout has not started');
    expect(error.state).toBe('planned');
  });

  it('refuses during a rollback', () => {
    const error = spec
      .given(history.rollingBack)
      .when({ type: 'CompleteRollout' })
      .thenThrows(InvalidTransition, 'a rollback is under way: complete it first');
    expect(error.state).toBe('rolling_back');
  });

  it('refuses while a step is running, naming it', () => {
    spec
      .given([
        ...history.inProgress,
        ev.stepStarted('schema'),
        ev.stepCompleted('schema'),
        ev.stepStarted('api'),
      ])
      .when({ type: 'CompleteRollout' })
      .thenThrows(InvalidTransition, /^steps still running: api$/);
  });

  it('refuses while several steps run, naming each in plan order', () => {
    spec
      .given([
        ...history.inProgress,
        ev.stepStarted('hotfix'),
        ev.stepStarted('api'),
        ev.stepStarted('schema'),
      ])
      .when({ type: 'CompleteRollout' })
      .thenThrows(InvalidTransition, /^steps still running: schema, api, hotfix$/);
  });
});

describe('decide: AbortRollout', () => {
  it.each(open)('aborts a rollout that is %s', (_, given) => {
    spec
      .given(given)
      .when({ type: 'AbortRollout', reason: 'change window closed' })
      .then([{ type: 'RolloutAborted', data: { reason: 'change window closed' } }]);
  });

  it('aborts while a step is running', () => {
    spec
      .given([...history.inProgress, ev.stepStarted('api')])
      .when({ type: 'AbortRollout', reason: 'outage elsewhere' })
      .then([{ type: 'RolloutAborted', data: { reason: 'outage elsewhere' } }]);
  });
});

describe('the decider spec helper', () => {
  it('fails a scenario whose events differ only by an undefined field', () => {
    expect(() =>
      spec
        .given(history.planned)
        .when({ type: 'ApprovePlan', approver: 'alice' })
        .then([{ type: 'PlanApproved', data: { approver: 'alice', comment: undefined } }]),
    ).toThrow();
  });

  it('fails a scenario that expects events from a refused command, and the reverse', () => {
    expect(() => spec.given([]).when({ type: 'StartRollout' }).then([])).toThrow(/refused: NotFound/);
    expect(() => spec.given(history.planned).when({ type: 'StartRollout' }).thenThrows(NotFound)).toThrow(
      /expected NotFound, but the command recorded/,
    );
  });

  it('fails a scenario refused with another error class or message', () => {
    expect(() => spec.given([]).when({ type: 'StartRollout' }).thenThrows(InvalidTransition)).toThrow();
    expect(() => spec.given([]).when({ type: 'StartRollout' }).thenThrows(NotFound, 'elsewhere')).toThrow();
  });

  it('fails a scenario that is awaited instead of asserted', async () => {
    await expect(
      (async () => {
        await (spec.given([]).when({ type: 'StartRollout' }) as unknown as PromiseLike<unknown>);
      })(),
    ).rejects.toThrow(/awaited or returned/);
  });
});

describe('decide: steps after a completed rollback', () => {
  const rolledBackToApi = [
    ev.planned(),
    ev.started(),
    ev.stepStarted('schema'),
    ev.stepCompleted('schema'),
    ev.stepStarted('api'),
    ev.stepCompleted('api'),
    ev.rollbackStarted('api errors', 'api'),
    ev.rollbackCompleted(),
  ];

  it('lets a step the rollback undid run again', () => {
    spec
      .given(rolledBackToApi)
      .when({ type: 'StartStep', stepId: 'api' })
      .then([{ type: 'StepStarted', data: { stepId: 'api' } }]);
  });

  it('still refuses to re-run a step before the rollback target', () => {
    spec
      .given(rolledBackToApi)
      .when({ type: 'StartStep', stepId: 'schema' })
      .thenThrows(InvalidTransition, 'step schema has already completed');
  });

  it('undoes every step that ran when the rollback names no target', () => {
    const state = [
      ...rolledBackToApi.slice(0, 6),
      ev.rollbackStarted('errors'),
      ev.rollbackCompleted(),
    ].reduce(
      (s, e, i) => evolve(s, { ...e, streamVersion: i + 1, recordedAt: new Date(0).toISOString() }),
      initialState(ROLLOUT_ID),
    );
    expect(state.steps.map((s) => [s.id, s.status])).toEqual([
      ['schema', 'rolled_back'],
      ['api', 'rolled_back'],
      ['docs', 'pending'],
    ]);
  });
});
