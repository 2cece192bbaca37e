import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ScenarioCall {
  method: 'POST' | 'PUT' | 'GET' | 'DELETE';
  path: string;
  body?: unknown;
  bind?: string;
}

export interface Scenario {
  scenario: string;
  why: string;
  calls: ScenarioCall[];
  verdicts: Record<string, 'pass' | 'fail' | 'pending' | 'not-applicable'>;
}

/** The rulebook's conformance set: `../shared/scenarios/` beside the project (SCENARIOS_DIR overrides). */
export const SCENARIOS_DIR =
  process.env.SCENARIOS_DIR ??
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../shared/scenarios');

export function loadScenarios(dir = SCENARIOS_DIR): Scenario[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Scenario);
}
