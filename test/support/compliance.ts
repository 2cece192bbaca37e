import { expect } from 'vitest';
import { RULES, type RuleId, type RuleResult, type Verdict } from '../../src/compliance/rulebook.js';
import type { RolloutEvent } from '../../src/rollouts/rollout.events.js';
import { positioned } from './rollout-events.js';

/** One rule's judgement of these events, stamped with ledger positions `first`, `first + 1`, ... */
export function judge(id: RuleId, events: readonly RolloutEvent[], first = 1): RuleResult {
  const rule = RULES.find((r) => r.id === id);
  if (!rule) throw new Error(`no rule ${id} in the rulebook`);
  return rule.evaluate(positioned(events, first));
}

/** A row of a rule's table test: the story, and what the rule must say about it. */
export type Case = [
  story: string,
  events: readonly RolloutEvent[],
  verdict: Verdict,
  evidence: number[],
  finding: string | RegExp,
];

/** Checks a rule's verdict, evidence positions and (part of) its finding for these events. */
export function expectJudgement(id: RuleId, [, events, verdict, evidence, finding]: Case): RuleResult {
  const result = judge(id, events);
  expect(result.id).toBe(id);
  expect({ verdict: result.verdict, evidence: result.evidence }, result.finding).toEqual({
    verdict,
    evidence,
  });
  if (typeof finding === 'string') expect(result.finding).toContain(finding);
  else expect(result.finding).toMatch(finding);
  expect(result.finding).not.toMatch(/\n/);
  return result;
}
