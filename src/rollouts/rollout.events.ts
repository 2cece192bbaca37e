import type { Json } from '../database/schema.js';
import type { Plan, Surface } from './rollout.plan.js';

export type ReadbackPhase = 'pre' | 'during' | 'post';
export type ReadbackVerdict = 'pass' | 'fail' | 'warn';
export type PathVerdict = 'pass' | 'fail';

/** The events of one rollout stream (`rollout-<id>`), as stored in `event.data`. */
export type RolloutEvent =
  | { type: 'RolloutPlanned'; data: { rolloutId: string; plan: Plan } }
  | { type: 'PlanRevised'; data: { plan: Plan; reason?: string } }
  | { type: 'PlanApproved'; data: { approver: string; comment?: string } }
  | {
      type: 'ReadbackRecorded';
      data: {
        phase: ReadbackPhase;
        surface: Surface;
        expected: Json;
        observed: Json;
        verdict: ReadbackVerdict;
        stepId?: string;
      };
    }
  | { type: 'RolloutStarted'; data: Record<string, never> }
  | { type: 'StepStarted'; data: { stepId: string } }
  | { type: 'StepCompleted'; data: { stepId: string } }
  | { type: 'StepFailed'; data: { stepId: string; reason: string } }
  | { type: 'PathVerified'; data: { path: string; verdict: PathVerdict; evidence?: string } }
  | { type: 'RollbackStarted'; data: { reason: string; toStepId?: string } }
  | { type: 'RollbackCompleted'; data: Record<string, never> }
  | { type: 'RolloutCompleted'; data: Record<string, never> }
  | { type: 'RolloutAborted'; data: { reason: string } };

export type RolloutEventType = RolloutEvent['type'];

export const ROLLOUT_EVENT_TYPES: readonly RolloutEventType[] = [
  'RolloutPlanned',
  'PlanRevised',
  'PlanApproved',
  'ReadbackRecorded',
  'RolloutStarted',
  'StepStarted',
  'StepCompleted',
  'StepFailed',
  'PathVerified',
  'RollbackStarted',
  'RollbackCompleted',
  'RolloutCompleted',
  'RolloutAborted',
];

/** Who did it and where it came from: stored in every event's metadata. */
export interface EventMetadata {
  actor: { id: string; name: string; role: string };
  requestId?: string;
  correlationId?: string;
  causationId?: string;
  source: 'rest' | 'cloudevents' | 'system';
  idempotencyKey?: string;
}

/** An event as recorded: with its stream version, time and, once sequenced, ledger position. */
export type RecordedRolloutEvent = RolloutEvent & {
  streamVersion: number;
  recordedAt: string;
  position?: number;
  metadata?: Partial<EventMetadata>;
};

export const rolloutStreamId = (rolloutId: string) => `rollout-${rolloutId}`;
