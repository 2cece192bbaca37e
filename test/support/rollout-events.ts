import type { RolloutEvent } from '../../src/rollouts/rollout.events.js';
import type { Plan } from '../../src/rollouts/rollout.plan.js';

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
