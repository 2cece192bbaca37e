import { decide, type RolloutCommand } from '../../src/rollouts/rollout.decide.js';
import type { RecordedRolloutEvent } from '../../src/rollouts/rollout.events.js';
import { evolve, initialState } from '../../src/rollouts/rollout.state.js';
import {
  abortBody,
  approvalBody,
  emptyBody,
  pathVerificationBody,
  planSchema,
  readbackBody,
  rollbackBody,
  stepFailBody,
  stepIdParam,
} from '../../src/rollouts/rollouts.dto.js';
import { recordedAtOf } from './decider-spec.js';
import type { Scenario, ScenarioCall } from './scenarios.js';

/** The rollout id a pure replay gives the scenario's rollout (the API would give a UUID). */
export const REPLAY_ROLLOUT_ID = '00000000-0000-4000-8000-000000000001';
/** Who approves, in a pure replay (the API takes the calling key's name). */
export const REPLAY_APPROVER = 'scenario-replay';

const ROLLOUT = /^\/api\/v1\/rollouts\/\{id\}(\/.*)$/;

/**
 * The command a scenario's REST call makes, with its body validated by the same schemas the
 * controller uses (so a fixture the API would refuse with 400 is refused here too).
 */
export function commandOf(call: ScenarioCall): RolloutCommand {
  const where = `${call.method} ${call.path}`;
  if (call.method === 'POST' && call.path === '/api/v1/rollouts') {
    return { type: 'PlanRollout', rolloutId: REPLAY_ROLLOUT_ID, plan: planSchema.parse(call.body) };
  }
  const rest = ROLLOUT.exec(call.path)?.[1];
  if (rest === undefined) throw new Error(`${where}: not a rollout call`);
  if (call.method === 'PUT' && rest === '/plan')
    return { type: 'RevisePlan', plan: planSchema.parse(call.body) };
  if (call.method !== 'POST') throw new Error(`${where}: no such rollout call`);

  const step = /^\/steps\/([^/]+)\/(start|complete|fail)$/.exec(rest);
  if (step) {
    const stepId = stepIdParam.parse(step[1]);
    if (step[2] === 'fail') return { type: 'FailStep', stepId, reason: stepFailBody.parse(call.body).reason };
    emptyBody.parse(call.body);
    return step[2] === 'start' ? { type: 'StartStep', stepId } : { type: 'CompleteStep', stepId };
  }
  switch (rest) {
    case '/approvals': {
      const body = approvalBody.parse(call.body);
      return {
        type: 'ApprovePlan',
        approver: REPLAY_APPROVER,
        ...(body?.comment ? { comment: body.comment } : {}),
      };
    }
    case '/readbacks':
      return { type: 'RecordReadback', ...readbackBody.parse(call.body) };
    case '/path-verifications':
      return { type: 'VerifyPath', ...pathVerificationBody.parse(call.body) };
    case '/rollbacks':
      return { type: 'StartRollback', ...rollbackBody.parse(call.body) };
    case '/abort':
      return { type: 'AbortRollout', reason: abortBody.parse(call.body).reason };
    case '/start':
    case '/rollbacks/complete':
    case '/complete':
      emptyBody.parse(call.body);
      return {
        type:
          rest === '/start' ? 'StartRollout' : rest === '/complete' ? 'CompleteRollout' : 'CompleteRollback',
      };
    default:
      throw new Error(`${where}: no such rollout call`);
  }
}

/**
 * Replays a scenario purely, as the API would record it: each call becomes a command that
 * `decide` turns into events on the state folded so far (a call the API would refuse throws),
 * stamped with stream versions and ledger positions `firstPosition`, `firstPosition + 1`, ...
 */
export function scenarioEvents(scenario: Scenario, firstPosition = 1): RecordedRolloutEvent[] {
  let state = initialState(REPLAY_ROLLOUT_ID);
  const events: RecordedRolloutEvent[] = [];
  for (const call of scenario.calls) {
    const produced = decide(commandOf(call), state);
    for (const event of produced) {
      const n = events.length + 1;
      const stamped = {
        ...event,
        streamVersion: n,
        recordedAt: recordedAtOf(n),
        position: firstPosition + n - 1,
      };
      events.push(stamped);
      state = evolve(state, stamped);
    }
  }
  return events;
}
