import { describe, expect, it } from 'vitest';
import {
  evaluateRollout,
  RULE_IDS,
  RULEBOOK_VERSION,
  RULES,
  type RuleResult,
} from '../../../src/compliance/rulebook.js';
import { recorded } from '../../support/decider-spec.js';
import { compliantPlan, compliantRollout, ev, positioned } from '../../support/rollout-events.js';

/** The table of DESIGN.md §3 (Compliance), in its order. */
const TABLE = [
  'sequence-explicit',
  'sequence-followed',
  'compatibility-checked',
  'release-notes-cited',
  'verification-planned',
  'pre-verification',
  'post-verification',
  'rollback-boundary-declared',
  'rollback-within-boundary',
  'shared-truth-change-declared',
  'failure-mode-version-bump-only',
  'failure-mode-rollback-without-boundary',
];

const verdicts = (results: RuleResult[]) => Object.fromEntries(results.map((r) => [r.id, r.verdict]));

describe('the rulebook', () => {
  it('is versioned', () => {
    expect(RULEBOOK_VERSION).toMatch(/^\d{4}\.\d{1,2}\.\d+$/);
  });

  it('has the rules of the table, in its order, each titled and described', () => {
    expect([...RULE_IDS]).toEqual(TABLE);
    expect(RULES.map((r) => r.id)).toEqual(TABLE);
    for (const rule of RULES) {
      expect(rule.title.length, rule.id).toBeGreaterThan(5);
      expect(rule.description.length, rule.id).toBeGreaterThan(20);
    }
    expect(new Set(RULES.map((r) => r.title)).size).toBe(RULES.length);
  });

  it('judges a rollout by every rule, in table order', () => {
    const results = evaluateRollout(positioned(compliantRollout));
    expect(results.map((r) => r.id)).toEqual(TABLE);
    expect(verdicts(results)).toEqual({
      'sequence-explicit': 'pass',
      'sequence-followed': 'pass',
      'compatibility-checked': 'pass',
      'release-notes-cited': 'pass',
      'verification-planned': 'pass',
      'pre-verification': 'pass',
      'post-verification': 'pass',
      'rollback-boundary-declared': 'pass',
      'rollback-within-boundary': 'not-applicable',
      'shared-truth-change-declared': 'pass',
      'failure-mode-version-bump-only': 'pass',
      'failure-mode-rollback-without-boundary': 'not-applicable',
    });
    for (const r of results) expect(r.finding, r.id).toMatch(/^\S[^\n]*$/);
  });

  it('judges a rollout with no events without throwing', () => {
    expect(verdicts(evaluateRollout([]))).toEqual({
      'sequence-explicit': 'fail',
      'sequence-followed': 'not-applicable',
      'compatibility-checked': 'fail',
      'release-notes-cited': 'fail',
      'verification-planned': 'fail',
      'pre-verification': 'pending',
      'post-verification': 'pending',
      'rollback-boundary-declared': 'fail',
      'rollback-within-boundary': 'not-applicable',
      'shared-truth-change-declared': 'fail',
      'failure-mode-version-bump-only': 'fail',
      'failure-mode-rollback-without-boundary': 'not-applicable',
    });
    expect(evaluateRollout([]).flatMap((r) => r.evidence)).toEqual([]);
  });

  it('cites ledger positions, whatever they are, and nothing for events not sequenced yet', () => {
    const sequenced = evaluateRollout(positioned(compliantRollout, 1001));
    const at1 = evaluateRollout(positioned(compliantRollout));
    expect(sequenced.map((r) => r.evidence)).toEqual(at1.map((r) => r.evidence.map((p) => p + 1000)));

    const unsequenced = evaluateRollout(recorded(compliantRollout));
    expect(unsequenced.flatMap((r) => r.evidence)).toEqual([]);
    expect(verdicts(unsequenced)).toEqual(verdicts(at1));
    // A finding still points at events, by stream version.
    expect(unsequenced.find((r) => r.id === 'pre-verification')?.finding).toBe(
      'before the start (stream v4): version-truth pass (stream v2) and observability-readiness pass (stream v3)',
    );

    // Partly sequenced (the sequencer lags): only the sequenced events are cited.
    const partly = recorded(compliantRollout).map((e, i) => (i < 3 ? { ...e, position: 7 + i } : e));
    expect(evaluateRollout(partly).find((r) => r.id === 'pre-verification')?.evidence).toEqual([7, 8, 9]);
  });

  it('is pure: the same events give the same results, and are not changed', () => {
    const events = positioned([ev.planned(compliantPlan), ev.started(), ev.stepStarted('api')]);
    const frozen = structuredClone(events);
    for (const e of frozen) Object.freeze(e);
    Object.freeze(frozen);
    expect(evaluateRollout(frozen)).toEqual(evaluateRollout(events));
    expect(frozen).toEqual(events);
  });
});
