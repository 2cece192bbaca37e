import type { RecordedRolloutEvent, RolloutEventType } from '../rollouts/rollout.events.js';
import {
  type Plan,
  type PlanStep,
  READINESS_SURFACES,
  SHARED_TRUTH_SURFACES,
  type Surface,
} from '../rollouts/rollout.plan.js';
import type { Rule, RuleId, RuleResult, Verdict } from './rule.js';

/**
 * What every rule needs to know about a rollout, read once from its events (in stream order).
 * Pure; never throws on any list of rollout events, however odd.
 */

export type Recorded = RecordedRolloutEvent;
export type RecordedOf<T extends RolloutEventType> = Extract<RecordedRolloutEvent, { type: T }>;
export type Readback = RecordedOf<'ReadbackRecorded'>;

/** An event and its index in the list the rule was given. */
export interface At<E extends Recorded = Recorded> {
  event: E;
  index: number;
}

export interface Timeline {
  events: readonly Recorded[];
  /** The plan in force at `RolloutStarted`, or the latest plan if the rollout has not started. */
  plan: Plan;
  /** The `RolloutPlanned` or `PlanRevised` event that put `plan` in force. */
  planEvent?: Recorded;
  started?: At;
  completed?: At;
  aborted?: At;
  /** Completed or aborted: nothing more can happen to it. */
  closed: boolean;
}

export function isType<T extends RolloutEventType>(type: T) {
  return (event: Recorded): event is RecordedOf<T> => event.type === type;
}

function firstAt(events: readonly Recorded[], type: RolloutEventType): At | undefined {
  const index = events.findIndex((e) => e.type === type);
  const event = events[index];
  return event === undefined ? undefined : { event, index };
}

export function timeline(events: readonly Recorded[]): Timeline {
  let plan: Plan = {};
  let planEvent: Recorded | undefined;
  for (const e of events) {
    if (e.type === 'RolloutStarted') break;
    if (e.type === 'RolloutPlanned' || e.type === 'PlanRevised') {
      plan = e.data.plan ?? {};
      planEvent = e;
    }
  }
  const completed = firstAt(events, 'RolloutCompleted');
  const aborted = firstAt(events, 'RolloutAborted');
  return {
    events,
    plan,
    planEvent,
    started: firstAt(events, 'RolloutStarted'),
    completed,
    aborted,
    closed: completed !== undefined || aborted !== undefined,
  };
}

/** Ledger positions of these events: ascending, unique; unsequenced events add nothing. */
export function evidence(...events: (Recorded | undefined)[]): number[] {
  const positions = new Set<number>();
  for (const e of events) if (e?.position !== undefined) positions.add(e.position);
  return [...positions].sort((a, b) => a - b);
}

/** How a finding points at an event: its ledger position, or its stream version until sequenced. */
export const ref = (e: Recorded): string =>
  e.position === undefined ? `stream v${e.streamVersion}` : `#${e.position}`;

/** Free text from a plan or a request, fit for a one-line finding. */
export function quote(text: string, max = 80): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return `"${line.length > max ? `${line.slice(0, max - 1)}…` : line}"`;
}

/** `a, b and c`, or the first few and how many more. */
export function listOf(items: readonly string[], max = 4): string {
  if (items.length <= 1) return items.join('');
  const shown = items.slice(0, Math.min(items.length, max));
  const rest = items.length - shown.length;
  if (rest > 0) return `${shown.join(', ')} and ${rest} more`;
  return `${shown.slice(0, -1).join(', ')} and ${shown.at(-1)}`;
}

/** Clauses joined by semicolons: the first few, and how many more. */
export function clauses(items: readonly string[], max = 3): string {
  const rest = items.length - max;
  return `${items.slice(0, max).join('; ')}${rest > 0 ? `; and ${rest} more` : ''}`;
}

export const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export const isSharedTruth = (s: Surface) => SHARED_TRUTH_SURFACES.includes(s);
export const isReadiness = (s: Surface) => READINESS_SURFACES.includes(s);
export const SHARED_TRUTH_CLASS = `a shared-truth surface (${SHARED_TRUTH_SURFACES.join(' or ')})`;
export const READINESS_CLASS = `a readiness surface (${READINESS_SURFACES.join(' or ')})`;

/** The plan's steps as listed (possibly empty). */
export const stepsOf = (plan: Plan): readonly PlanStep[] => plan.sequence ?? [];

export const nonEmpty = (s: string | undefined): s is string => typeof s === 'string' && s.trim().length > 0;

export type BoundaryCheck =
  | { declared: true; reversibleState: string; step: PlanStep }
  | { declared: false; problem: string };

/**
 * Whether the plan declares a usable rollback boundary: a `reversibleState` and an
 * `irreversibleAfterStepId` naming a planned step. The same test serves `rollback-boundary-declared`,
 * `rollback-within-boundary` (n/a without one) and `failure-mode-rollback-without-boundary`.
 */
export function boundaryOf(plan: Plan): BoundaryCheck {
  const boundary = plan.rollbackBoundary;
  if (!boundary) return { declared: false, problem: 'the plan declares no rollback boundary' };
  const missing: string[] = [];
  if (!nonEmpty(boundary.reversibleState))
    missing.push('which state can be safely reversed (reversibleState)');
  if (!nonEmpty(boundary.irreversibleAfterStepId)) {
    missing.push('after which step the change is irreversible (irreversibleAfterStepId)');
  }
  if (missing.length > 0)
    return { declared: false, problem: `the rollback boundary does not say ${listOf(missing)}` };
  const step = stepsOf(plan).find((s) => s.id === boundary.irreversibleAfterStepId);
  if (!step) {
    return {
      declared: false,
      problem: `the rollback boundary's irreversibleAfterStepId ${boundary.irreversibleAfterStepId} names no planned step`,
    };
  }
  return { declared: true, reversibleState: boundary.reversibleState ?? '', step };
}

/** A rule's verdict, evidence and finding (the id is added by `defineRule`). */
export type Judgement = Omit<RuleResult, 'id'>;

const judgement =
  (verdict: Verdict) =>
  (evidence: number[], finding: string): Judgement => ({ verdict, evidence, finding });
export const pass = judgement('pass');
export const fail = judgement('fail');
export const pending = judgement('pending');
export const notApplicable = judgement('not-applicable');

/** A rule from its id, wording and a judgement over the rollout's timeline. */
export function defineRule(
  id: RuleId,
  title: string,
  description: string,
  judge: (t: Timeline) => Judgement,
): Rule {
  return {
    id,
    title,
    description,
    evaluate(events): RuleResult {
      const { verdict, evidence, finding } = judge(timeline(events));
      return { id, verdict, evidence, finding: finding.replace(/\s+/g, ' ').trim() };
    },
  };
}
