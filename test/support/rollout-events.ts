import type { RecordedRolloutEvent, RolloutEvent } from '../../src/rollouts/rollout.events.js';
import type { Plan } from '../../src/rollouts/rollout.plan.js';
import { recorded } from './decider-spec.js';

/** Builders for rollout events, so a scenario reads as the story it tells. */

export const ROLLOUT_ID = 'r1';

/** A complete plan: three ordered steps (listed out of order on purpose), boundary, verification. */
export const plan: Plan = {
  title: 'Move the stack to 2.0',
  scope: 'stack-wide',
  environment: 'prod',
  products: [
    { product: 'ledger-db', fromVersion: '15', toVersion: '16' },
    { product: 'api', fromVersion: '1.9.0', toVersion: '2.0.0' },
  ],
  compatibility: [{ product: 'api', reference: 'compat/api-2.0', result: 'compatible' }],
  releaseNotes: [{ product: 'api', version: '2.0.0', reference: 'https://example.test/api/2.0.0' }],
  sequence: [
    { id: 'api', order: 2, product: 'api' },
    { id: 'schema', order: 1, product: 'ledger-db', reversible: true },
    { id: 'docs', order: 3, layer: 'docs', reversible: true },
  ],
  sharedTruthChanges: 'version-truth publishes api 2.0.0 after step api',
  rollbackBoundary: { reversibleState: 'schema is additive', irreversibleAfterStepId: 'api' },
  verification: {
    pre: ['version-truth', 'observability-readiness'],
    post: ['version-truth', 'contracts-drift', 'observability-readiness', 'recovery-readiness'],
    representativePaths: ['operator lists rollouts'],
  },
};

export const revisedPlan: Plan = {
  title: 'Move the stack to 2.0, docs first',
  sequence: [
    { id: 'docs', order: 1 },
    { id: 'api', order: 2 },
  ],
};

export const ev = {
  planned: (p: Plan = plan, rolloutId = ROLLOUT_ID): RolloutEvent => ({
    type: 'RolloutPlanned',
    data: { rolloutId, plan: p },
  }),
  revised: (p: Plan = revisedPlan, reason?: string): RolloutEvent => ({
    type: 'PlanRevised',
    data: reason === undefined ? { plan: p } : { plan: p, reason },
  }),
  approved: (approver = 'alice', comment?: string): RolloutEvent => ({
    type: 'PlanApproved',
    data: comment === undefined ? { approver } : { approver, comment },
  }),
  readback: (data: Extract<RolloutEvent, { type: 'ReadbackRecorded' }>['data']): RolloutEvent => ({
    type: 'ReadbackRecorded',
    data,
  }),
  started: (): RolloutEvent => ({ type: 'RolloutStarted', data: {} }),
  stepStarted: (stepId: string): RolloutEvent => ({ type: 'StepStarted', data: { stepId } }),
  stepCompleted: (stepId: string): RolloutEvent => ({ type: 'StepCompleted', data: { stepId } }),
  stepFailed: (stepId: string, reason = 'health check failed'): RolloutEvent => ({
    type: 'StepFailed',
    data: { stepId, reason },
  }),
  pathVerified: (path: string, verdict: 'pass' | 'fail' = 'pass', evidence?: string): RolloutEvent => ({
    type: 'PathVerified',
    data: evidence === undefined ? { path, verdict } : { path, verdict, evidence },
  }),
  rollbackStarted: (reason = 'api errors', toStepId?: string): RolloutEvent => ({
    type: 'RollbackStarted',
    data: toStepId === undefined ? { reason } : { reason, toStepId },
  }),
  rollbackCompleted: (): RolloutEvent => ({ type: 'RollbackCompleted', data: {} }),
  completed: (): RolloutEvent => ({ type: 'RolloutCompleted', data: {} }),
  aborted: (reason = 'change window closed'): RolloutEvent => ({ type: 'RolloutAborted', data: { reason } }),
};

