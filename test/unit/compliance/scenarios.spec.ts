import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { InvalidTransition } from '../../../src/common/errors.js';
import { evaluateRollout, RULE_IDS, type RuleId } from '../../../src/compliance/rulebook.js';
import { commandOf, scenarioEvents } from '../../support/scenario-events.js';
import { loadScenarios, type Scenario } from '../../support/scenarios.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/compliance');
const shared = loadScenarios();
/** Our own fixtures: each built to fail exactly one rule (see `alsoFails` for the two that cannot). */
const own = loadScenarios(FIXTURES);

function verdictsOf(s: Scenario) {
  const events = scenarioEvents(s);
  const results = evaluateRollout(events);
  return { events, results, verdicts: Object.fromEntries(results.map((r) => [r.id, r.verdict])) };
}

function expectConformance(s: Scenario) {
  // Every call records exactly one event, as through the API.
  const { events, results, verdicts } = verdictsOf(s);
  expect(events).toHaveLength(s.calls.length);
  expect(Object.keys(s.verdicts).sort(), 'the scenario lists a verdict for every rule').toEqual(
    [...RULE_IDS].sort(),
  );
  const findings = results.map((r) => `${r.id}: ${r.verdict}: ${r.finding}`).join('\n');
  expect(verdicts, findings).toEqual(s.verdicts);
  const positions = new Set(events.map((e) => e.position));
  for (const r of results) for (const p of r.evidence) expect(positions.has(p)).toBe(true);
}

describe('the shared conformance set, replayed purely (REST call → command → decide → event)', () => {
  it('finds every scenario', () => {
    expect(shared.map((s) => s.scenario)).toEqual([
      '01-compliant',
      '02-version-bump-only',
      '03-rollback-without-boundary',
      '04-rollback-past-boundary',
      '05-rollback-within-boundary',
      '06-steps-out-of-order',
      '07-no-post-verification',
      '08-in-flight',
      '09-missing-evidence',
      '10-started-on-failed-preflight',
      '11-no-representative-path',
      '12-undeclared-shared-truth',
      '13-verification-as-afterthought',
    ]);
  });

  it.each(shared.map((s) => [s.scenario, s] as const))('%s: every rule gives the listed verdict', (_, s) =>
    expectConformance(s),
  );
});

/**
 * Rules that cannot pass while the fixture's rule fails: the version-bump failure mode is the
 * absence of the parts four other rules ask for, and a rollback without a boundary is a
 * boundary not declared.
 */
const alsoFails: Partial<Record<RuleId, RuleId[]>> = {
  'failure-mode-version-bump-only': [
    'sequence-explicit',
    'compatibility-checked',
    'verification-planned',
    'rollback-boundary-declared',
  ],
  'failure-mode-rollback-without-boundary': ['rollback-boundary-declared'],
};

const targetOf = (s: Scenario): RuleId => {
  const id = /^fixture-\d+-fails-(.+)$/.exec(s.scenario)?.[1];
  const rule = RULE_IDS.find((r) => r === id);
  if (!rule) throw new Error(`${s.scenario}: name it fixture-NN-fails-<rule id>`);
  return rule;
};

describe('our own fixtures: each fails exactly one rule, passing every other it can', () => {
  it('has one fixture per rule', () => {
    expect(own.map(targetOf).sort()).toEqual([...RULE_IDS].sort());
  });

  it.each(own.map((s) => [s.scenario, s] as const))('%s: every rule gives the listed verdict', (_, s) =>
    expectConformance(s),
  );

  it.each(own.map((s) => [s.scenario, s] as const))(
    '%s: fails its rule, and only what must fail with it',
    (_, s) => {
      const target = targetOf(s);
      const failing = Object.entries(verdictsOf(s).verdicts)
        .filter(([, v]) => v === 'fail')
        .map(([id]) => id);
      expect(failing.sort()).toEqual([target, ...(alsoFails[target] ?? [])].sort());
    },
  );
});

describe('the pure replay', () => {
  it('refuses a call the API would refuse, so a fixture cannot pass here and fail over HTTP', () => {
    const s = own[0];
    if (!s) throw new Error('no fixtures');
    // Completing a step that never started is a 409 through the API.
    const broken: Scenario = {
      ...s,
      calls: [
        s.calls[0]!,
        { method: 'POST', path: '/api/v1/rollouts/{id}/steps/migrate-schema/complete', body: {} },
      ],
    };
    expect(() => scenarioEvents(broken)).toThrow(InvalidTransition);
    // A body with an unknown key is a 400.
    expect(() =>
      commandOf({ method: 'POST', path: '/api/v1/rollouts/{id}/abort', body: { reason: 'x', typo: 1 } }),
    ).toThrow();
    expect(() => commandOf({ method: 'POST', path: '/api/v1/rollouts/{id}/nope', body: {} })).toThrow(
      /no such rollout call/,
    );
  });

  it('gives ledger positions from the one asked for', () => {
    const s = shared[0];
    if (!s) throw new Error('no scenarios');
    const events = scenarioEvents(s, 101);
    expect(events.map((e) => e.position)).toEqual(s.calls.map((_, i) => 101 + i));
    expect(events.map((e) => e.streamVersion)).toEqual(s.calls.map((_, i) => 1 + i));
    expect(evaluateRollout(events).find((r) => r.id === 'pre-verification')?.evidence).toEqual([
      101, 102, 103, 104,
    ]);
  });
});
