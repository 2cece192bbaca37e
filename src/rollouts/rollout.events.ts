import type { Json } from '../database/schema.js';
import type { Plan, Surface } from './rollout.plan.js';

export type ReadbackPhase = 'pre' | 'during' | 'post';
export type ReadbackVerdict = 'pass' | 'fail' | 'warn';
export type PathVerdict = 'pass' | 'fail';

/**
 * A fact about a rollout reported by a delivery tool (a CDEvent carried as a CloudEvent) that is
 * not a step, readback or rollback of its own: an incident inside the rollout's window, an
 * environment change, a pipeline run, or any event an engineer attached from the unattributed
 * stream. Recorded as reported; the original CloudEvent is in the event's metadata.
 */
export interface ExternalFact {
  /** CDEvents `<subject>.<predicate>`, e.g. `incident.detected`. */
  kind: string;
  /** The full CDEvents type, e.g. `dev.cdevents.incident.detected.0.2.0`. */
  cdeventType: string;
  /** CloudEvents `source` and `id`: together they identify the event. */
  source: string;
  cloudEventId: string;
  /** The CDEvent subject's id (the incident, service, pipeline run…). */
  subjectId: string;
  /** When it happened, as the tool said (the CDEvent's `context.timestamp`). */
  occurredAt: string;
  /** One line for a human. */
  summary: string;
  environment?: string;
  service?: string;
  outcome?: string;
  url?: string;
  /** The unattributed event it was attached from, when an engineer attached it. */
  attachedFrom?: string;
  /** The engineer's note when attaching. */
  note?: string;
}

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
  | { type: 'RolloutAborted'; data: { reason: string } }
  | { type: 'ExternalFactRecorded'; data: ExternalFact };

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
  'ExternalFactRecorded',
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