/** Histories that leave the rollout in each status. */
export const history = {
  missing: [] as RolloutEvent[],
  planned: [ev.planned()],
  inProgress: [ev.planned(), ev.started()],
  rollingBack: [
    ev.planned(),
    ev.started(),
    ev.stepStarted('schema'),
    ev.stepFailed('schema'),
    ev.rollbackStarted(),
  ],
  completed: [
    ev.planned(),
    ev.started(),
    ev.stepStarted('schema'),
    ev.stepCompleted('schema'),
    ev.completed(),
  ],
  abortedWhilePlanned: [ev.planned(), ev.aborted()],
  abortedInProgress: [ev.planned(), ev.started(), ev.stepStarted('schema'), ev.aborted()],
};

// ---------------------------------------------------------------------------------------------
// For the rulebook: a plan that meets every point of the upgrade model, readback builders and
// events stamped with ledger positions.

/**
 * A plan every plan rule passes: two moved products, each checked compatible and with release
 * notes; three steps (listed out of order on purpose) with a boundary after `api`; verification
 * before and after, with a representative path.
 */
export const compliantPlan: Plan = {
  ...plan,
  compatibility: [
    { product: 'ledger-db', reference: 'compat/ledger-db-16', result: 'compatible' },
    { product: 'api', reference: 'compat/api-2.0', result: 'compatible' },
  ],
  releaseNotes: [
    { product: 'ledger-db', version: '16', reference: 'https://example.test/ledger-db/16' },
    { product: 'api', version: '2.0.0', reference: 'https://example.test/api/2.0.0' },
  ],
  verification: {
    pre: ['version-truth', 'observability-readiness'],
    post: ['version-truth', 'observability-readiness'],
    representativePaths: ['operator lists rollouts'],
  },
};

type ReadbackData = Extract<RolloutEvent, { type: 'ReadbackRecorded' }>['data'];

const readbackIn =
  (phase: ReadbackData['phase']) =>
  (
    surface: ReadbackData['surface'],
    verdict: ReadbackData['verdict'] = 'pass',
    stepId?: string,
  ): RolloutEvent =>
    ev.readback({
      phase,
      surface,
      expected: { api: phase === 'pre' ? '1.9.0' : '2.0.0' },
      observed: { api: phase === 'pre' ? '1.9.0' : '2.0.0' },
      verdict,
      ...(stepId === undefined ? {} : { stepId }),
    });

/** Readbacks by phase: `rb.pre('version-truth')`, `rb.post('observability-readiness', 'fail')`. */
export const rb = {
  pre: readbackIn('pre'),
  during: readbackIn('during'),
  post: readbackIn('post'),
};

/** Stamps events as recorded and sequenced: stream versions 1..n and ledger positions `first`.. */
export function positioned(events: readonly RolloutEvent[], first = 1): RecordedRolloutEvent[] {
  return recorded(events).map((event, i) => ({ ...event, position: first + i }));
}

/** Pieces of a compliant rollout of `compliantPlan`, to assemble into the story a test tells. */
export const compliant = {
  preflight: [rb.pre('version-truth'), rb.pre('observability-readiness')],
  steps: [
    ev.stepStarted('schema'),
    ev.stepCompleted('schema'),
    ev.stepStarted('api'),
    ev.stepCompleted('api'),
    ev.stepStarted('docs'),
    ev.stepCompleted('docs'),
  ],
  postflight: [
    rb.post('version-truth'),
    rb.post('observability-readiness'),
    ev.pathVerified('operator lists rollouts', 'pass', 'run 42'),
  ],
};

/**
 * A whole compliant rollout of `compliantPlan` (positions 1..14 when stamped from 1):
 * 1 planned, 2-3 pre readbacks, 4 start, 5-10 steps, 11-12 post readbacks, 13 path, 14 completed.
 */
export const compliantRollout: RolloutEvent[] = [
  ev.planned(compliantPlan),
  ...compliant.preflight,
  ev.started(),
  ...compliant.steps,
  ...compliant.postflight,
  ev.completed(),
];

/** `compliantRollout` run under another plan (positions unchanged: the plan is event 1). */
export const rolloutWith = (p: Plan): RolloutEvent[] => [ev.planned(p), ...compliantRollout.slice(1)];
