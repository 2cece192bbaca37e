import { assertUnreachable } from '../common/errors.js';
import type { Json } from '../database/schema.js';
import type {
  PathVerdict,
  ReadbackPhase,
  ReadbackVerdict,
  RecordedRolloutEvent,
  RolloutEvent,
} from './rollout.events.js';
import type { Plan, Surface } from './rollout.plan.js';

export type RolloutStatus = 'planned' | 'in_progress' | 'rolling_back' | 'completed' | 'aborted';
/** `rolled_back`: undone by a completed rollback; it may run again. */
export type StepStatus = 'pending' | 'running' | 'completed' | 'failed' | 'rolled_back';

export interface StepState {
  id: string;
  /** False for a step that ran without being in the plan (recorded; the rulebook flags it). */
  planned: boolean;
  status: StepStatus;
  attempts: number;
  startedAt?: string;
  completedAt?: string;
  failedAt?: string;
  failureReason?: string;
}

export interface RolloutState {
  id: string;
  exists: boolean;
  status: RolloutStatus;
  plan: Plan;
  /** 1 for the original plan, +1 per revision. */
  planRevision: number;
  approvals: { approver: string; comment?: string; at: string }[];
  steps: StepState[];
  readbacks: {
    phase: ReadbackPhase;
    surface: Surface;
    verdict: ReadbackVerdict;
    expected: Json;
    observed: Json;
    stepId?: string;
    at: string;
  }[];
  pathVerifications: { path: string; verdict: PathVerdict; evidence?: string; at: string }[];
  rollbacks: { reason: string; toStepId?: string; startedAt: string; completedAt?: string }[];
  createdAt?: string;
  startedAt?: string;
  completedAt?: string;
  abortedAt?: string;
  abortReason?: string;
  updatedAt?: string;
  /** The stream version this state reflects (0 before the first event). */
  version: number;
}

export const initialState = (id: string): RolloutState => ({
  id,
  exists: false,
  status: 'planned',
  plan: {},
  planRevision: 0,
  approvals: [],
  steps: [],
  readbacks: [],
  pathVerifications: [],
  rollbacks: [],
  version: 0,
});

export const isClosed = (s: RolloutState) => s.status === 'completed' || s.status === 'aborted';

/** Steps of the plan, in order, as pending step states. */
function stepsOf(plan: Plan): StepState[] {
  return [...(plan.sequence ?? [])]
    .sort((a, b) => a.order - b.order)
    .map((step) => ({ id: step.id, planned: true, status: 'pending', attempts: 0 }));
}

function updateStep(state: RolloutState, stepId: string, update: (s: StepState) => StepState): StepState[] {
  const existing = state.steps.find((s) => s.id === stepId);
  if (!existing) {
    return [...state.steps, update({ id: stepId, planned: false, status: 'pending', attempts: 0 })];
  }
  return state.steps.map((s) => (s.id === stepId ? update(s) : s));
}

/**
 * Steps a completed rollback undid: those from `toStepId` (the first step it undoes) onwards in
 * plan order, or every step when no target was named. Steps that never ran stay pending.
 */
function undoneBy(state: RolloutState, toStepId: string | undefined): StepState[] {
  const from = toStepId === undefined ? 0 : state.steps.findIndex((s) => s.id === toStepId);
  return state.steps.map((s, i) =>
    (from < 0 ? s.id === toStepId : i >= from) && s.status !== 'pending'
      ? { ...s, status: 'rolled_back' }
      : s,
  );
}

/**
 * Folds one event into the state. Pure: the state of a rollout is `events.reduce(evolve, initialState(id))`.
 *
 * @example
 * const state = events.reduce(evolve, initialState('r1'));
 */
export function evolve(state: RolloutState, event: RecordedRolloutEvent): RolloutState {
  const at = event.recordedAt;
  const next: RolloutState = { ...state, version: event.streamVersion, updatedAt: at };
  const e = event as RolloutEvent;
  switch (e.type) {
    case 'RolloutPlanned':
      return {
        ...next,
        id: e.data.rolloutId,
        exists: true,
        plan: e.data.plan,
        planRevision: 1,
        steps: stepsOf(e.data.plan),
        createdAt: at,
      };
    case 'PlanRevised':
      return {
        ...next,
        plan: e.data.plan,
        planRevision: state.planRevision + 1,
        steps: stepsOf(e.data.plan),
        approvals: [],
      };
    case 'PlanApproved':
      return {
        ...next,
        approvals: [...state.approvals, { approver: e.data.approver, comment: e.data.comment, at }],
      };
    case 'ReadbackRecorded':
      return { ...next, readbacks: [...state.readbacks, { ...e.data, at }] };
    case 'RolloutStarted':
      return { ...next, status: 'in_progress', startedAt: at };
    case 'StepStarted':
      return {
        ...next,
        steps: updateStep(state, e.data.stepId, (s) => ({
          ...s,
          status: 'running',
          attempts: s.attempts + 1,
          startedAt: at,
          completedAt: undefined,
          failedAt: undefined,
          failureReason: undefined,
        })),
      };
    case 'StepCompleted':
      return {
        ...next,
        steps: updateStep(state, e.data.stepId, (s) => ({ ...s, status: 'completed', completedAt: at })),
      };
    case 'StepFailed':
      return {
        ...next,
        steps: updateStep(state, e.data.stepId, (s) => ({
          ...s,
          status: 'failed',
          failedAt: at,
          failureReason: e.data.reason,
        })),
      };
    case 'PathVerified':
      return { ...next, pathVerifications: [...state.pathVerifications, { ...e.data, at }] };
    case 'RollbackStarted':
      return {
        ...next,
        status: 'rolling_back',
        rollbacks: [...state.rollbacks, { ...e.data, startedAt: at }],
      };
    case 'RollbackCompleted':
      return {
        ...next,
        status: 'in_progress',
        steps: undoneBy(state, state.rollbacks.at(-1)?.toStepId),
        rollbacks: state.rollbacks.map((r, i) =>
          i === state.rollbacks.length - 1 ? { ...r, completedAt: at } : r,
        ),
      };
    case 'RolloutCompleted':
      return { ...next, status: 'completed', completedAt: at };
    case 'RolloutAborted':
      return { ...next, status: 'aborted', abortedAt: at, abortReason: e.data.reason };
    case 'ExternalFactRecorded':
      // A fact about the rollout, not a change of its state: reports read it from the events.
      return next;
    default:
      return assertUnreachable(e);
  }
}

/** The state after these events (in stream order). */
export function foldRollout(id: string, events: readonly RecordedRolloutEvent[]): RolloutState {
  return events.reduce(evolve, initialState(id));
}
