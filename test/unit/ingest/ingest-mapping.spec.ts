import { describe, expect, it } from 'vitest';
import type { CDEventView } from '../../../src/ingest/cdevents/cdevent.view.js';
import { namesOf, summaryOf } from '../../../src/ingest/cdevents/cdevent.view.js';
import {
  type Delivery,
  externalFact,
  inFlight,
  land,
  pickInFlight,
  planMoves,
} from '../../../src/ingest/ingest.mapping.js';
import type { RolloutEvent } from '../../../src/rollouts/rollout.events.js';
import type { Plan } from '../../../src/rollouts/rollout.plan.js';
import { foldRollout, type RolloutState } from '../../../src/rollouts/rollout.state.js';
import { recorded, recordedAtOf } from '../../support/decider-spec.js';

// How a CDEvent lands on a rollout, as a table: event kind × rollout state → command or reason.

const plan: Plan = {
  environment: 'production',
  products: [
    { product: 'gateway', toVersion: '1.5.0' },
    { product: 'identity', toVersion: '3.3.0' },
  ],
  sequence: [
    { id: 'migrate', order: 1, product: 'identity' },
    { id: 'roll-identity', order: 2, product: 'identity' },
    { id: 'roll-gateway', order: 3, product: 'gateway' },
  ],
};

const e = {
  planned: (id = 'r1', p: Plan = plan): RolloutEvent => ({
    type: 'RolloutPlanned',
    data: { rolloutId: id, plan: p },
  }),
  started: (): RolloutEvent => ({ type: 'RolloutStarted', data: {} }),
  stepStarted: (stepId: string): RolloutEvent => ({ type: 'StepStarted', data: { stepId } }),
  stepCompleted: (stepId: string): RolloutEvent => ({ type: 'StepCompleted', data: { stepId } }),
  rollbackStarted: (): RolloutEvent => ({ type: 'RollbackStarted', data: { reason: 'errors' } }),
  completed: (): RolloutEvent => ({ type: 'RolloutCompleted', data: {} }),
};
const state = (events: RolloutEvent[], id = 'r1'): RolloutState => foldRollout(id, recorded(events));

const view = (overrides: Partial<CDEventView> & Pick<CDEventView, 'kind'>): CDEventView => ({
  type: `dev.cdevents.${overrides.kind}.0.2.0`,
  specVersion: '0.4.1',
  subjectId: 'service/gateway',
  occurredAt: recordedAtOf(10),
  environment: 'production',
  service: 'service/gateway',
  ...overrides,
});
const delivery = (v: CDEventView, extra: Partial<Delivery> = {}): Delivery => ({
  source: '/tekton/prod',
  id: 'ce-1',
  cdevent: v,
  ...extra,
});

const inProgress = [e.planned(), e.started()];
const gatewayRunning = [...inProgress, e.stepStarted('roll-gateway')];

describe('land: service deployed or upgraded completes the running step that moves the service', () => {
  it.each(['service.deployed', 'service.upgraded'] as const)('%s', (kind) => {
    expect(land(delivery(view({ kind })), state(gatewayRunning))).toEqual({
      command: { type: 'CompleteStep', stepId: 'roll-gateway' },
    });
  });

  it('names the step from the stepid hint when given', () => {
    expect(land(delivery(view({ kind: 'service.deployed' }), { stepId: 'x' }), state(inProgress))).toEqual({
      command: { type: 'CompleteStep', stepId: 'x' },
    });
  });

  it('keeps it aside when no step moving the service is running, or when two are', () => {
    const none = land(delivery(view({ kind: 'service.deployed' })), state(inProgress));
    expect(none).toEqual({
      unattributed: expect.stringContaining('no step moving service/gateway is running'),
    });
    const identity = view({ kind: 'service.deployed', subjectId: 'identity', service: 'identity' });
    const both = land(
      delivery(identity),
      state([...inProgress, e.stepStarted('migrate'), e.stepStarted('roll-identity')]),
    );
    expect(both).toEqual({
      unattributed: expect.stringContaining('several steps moving identity are running'),
    });
    const unknown = view({ kind: 'service.deployed', subjectId: 'billing', service: 'billing' });
    expect(land(delivery(unknown), state(inProgress))).toEqual({
      unattributed: 'no step of the plan moves billing',
    });
  });
});

