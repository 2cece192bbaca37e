import type { RolloutState } from '../rollouts/rollout.state.js';

/**
 * The versions a completed rollout verified: per product it moved, what the last passing `post`
 * readback of version-truth observed for it (when it names the product with a string), else the
 * plan's `toVersion`. The readback wins because it is what was seen after the change, rollbacks
 * included. Pure.
 *
 * @example
 * verifiedVersions(completedGatewayRollout) // [{ product: 'gateway', version: '1.5.0' }]
 */
export function verifiedVersions(state: RolloutState): { product: string; version: string }[] {
  if (state.status !== 'completed') return [];
  const lastPost = state.readbacks
    .filter((r) => r.phase === 'post' && r.surface === 'version-truth' && r.verdict === 'pass')
    .at(-1);
  const observed =
    lastPost &&
    lastPost.observed !== null &&
    typeof lastPost.observed === 'object' &&
    !Array.isArray(lastPost.observed)
      ? lastPost.observed
      : {};
  const seen = new Map<string, string>();
  for (const change of state.plan.products ?? []) {
    const read = (observed as Record<string, unknown>)[change.product];
    seen.set(
      change.product,
      typeof read === 'string' && read.length > 0 && read.length <= 100 ? read : change.toVersion,
    );
  }
  return [...seen].map(([product, version]) => ({ product, version }));
}
