import { defineRule, evidence, fail, listOf, pass, plural } from '../facts.js';

export const releaseNotesCited = defineRule(
  'release-notes-cited',
  'Release notes were cited',
  "Pass when every moved product's `toVersion` has a release-notes entry (same product and version); fail otherwise.",
  ({ plan, planEvent }) => {
    const used = evidence(planEvent);
    const moves = plan.products ?? [];
    if (moves.length === 0) {
      return fail(used, 'the plan names no products it moves, so no release notes can be tied to one');
    }
    const notes = plan.releaseNotes ?? [];
    const missing = moves.flatMap((move) => {
      const target = `${move.product} ${move.toVersion}`;
      if (notes.some((n) => n.product === move.product && n.version === move.toVersion)) return [];
      const other = notes.filter((n) => n.product === move.product).map((n) => n.version);
      return [other.length > 0 ? `${target} (notes cite ${listOf(other)})` : target];
    });
    if (missing.length > 0) return fail(used, `no release notes cited for ${listOf(missing, 3)}`);
    return pass(
      used,
      `release notes cited for ${plural(moves.length, 'target version')}: ${listOf(
        moves.map((m) => `${m.product} ${m.toVersion}`),
      )}`,
    );
  },
);
