import { describe, expect, it } from 'vitest';
import { InvalidTransition, NotFound } from '../../../src/common/errors.js';
import { decide } from '../../../src/rollouts/rollout.decide.js';
import type { ExternalFact, RolloutEvent } from '../../../src/rollouts/rollout.events.js';
import { evolve, foldRollout, initialState } from '../../../src/rollouts/rollout.state.js';
import { DeciderSpecification, recorded } from '../../support/decider-spec.js';
import { ev, history, ROLLOUT_ID } from '../../support/rollout-events.js';

// The two commands ingestion adds to the rollout decider: a rollback a delivery tool reports as
// done, and an external fact (an incident, an environment change, an attached CloudEvent).

const spec = DeciderSpecification.for({ decide, evolve, initialState: () => initialState(ROLLOUT_ID) });

const fact: ExternalFact = {
  kind: 'incident.detected',
  cdeventType: 'dev.cdevents.incident.detected.0.2.0',
  source: '/monitoring/prod1',
  cloudEventId: 'ce-1',
  subjectId: 'incident-123',
  occurredAt: '2026-01-01T00:05:00.000Z',
  summary: 'incident incident-123 detected in prod',
  environment: 'prod',
};

describe('decide: RecordRollback', () => {
  it.each([
    ['a target step', { reason: 'api rolled back', toStepId: 'api' }],
    ['no target step', { reason: 'api rolled back' }],
  ] as const)('records a started and completed rollback, with %s', (_, data) => {
    spec
      .given(history.inProgress)
      .when({ type: 'RecordRollback', ...data })
      .then([
        { type: 'RollbackStarted', data },
        { type: 'RollbackCompleted', data: {} },
      ]);
  });

  it('leaves the rollout in progress, with the rolled-back steps undone', () => {
    const events: RolloutEvent[] = [
      ...history.inProgress,
      ev.stepStarted('schema'),
      ev.stepCompleted('schema'),
    ];
    const produced = decide(
      { type: 'RecordRollback', reason: 'undo', toStepId: 'schema' },
      foldRollout(ROLLOUT_ID, recorded(events)),
    );
    const state = foldRollout(ROLLOUT_ID, recorded([...events, ...produced]));
    expect(state.status).toBe('in_progress');
    expect(state.steps.find((s) => s.id === 'schema')?.status).toBe('rolled_back');
    expect(state.rollbacks).toHaveLength(1);
    expect(state.rollbacks[0]?.completedAt).toBeDefined();
  });

  it.each([
    ['planned', history.planned, 'nothing to roll back'],
    ['rolling_back', history.rollingBack, 'a rollback is already under way'],
    ['completed', history.completed, 'the rollout is completed'],
    ['aborted', history.abortedInProgress, 'the rollout is aborted'],
  ] as const)('is refused when the rollout is %s', (status, given, message) => {
    const error = spec
      .given(given)
      .when({ type: 'RecordRollback', reason: 'undo' })
      .thenThrows(InvalidTransition, message);
    expect(error.state).toBe(status);
  });

  it('is not found for a rollout that does not exist', () => {
    spec.given(history.missing).when({ type: 'RecordRollback', reason: 'undo' }).thenThrows(NotFound);
  });
});

describe('decide: RecordExternalFact', () => {
  it.each([
    ['planned', history.planned],
    ['in_progress', history.inProgress],
    ['rolling_back', history.rollingBack],
  ] as const)('records the fact as given on a %s rollout', (_, given) => {
    spec
      .given(given)
      .when({ type: 'RecordExternalFact', fact })
      .then([{ type: 'ExternalFactRecorded', data: fact }]);
  });

  it('stores no undefined field', () => {
    spec
      .given(history.inProgress)
      .when({ type: 'RecordExternalFact', fact: { ...fact, service: undefined, note: undefined } })
      .then([{ type: 'ExternalFactRecorded', data: fact }]);
  });

  it.each([
    ['completed', history.completed],
    ['aborted', history.abortedWhilePlanned],
  ] as const)('is refused on a %s rollout', (status, given) => {
    spec
      .given(given)
      .when({ type: 'RecordExternalFact', fact })
      .thenThrows(InvalidTransition, `the rollout is ${status}`);
  });

  it('is not found for a rollout that does not exist', () => {
    spec.given(history.missing).when({ type: 'RecordExternalFact', fact }).thenThrows(NotFound);
  });
});

describe('evolve: ExternalFactRecorded', () => {
  it('changes nothing but the version and the update time', () => {
    const before = foldRollout(ROLLOUT_ID, recorded(history.inProgress));
    const after = foldRollout(
      ROLLOUT_ID,
      recorded([...history.inProgress, { type: 'ExternalFactRecorded', data: fact }]),
    );
    expect(after).toStrictEqual({ ...before, version: 3, updatedAt: after.updatedAt });
    expect(after.updatedAt).not.toBe(before.updatedAt);
  });
});
