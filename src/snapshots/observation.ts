import { SURFACES, type Surface } from '../rollouts/rollout.plan.js';
import type { SnapshotData, SurfaceReading } from './snapshot.events.js';

const MAX_PRODUCTS = 500;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/**
 * Product → version from a version-truth body, for one environment. Two shapes are read:
 * `{ versions: { "<product>": "<version>" } }` and
 * `{ products: [{ product, version, environment? }] }` (the service's own surface; entries of
 * another environment are skipped). Anything else is a string saying what is wrong.
 *
 * @example
 * versionsOf({ ready: true, versions: { gateway: '1.5.0' } }, 'production') // { gateway: '1.5.0' }
 */
export function versionsOf(body: unknown, environment: string): Record<string, string> | string {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    return 'the body is not a JSON object';
  const { versions, products } = body as { versions?: unknown; products?: unknown };
  const out: Record<string, string> = {};
  const add = (product: unknown, version: unknown): string | undefined => {
    if (typeof product !== 'string' || !NAME.test(product))
      return `"${String(product).slice(0, 100)}" is not a product name`;
    if (typeof version !== 'string' || version.length === 0 || version.length > 100)
      return `the version of ${product} is not a string of 1-100 characters`;
    if (Object.hasOwn(out, product)) return `${product} is listed twice`;
    out[product] = version;
    return undefined;
  };
  if (versions !== null && typeof versions === 'object' && !Array.isArray(versions)) {
    const entries = Object.entries(versions);
    if (entries.length > MAX_PRODUCTS) return `more than ${MAX_PRODUCTS} products`;
    for (const [product, version] of entries) {
      const problem = add(product, version);
      if (problem) return problem;
    }
    return out;
  }
  if (Array.isArray(products)) {
    if (products.length > MAX_PRODUCTS) return `more than ${MAX_PRODUCTS} products`;
    for (const item of products) {
      if (item === null || typeof item !== 'object') return 'a "products" entry is not an object';
      const { product, version, environment: env } = item as Record<string, unknown>;
      if (env !== undefined && env !== environment) continue;
      const problem = add(product, version);
      if (problem) return problem;
    }
    return out;
  }
  return 'the body has neither "versions" nor "products"';
}

/** What drift detection looks at in a snapshot. */
export interface Observation {
  snapshotId: string;
  tickAt: string;
  /** Null when version-truth could not be read: nothing is known about versions. */
  versions: Record<string, string> | null;
  /** Per surface read, its `ready`; surfaces that failed are absent. */
  ready: Partial<Record<Surface, boolean>>;
}

export function observationOf(
  snapshot: Pick<SnapshotData, 'snapshotId' | 'tickAt' | 'versions' | 'surfaces'>,
): Observation {
  const ready: Partial<Record<Surface, boolean>> = {};
  for (const surface of SURFACES) {
    const reading: SurfaceReading | undefined = snapshot.surfaces[surface];
    if (reading?.status === 'ok') ready[surface] = reading.ready;
  }
  return { snapshotId: snapshot.snapshotId, tickAt: snapshot.tickAt, versions: snapshot.versions, ready };
}

/** One line naming every failed surface and why, for `SnapshotFailed.reason`. */
export function failureReason(surfaces: Record<Surface, SurfaceReading>): string | undefined {
  const failed = SURFACES.flatMap((s) => {
    const r = surfaces[s];
    return r.status === 'failed' ? [`${s}: ${r.error.code}: ${r.error.message}`] : [];
  });
  return failed.length > 0 ? failed.join('; ') : undefined;
}
