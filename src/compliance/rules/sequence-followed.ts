import type { PlanStep } from '../../rollouts/rollout.plan.js';
import {
  defineRule,
  evidence,
  fail,
  listOf,
  notApplicable,
  pass,
  pending,
  type Recorded,
  ref,
  stepsOf,
} from '../facts.js';

type Status = 'running' | 'completed' | 'failed' | 'rolled_back';

const STATUS_WORDS: Record<Status | 'pending', string> = {
  pending: 'had not started',
  running: 'was still running',
  failed: 'had failed',
  rolled_back: 'had been rolled back',
  completed: 'had completed',
};

export const sequenceFollowed = defineRule(
  'sequence-followed',
  'The sequence was followed',
  'Pass when every step started only after all steps of lower order completed, and only planned steps ran; fail naming the first deviation; pending while in flight; not applicable with no steps.',
  ({ events, plan, planEvent, closed }) => {
    const planned: readonly PlanStep[] = [...stepsOf(plan)].sort((a, b) => a.order - b.order);
    const orderOf = new Map<string, number>();
    for (const step of planned) if (!orderOf.has(step.id)) orderOf.set(step.id, step.order);
    if (planned.length === 0 && !events.some((e) => e.type === 'StepStarted')) {
      return notApplicable(evidence(planEvent), 'the plan has no steps and no step ran');
    }

    // Step statuses as `evolve` keeps them: a completed rollback undoes steps from its target on.
    const status = new Map<string, Status>();
    const lastEvent = new Map<string, Recorded>();
    const rollbackOrder = planned.map((s) => s.id);
    let rollbackTarget: string | undefined;
    const stepEvents: Recorded[] = [];

    for (const e of events) {
      switch (e.type) {
        case 'StepStarted': {
          const id = e.data.stepId;
          const order = orderOf.get(id);
          if (order === undefined) {
            return fail(
              evidence(planEvent, e),
              `first deviation: step ${id} started (${ref(e)}) but is not a step of the plan`,
            );
          }
          const blocker = planned.find((s) => s.order < order && status.get(s.id) !== 'completed');
          if (blocker) {
            const state = status.get(blocker.id) ?? 'pending';
            return fail(
              evidence(planEvent, lastEvent.get(blocker.id), e),
              `first deviation: step ${id} (order ${order}) started (${ref(e)}) while ${blocker.id} (order ${blocker.order}) ${STATUS_WORDS[state]}`,
            );
          }
          status.set(id, 'running');
          lastEvent.set(id, e);
          stepEvents.push(e);
          if (!rollbackOrder.includes(id)) rollbackOrder.push(id);
          break;
        }
        case 'StepCompleted':
        case 'StepFailed':
          status.set(e.data.stepId, e.type === 'StepCompleted' ? 'completed' : 'failed');
          lastEvent.set(e.data.stepId, e);
          stepEvents.push(e);
          break;
        case 'RollbackStarted':
          rollbackTarget = e.data.toStepId;
          break;
        case 'RollbackCompleted': {
          const from = rollbackTarget === undefined ? 0 : rollbackOrder.indexOf(rollbackTarget);
          rollbackOrder.forEach((id, i) => {
            if ((from < 0 ? id === rollbackTarget : i >= from) && status.has(id)) {
              status.set(id, 'rolled_back');
              lastEvent.set(id, e);
            }
          });
          break;
        }
        default:
          break;
      }
    }

    const used = evidence(planEvent, ...stepEvents);
    const done = planned.filter((s) => status.get(s.id) === 'completed').length;
    if (!closed) {
      return pending(
        used,
        `in flight: ${done} of ${planned.length} planned steps completed, in plan order so far`,
      );
    }
    const neverRan = planned.filter((s) => !status.has(s.id)).map((s) => s.id);
    if (stepEvents.length === 0) return pass(used, 'no step ran, so none ran out of order');
    return pass(
      used,
      `every step started after the steps before it completed${
        neverRan.length > 0 ? `; never ran: ${listOf(neverRan)}` : ''
      }`,
    );
  },
);
