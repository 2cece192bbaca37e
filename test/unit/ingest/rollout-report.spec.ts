import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { evaluateRollout } from '../../../src/compliance/rulebook.js';
import { rolloutReportCsv } from '../../../src/reporting/rollout-report.csv.js';
import { buildRolloutReport, type ReportBasis } from '../../../src/reporting/rollout-report.js';
import type {
  ExternalFact,
  RecordedRolloutEvent,
  RolloutEvent,
} from '../../../src/rollouts/rollout.events.js';
import { compliantRollout, positioned, ROLLOUT_ID } from '../../support/rollout-events.js';

// The rollout report shows the facts delivery tools reported (and engineers attached), and they
// change no verdict: the rulebook judges the rollout, the facts are context for the auditor.

const basis: ReportBasis = {
  position: 100,
  chainHead: 'ab'.repeat(32),
  rulebookVersion: 'x',
  serviceVersion: 'y',
};

const incident: ExternalFact = {
  kind: 'incident.detected',
  cdeventType: 'dev.cdevents.incident.detected.0.2.0',
  source: '/monitoring/prod1',
  cloudEventId: 'ce-7',
  subjectId: 'incident-123',
  occurredAt: '2026-01-01T00:04:30.000Z',
  summary: 'incident incident-123 detected in prod: Response time above 10ms',
  environment: 'prod',
  attachedFrom: '5f1e0d0a-0000-4000-8000-000000000001',
  note: 'during the api step',
};

function withActor(events: RecordedRolloutEvent[]): RecordedRolloutEvent[] {
  return events.map((e) => ({ ...e, metadata: { actor: { id: 'key:1', name: 'alice', role: 'engineer' } } }));
}

const report = (events: RolloutEvent[]) => {
  const recorded = withActor(positioned(events));
  return buildRolloutReport(ROLLOUT_ID, recorded, evaluateRollout(recorded), basis);
};

describe('externalFacts in the rollout report', () => {
  const facts: RolloutEvent[] = [{ type: 'ExternalFactRecorded', data: incident }];
  const withFact = [...compliantRollout.slice(0, 5), ...facts, ...compliantRollout.slice(5)];

  it('lists each fact with its position, time and who recorded it; null for what it did not say', () => {
    expect(report(withFact).externalFacts).toEqual([
      {
        ...incident,
        service: null,
        outcome: null,
        url: null,
        recordedAt: expect.any(String),
        position: 6,
        actor: 'alice',
      },
    ]);
    expect(report(compliantRollout).externalFacts).toEqual([]);
  });

  it('changes no verdict of the rulebook', () => {
    const verdicts = (r: ReturnType<typeof report>) => r.rules.map((rule) => [rule.id, rule.verdict]);
    expect(verdicts(report(withFact))).toEqual(verdicts(report(compliantRollout)));
  });

  it('shows the facts in the CSV, on every row, in one cell', () => {
    const rows = parse(rolloutReportCsv(report(withFact)), { columns: true }) as Record<string, string>[];
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      expect(row.external_facts).toBe(`2026-01-01T00:04:30.000Z incident.detected: ${incident.summary}`);
    }
    const none = parse(rolloutReportCsv(report(compliantRollout)), { columns: true }) as Record<
      string,
      string
    >[];
    expect(none[0]?.external_facts).toBe('');
  });
});