describe('land: service rolled back records a rollback', () => {
  it('records a completed rollback to the first step moving the service that ran', () => {
    const ran = [
      ...inProgress,
      e.stepStarted('migrate'),
      e.stepCompleted('migrate'),
      e.stepStarted('roll-identity'),
    ];
    const v = view({
      kind: 'service.rolledback',
      subjectId: 'service/identity',
      service: 'service/identity',
    });
    expect(land(delivery(v), state(ran))).toEqual({
      command: {
        type: 'RecordRollback',
        toStepId: 'migrate',
        reason: 'service/identity rolled back in production, reported by /tekton/prod',
      },
    });
  });

  it('completes the rollback already under way', () => {
    expect(
      land(delivery(view({ kind: 'service.rolledback' })), state([...gatewayRunning, e.rollbackStarted()])),
    ).toEqual({ command: { type: 'CompleteRollback' } });
  });
});

describe('land: a finished test run is a path verification with its outcome', () => {
  it.each([
    ['testcaserun.finished', 'pass', 'pass'],
    ['testcaserun.finished', 'fail', 'fail'],
    ['testsuiterun.finished', 'error', 'fail'],
    ['testsuiterun.finished', 'cancel', 'fail'],
  ] as const)('%s %s → %s', (kind, outcome, verdict) => {
    const v = view({ kind, subjectId: 'run-1', name: 'Login Test', outcome, service: undefined });
    expect(land(delivery(v), state(inProgress))).toEqual({
      command: {
        type: 'VerifyPath',
        path: 'Login Test',
        verdict,
        evidence: `dev.cdevents.${kind}.0.2.0 /tekton/prod ce-1: ${outcome}`,
      },
    });
  });

  it('verifies the path the sender names (customData.path), else the run', () => {
    const v = view({
      kind: 'testsuiterun.finished',
      subjectId: 'run-1',
      outcome: 'pass',
      service: undefined,
    });
    const named = land(delivery(v, { path: 'user signs in' }), state(inProgress));
    expect(named).toMatchObject({ command: { path: 'user signs in', verdict: 'pass' } });
    expect(land(delivery(v), state(inProgress))).toMatchObject({ command: { path: 'run-1' } });
  });
});

describe('land: an incident is recorded only inside the rollout window', () => {
  const incident = (occurredAt: string) =>
    view({ kind: 'incident.detected', subjectId: 'inc-1', occurredAt });

  it('records it while the rollout is in flight and after its start', () => {
    const landing = land(delivery(incident(recordedAtOf(3))), state(gatewayRunning));
    expect(landing).toEqual({
      command: { type: 'RecordExternalFact', fact: expect.objectContaining({ kind: 'incident.detected' }) },
    });
  });

  it.each([
    ['before the start', gatewayRunning, recordedAtOf(1)],
    ['while only planned', [e.planned()], recordedAtOf(5)],
  ] as const)('keeps it aside %s', (_, events, at) => {
    expect(land(delivery(incident(at)), state([...events]))).toEqual({
      unattributed: expect.stringContaining("outside the rollout's window"),
    });
  });
});

describe('land: an event about another environment than the rollout moves', () => {
  it('is kept aside, even when it names the rollout', () => {
    const v = view({ kind: 'service.deployed', environment: 'staging' });
    expect(land(delivery(v), state(gatewayRunning))).toEqual({
      unattributed: 'the event is about environment staging; rollout r1 moves production',
    });
  });
});

