import type { Surface } from '../rollouts/rollout.plan.js';
import {
  isReadiness,
  isSharedTruth,
  READINESS_CLASS,
  type Readback,
  type Recorded,
  SHARED_TRUTH_CLASS,
} from './facts.js';

/**
 * Which surfaces a set of readbacks covers, against what a rule requires: a shared-truth
 * surface, a readiness surface, and every surface the plan names for that phase.
 */
export interface Coverage {
  /** The latest readback of each surface, in the order the surfaces were first read. */
  latest: Map<Surface, Readback>;
  /** What is not covered, in words: named surfaces first, then a class none of them stands for. */
  missing: string[];
}

export function coverage(readbacks: readonly Readback[], planned: readonly Surface[]): Coverage {
  const latest = new Map<Surface, Readback>();
  for (const r of readbacks) latest.set(r.data.surface, r);
  const read = [...latest.keys()];
  const missingNamed = [...new Set(planned)].filter((s) => !latest.has(s));
  const missing: string[] = [...missingNamed];
  if (!read.some(isSharedTruth) && !missingNamed.some(isSharedTruth)) missing.push(SHARED_TRUTH_CLASS);
  if (!read.some(isReadiness) && !missingNamed.some(isReadiness)) missing.push(READINESS_CLASS);
  return { latest, missing };
}

export const isReadback = (e: Recorded): e is Readback => e.type === 'ReadbackRecorded';
