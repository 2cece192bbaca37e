import type { RolloutCommand } from '../rollouts/rollout.decide.js';
import type { ExternalFact } from '../rollouts/rollout.events.js';
import type { Plan } from '../rollouts/rollout.plan.js';
import type { RolloutState } from '../rollouts/rollout.state.js';
import { type CDEventView, namesOf, summaryOf } from './cdevents/cdevent.view.js';

/**
 * How a CDEvent lands on a rollout: pure functions from the event and the rollout's state to a
 * rollout command (which the rollout's own decider then accepts or refuses), or to the reason it
 * cannot land there and goes to the unattributed stream instead.
 *
 * | CDEvent                                   | rollout command                                         |
 * | ----------------------------------------- | ------------------------------------------------------- |
 * | service.deployed, service.upgraded        | CompleteStep: the running step that moves the service    |
 * | service.rolledback                        | RecordRollback (CompleteRollback if one is under way)    |
 * | testcaserun.finished, testsuiterun.finished | VerifyPath with the outcome (pass → pass, else fail)   |
 * | incident.detected, incident.resolved      | RecordExternalFact, only inside the rollout's window     |
 * | pipelinerun.started with a step id        | StartStep                                               |
 * | pipelinerun.finished with a step id, failed | FailStep                                              |
 * | anything else recognised                  | RecordExternalFact                                      |
 */

/** What a CloudEvent asks for besides its CDEvent: identity and the sender's correlation hints. */
export interface Delivery {
  source: string;
  id: string;
  cdevent: CDEventView;
  /** `stepid` extension or `customData.stepId`. */
  stepId?: string;
  /** `customData.path`: the representative path a test run verified. */
  path?: string;
}

export type Landing = { command: RolloutCommand } | { unattributed: string };

/** A rollout that has started and not ended: `in_progress` or `rolling_back`. */
export const inFlight = (state: RolloutState): boolean =>
  state.status === 'in_progress' || state.status === 'rolling_back';

const matches = (names: readonly string[], value: string | undefined) =>
  value !== undefined && names.includes(value);

/**
 * Whether a plan moves what the event is about: same environment, and (when the event names a
 * service) the service among the plan's products or the products of its steps. Names compare
 * with and without a kind prefix: `service/myapp` matches the product `myapp`.
 */
export function planMoves(plan: Plan, event: CDEventView): boolean {
  if (!event.environment || !matches(namesOf(event.environment), plan.environment)) return false;
  if (!event.service) return true;
  const names = namesOf(event.service);
  return (
    (plan.products ?? []).some((p) => names.includes(p.product)) ||
    (plan.sequence ?? []).some((s) => matches(names, s.product))
  );
}

/** The plan's steps that move this service, in plan order. */
function stepsMoving(state: RolloutState, service: string): string[] {
  const names = namesOf(service);
  return [...(state.plan.sequence ?? [])]
    .sort((a, b) => a.order - b.order)
    .filter((s) => matches(names, s.product))
    .map((s) => s.id);
}

/** The step a deployment completes: the one named, or the single running step moving the service. */
function stepToComplete(
  state: RolloutState,
  delivery: Delivery,
): { stepId: string } | { unattributed: string } {
  if (delivery.stepId) return { stepId: delivery.stepId };
  const service = delivery.cdevent.service ?? delivery.cdevent.subjectId;
  const moving = stepsMoving(state, service);
  if (moving.length === 0) return { unattributed: `no step of the plan moves ${service}` };
  const running = state.steps.filter((s) => s.status === 'running' && moving.includes(s.id)).map((s) => s.id);
  if (running.length === 1 && running[0]) return { stepId: running[0] };
  return {
    unattributed:
      running.length === 0
        ? `no step moving ${service} is running (steps ${moving.join(', ')}): start it first, or name it with the stepid extension`
        : `several steps moving ${service} are running (${running.join(', ')}): name one with the stepid extension`,
  };
}

/** The first step a rollback of this service undoes: the earliest step moving it that ran. */
function rollbackTarget(state: RolloutState, service: string): string | undefined {
  const moving = stepsMoving(state, service);
  return moving.find((id) => state.steps.some((s) => s.id === id && s.status !== 'pending'));
}

/**
 * The external fact a CDEvent records on a rollout (or that an engineer attaches).
 *
 * @example
 * externalFact(delivery).summary; // 'incident inc-42 detected in production: 5xx above 2%'
 */
export function externalFact(delivery: Delivery, attached?: { from: string; note?: string }): ExternalFact {
  const v = delivery.cdevent;
  const fact: ExternalFact = {
    kind: v.kind,
    cdeventType: v.type,
    source: delivery.source,
    cloudEventId: delivery.id,
    subjectId: v.subjectId,
    occurredAt: v.occurredAt,
    summary: summaryOf(v).slice(0, 2000),
    environment: v.environment,
    service: v.service,
    outcome: v.outcome,
    url: v.url,
    attachedFrom: attached?.from,
    note: attached?.note,
  };
  return Object.fromEntries(Object.entries(fact).filter(([, x]) => x !== undefined)) as ExternalFact;
}