describe('land: pipeline runs and the rest', () => {
  it('a pipeline run started for a named step starts it; without a step it is a fact', () => {
    const v = view({
      kind: 'pipelinerun.started',
      service: undefined,
      environment: undefined,
      name: 'deploy',
    });
    expect(land(delivery(v, { stepId: 'roll-gateway' }), state(inProgress))).toEqual({
      command: { type: 'StartStep', stepId: 'roll-gateway' },
    });
    expect(land(delivery(v), state(inProgress))).toMatchObject({ command: { type: 'RecordExternalFact' } });
  });

  it.each([
    ['failure', 'FailStep'],
    ['error', 'FailStep'],
    ['success', 'RecordExternalFact'],
  ] as const)('a pipeline run finished with %s for a named step: %s', (outcome, type) => {
    const v = view({ kind: 'pipelinerun.finished', outcome, reason: 'boom', service: undefined });
    expect(land(delivery(v, { stepId: 'roll-gateway' }), state(gatewayRunning))).toMatchObject({
      command: { type },
    });
  });

  it.each(['service.removed', 'environment.modified'] as const)('%s is a fact', (kind) => {
    expect(land(delivery(view({ kind })), state(inProgress))).toMatchObject({
      command: { type: 'RecordExternalFact', fact: { kind } },
    });
  });
});

describe('correlation without a rollout id: the single in-flight rollout moving the service there', () => {
  const gateway = view({ kind: 'service.deployed' });

  it('matches environment and service, with or without a kind prefix', () => {
    expect(planMoves(plan, gateway)).toBe(true);
    expect(planMoves(plan, { ...gateway, service: 'gateway' })).toBe(true);
    expect(planMoves(plan, { ...gateway, environment: 'staging' })).toBe(false);
    expect(planMoves(plan, { ...gateway, service: 'billing' })).toBe(false);
    expect(planMoves(plan, { ...gateway, service: undefined })).toBe(true);
    expect(planMoves(plan, { ...gateway, environment: undefined })).toBe(false);
    expect(namesOf('deployment/ns/gateway')).toEqual(['deployment/ns/gateway', 'gateway']);
  });

  it('picks the one in-flight rollout, ignoring planned and closed ones', () => {
    const candidates = [
      state([e.planned('a')], 'a'),
      state([e.planned('b'), e.started()], 'b'),
      state([e.planned('c'), e.started(), e.completed()], 'c'),
      state([e.planned('d', { ...plan, environment: 'staging' }), e.started()], 'd'),
    ];
    expect(candidates.map(inFlight)).toEqual([false, true, false, true]);
    expect(pickInFlight(gateway, candidates)).toEqual({ rolloutId: 'b' });
  });

  it('guesses nothing: none, or more than one, is a reason', () => {
    expect(pickInFlight(gateway, [])).toEqual({
      unattributed: 'no in-flight rollout moves service/gateway in production',
    });
    const two = [state([e.planned('a'), e.started()], 'a'), state([e.planned('b'), e.started()], 'b')];
    expect(pickInFlight(gateway, two)).toEqual({
      unattributed: expect.stringMatching(
        /^2 in-flight rollouts move service\/gateway in production \(a, b\)/,
      ),
    });
    expect(pickInFlight({ ...gateway, environment: undefined }, two)).toEqual({
      unattributed: expect.stringContaining('no rollout named'),
    });
  });
});

describe('externalFact', () => {
  it('carries what the event said, the CloudEvent identity, and who attached it', () => {
    const v = view({ kind: 'incident.resolved', subjectId: 'inc-9', description: 'latency back to normal' });
    expect(externalFact(delivery(v), { from: 'u-1', note: 'ours' })).toEqual({
      kind: 'incident.resolved',
      cdeventType: 'dev.cdevents.incident.resolved.0.2.0',
      source: '/tekton/prod',
      cloudEventId: 'ce-1',
      subjectId: 'inc-9',
      occurredAt: recordedAtOf(10),
      summary: summaryOf(v),
      environment: 'production',
      service: 'service/gateway',
      attachedFrom: 'u-1',
      note: 'ours',
    });
    expect(summaryOf(v)).toBe(
      'incident inc-9 resolved in production on service/gateway: latency back to normal',
    );
  });
});
