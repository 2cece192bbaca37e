import { InvalidTransition, NotFound } from '../common/errors.js';
import type { Json } from '../database/schema.js';
import type {
  ExternalFact,
  PathVerdict,
  ReadbackPhase,
  ReadbackVerdict,
  RolloutEvent,
} from './rollout.events.js';
import type { Plan, Surface } from './rollout.plan.js';
import { isClosed, type RolloutState } from './rollout.state.js';

export type RolloutCommand =
  | { type: 'PlanRollout'; rolloutId: string; plan: Plan }
  | { type: 'RevisePlan'; plan: Plan; reason?: string }
  | { type: 'ApprovePlan'; approver: string; comment?: string }
  | {
      type: 'RecordReadback';
      phase: ReadbackPhase;
      surface: Surface;
      expected: Json;
      observed: Json;
      verdict: ReadbackVerdict;
      stepId?: string;
    }
  | { type: 'StartRollout' }
  | { type: 'StartStep'; stepId: string }
  | { type: 'CompleteStep'; stepId: string }
  | { type: 'FailStep'; stepId: string; reason: string }
  | { type: 'VerifyPath'; path: string; verdict: PathVerdict; evidence?: string }
  | { type: 'StartRollback'; reason: string; toStepId?: string }
  | { type: 'CompleteRollback' }
  | { type: 'CompleteRollout' }
  | { type: 'AbortRollout'; reason: string }
  /** A rollback that already happened (a delivery tool reports it done): started and completed at once. */
  | { type: 'RecordRollback'; reason: string; toStepId?: string }
  | { type: 'RecordExternalFact'; fact: ExternalFact };

export type RolloutCommandType = RolloutCommand['type'];

const refuse = (state: RolloutState, message: string): never => {
  throw new InvalidTransition(message, state.status);
};

const withoutUndefined = <T extends object>(o: T): T =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

/**
 * Decides what a command records, given the rollout's state. Pure.
 *
 * It refuses only what cannot be true (409): writing to a closed rollout, starting twice,
 * completing or failing a step that is not running, completing while a step runs or a rollback
 * is under way. Non-compliant but possible behaviour (steps out of order, unplanned steps, a
 * start after a failed pre-check, a rollback past the boundary) is recorded: the rulebook
 * reports it.
 *
 * @example
 * decide({ type: 'StartRollout' }, planned); // [{ type: 'RolloutStarted', data: {} }]
 */
export function decide(command: RolloutCommand, state: RolloutState): RolloutEvent[] {
  if (command.type === 'PlanRollout') {
    if (state.exists) refuse(state, `rollout ${command.rolloutId} already exists`);
    // Keys in canonical order, as the plan's are (rollout.plan.ts): the store hashes it as it is.
    return [{ type: 'RolloutPlanned', data: { plan: command.plan, rolloutId: command.rolloutId } }];
  }
  if (!state.exists) throw new NotFound('rollout', state.id);
  if (isClosed(state)) refuse(state, `the rollout is ${state.status}: nothing more can be recorded on it`);

  switch (command.type) {
    case 'RevisePlan':
      if (state.status !== 'planned') refuse(state, 'the plan can only be revised before the rollout starts');
      return [
        { type: 'PlanRevised', data: withoutUndefined({ plan: command.plan, reason: command.reason }) },
      ];

    case 'ApprovePlan':
      if (state.status !== 'planned') refuse(state, 'a plan can only be approved before the rollout starts');
      return [
        {
          type: 'PlanApproved',
          data: withoutUndefined({ approver: command.approver, comment: command.comment }),
        },
      ];

    case 'RecordReadback': {
      const { type: _, ...data } = command;
      return [{ type: 'ReadbackRecorded', data: withoutUndefined(data) }];
    }

    case 'StartRollout':
      if (state.status !== 'planned') refuse(state, 'the rollout has already started');
      return [{ type: 'RolloutStarted', data: {} }];

    case 'StartStep': {
      if (state.status === 'planned') refuse(state, 'start the rollout before its steps');
      if (state.status === 'rolling_back')
        refuse(state, 'a rollback is under way: complete it before starting steps');
      const step = state.steps.find((s) => s.id === command.stepId);
      if (step?.status === 'running') refuse(state, `step ${command.stepId} is already running`);
      if (step?.status === 'completed') refuse(state, `step ${command.stepId} has already completed`);
      return [{ type: 'StepStarted', data: { stepId: command.stepId } }];
    }

    case 'CompleteStep':
    case 'FailStep': {
      const step = state.steps.find((s) => s.id === command.stepId);
      if (step?.status !== 'running') {
        refuse(
          state,
          `step ${command.stepId} ${step ? `is ${step.status}` : 'never started'}: only a running step can ${
            command.type === 'CompleteStep' ? 'complete' : 'fail'
          }`,
        );
      }
      return command.type === 'CompleteStep'
        ? [{ type: 'StepCompleted', data: { stepId: command.stepId } }]
        : [{ type: 'StepFailed', data: { stepId: command.stepId, reason: command.reason } }];
    }

    case 'VerifyPath': {
      const { type: _, ...data } = command;
      return [{ type: 'PathVerified', data: withoutUndefined(data) }];
    }

    case 'StartRollback':
      if (state.status === 'planned') refuse(state, 'nothing to roll back: the rollout has not started');
      if (state.status === 'rolling_back') refuse(state, 'a rollback is already under way');
      return [
        {
          type: 'RollbackStarted',
          data: withoutUndefined({ reason: command.reason, toStepId: command.toStepId }),
        },
      ];

    case 'CompleteRollback':
      if (state.status !== 'rolling_back') refuse(state, 'no rollback is under way');
      return [{ type: 'RollbackCompleted', data: {} }];

    case 'CompleteRollout': {
      if (state.status === 'planned') refuse(state, 'the rollout has not started');
      if (state.status === 'rolling_back') refuse(state, 'a rollback is under way: complete it first');
      const running = state.steps.filter((s) => s.status === 'running').map((s) => s.id);
      if (running.length > 0) refuse(state, `steps still running: ${running.join(', ')}`);
      return [{ type: 'RolloutCompleted', data: {} }];
    }

    case 'AbortRollout':
      return [{ type: 'RolloutAborted', data: { reason: command.reason } }];

    case 'RecordRollback': {
      if (state.status === 'planned') refuse(state, 'nothing to roll back: the rollout has not started');
      if (state.status === 'rolling_back') refuse(state, 'a rollback is already under way');
      const started = withoutUndefined({ reason: command.reason, toStepId: command.toStepId });
      return [
        { type: 'RollbackStarted', data: started },
        { type: 'RollbackCompleted', data: {} },
      ];
    }

    case 'RecordExternalFact':
      return [{ type: 'ExternalFactRecorded', data: withoutUndefined(command.fact) }];

    default:
      return command satisfies never;
  }
}