/** Inside the window: the rollout has started, has not ended, and the event happened after the start. */
function insideWindow(state: RolloutState, occurredAt: string): boolean {
  return inFlight(state) && state.startedAt !== undefined && occurredAt >= state.startedAt;
}

/**
 * What a CDEvent records on this rollout. Pure; the rollout's decider still has the last word
 * (a closed rollout refuses everything; a step must be running to complete).
 *
 * @example
 * land(deployedDelivery, inProgressState); // { command: { type: 'CompleteStep', stepId: 'roll-identity' } }
 */
export function land(delivery: Delivery, state: RolloutState): Landing {
  const v = delivery.cdevent;
  // A rollout id names the rollout, but an event about another environment is a sender's mistake
  // (a pipeline reusing an id): kept aside for an engineer rather than written on the wrong record.
  if (v.environment && state.plan.environment && !matches(namesOf(v.environment), state.plan.environment)) {
    return {
      unattributed: `the event is about environment ${v.environment}; rollout ${state.id} moves ${state.plan.environment}`,
    };
  }
  switch (v.kind) {
    case 'service.deployed':
    case 'service.upgraded': {
      const step = stepToComplete(state, delivery);
      return 'stepId' in step ? { command: { type: 'CompleteStep', stepId: step.stepId } } : step;
    }
    case 'service.rolledback': {
      if (state.status === 'rolling_back') return { command: { type: 'CompleteRollback' } };
      const toStepId = delivery.stepId ?? rollbackTarget(state, v.subjectId);
      const reason = `${summaryOf(v)}, reported by ${delivery.source}`.slice(0, 2000);
      return { command: { type: 'RecordRollback', reason, ...(toStepId ? { toStepId } : {}) } };
    }
    case 'testcaserun.finished':
    case 'testsuiterun.finished':
      return {
        command: {
          type: 'VerifyPath',
          path: delivery.path ?? v.name ?? v.subjectId,
          verdict: v.outcome === 'pass' ? 'pass' : 'fail',
          evidence: `${v.type} ${delivery.source} ${delivery.id}: ${v.outcome ?? 'no outcome'}${
            v.reason ? ` (${v.reason})` : ''
          }`.slice(0, 4000),
        },
      };
    case 'incident.detected':
    case 'incident.resolved':
      return insideWindow(state, v.occurredAt)
        ? { command: { type: 'RecordExternalFact', fact: externalFact(delivery) } }
        : {
            unattributed: `the incident is outside the rollout's window (${v.occurredAt}; the rollout is ${state.status}${
              state.startedAt ? `, started ${state.startedAt}` : ''
            })`,
          };
    case 'pipelinerun.started':
      return delivery.stepId
        ? { command: { type: 'StartStep', stepId: delivery.stepId } }
        : { command: { type: 'RecordExternalFact', fact: externalFact(delivery) } };
    case 'pipelinerun.finished':
      return delivery.stepId && (v.outcome === 'failure' || v.outcome === 'error')
        ? {
            command: {
              type: 'FailStep',
              stepId: delivery.stepId,
              reason: `${summaryOf(v)}, reported by ${delivery.source}`.slice(0, 2000),
            },
          }
        : { command: { type: 'RecordExternalFact', fact: externalFact(delivery) } };
    case 'service.removed':
    case 'environment.modified':
      return { command: { type: 'RecordExternalFact', fact: externalFact(delivery) } };
    default:
      return v.kind satisfies never;
  }
}

/**
 * The rollout a CDEvent is about when it names none: among the candidates' current states, the
 * single in-flight one whose plan moves that service in that environment.
 */
export function pickInFlight(
  event: CDEventView,
  candidates: readonly RolloutState[],
): { rolloutId: string } | { unattributed: string } {
  if (!event.environment) {
    return {
      unattributed:
        'no rollout named (rolloutid extension or customData.rolloutId) and no environment to find one by',
    };
  }
  const matching = candidates.filter((s) => s.exists && inFlight(s) && planMoves(s.plan, event));
  const what = (verb: string) => `${event.service ? `${verb} ${event.service} ` : ''}in ${event.environment}`;
  if (matching.length === 1 && matching[0]) return { rolloutId: matching[0].id };
  return {
    unattributed:
      matching.length === 0
        ? `no in-flight rollout ${what('moves')}`
        : `${matching.length} in-flight rollouts ${what('move')} (${matching.map((s) => s.id).join(', ')}): name one with the rolloutid extension`,
  };
}
