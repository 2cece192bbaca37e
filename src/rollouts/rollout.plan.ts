import { z } from 'zod';

/** The shared-truth and readiness surfaces of the platform (the contract boundary during rollout). */
export const SURFACES = [
  'version-truth',
  'contracts-drift',
  'observability-readiness',
  'recovery-readiness',
] as const;
export type Surface = (typeof SURFACES)[number];
export const SHARED_TRUTH_SURFACES: readonly Surface[] = ['version-truth', 'contracts-drift'];
export const READINESS_SURFACES: readonly Surface[] = ['observability-readiness', 'recovery-readiness'];

const MAX_ITEMS = 200;
const text = (max = 1000) => z.string().trim().min(1).max(max);
/** Ids appear in URLs: a conservative alphabet, no slashes, no dots-only traversal. */
export const identifier = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/,
    'must be 1-100 letters, digits, ".", "_" or "-", starting with a letter or digit',
  );
const version = z.string().trim().min(1).max(100);
const isoDateTime = z.iso.datetime({ offset: true });

export const surface = z.enum(SURFACES);

/**
 * An object schema's shape with its keys in RFC 8785 order. zod builds a parsed object in its
 * shape's order, so a plan parsed through these schemas is already canonical and hashing it walks
 * it without copying it (`canonicalJson` copies only objects whose keys are out of order). Only
 * order changes: what is accepted and what is refused stay the same, and a body with several
 * faults lists them in this order.
 */
function canonicalShape<T extends z.ZodRawShape>(shape: T): T {
  return Object.fromEntries(Object.entries(shape).sort(([a], [b]) => (a < b ? -1 : 1))) as T;
}

export const productChange = z.strictObject(
  canonicalShape({
    product: identifier,
    fromVersion: version.optional(),
    toVersion: version,
  }),
);

export const compatibilityEvidence = z.strictObject(
  canonicalShape({
    product: identifier,
    reference: text(),
    result: z.enum(['compatible', 'incompatible', 'conditional', 'unknown']),
    checkedAt: isoDateTime.optional(),
  }),
);

export const releaseNote = z.strictObject(
  canonicalShape({
    product: identifier,
    version,
    reference: text(),
    reviewedBy: text(200).optional(),
  }),
);

export const planStep = z.strictObject(
  canonicalShape({
    id: identifier,
    order: z.number().int().min(0).max(1_000_000),
    product: identifier.optional(),
    layer: text(200).optional(),
    action: text().optional(),
    reversible: z.boolean().optional(),
  }),
);

export const rollbackBoundary = z.strictObject(
  canonicalShape({
    reversibleState: text().optional(),
    irreversibleAfterStepId: identifier.optional(),
  }),
);

export const verificationPlan = z.strictObject(
  canonicalShape({
    pre: z
      .array(surface)
      .max(SURFACES.length * 2)
      .optional(),
    post: z
      .array(surface)
      .max(SURFACES.length * 2)
      .optional(),
    representativePaths: z.array(text()).max(MAX_ITEMS).optional(),
  }),
);

/**
 * The plan of a rollout. Every part may be missing (that is recorded, and the rulebook reports
 * it); a part that is present must have the right shape, and unknown keys are refused so a typo
 * never silently reads as "missing".
 */
export const planSchema = z
  .strictObject(
    canonicalShape({
      title: text(300).optional(),
      scope: z.enum(['stack-wide', 'product']).optional(),
      environment: identifier.optional(),
      products: z.array(productChange).max(MAX_ITEMS).optional(),
      compatibility: z.array(compatibilityEvidence).max(MAX_ITEMS).optional(),
      releaseNotes: z.array(releaseNote).max(MAX_ITEMS).optional(),
      sequence: z.array(planStep).max(MAX_ITEMS).optional(),
      sharedTruthChanges: text(2000).optional(),
      rollbackBoundary: rollbackBoundary.optional(),
      verification: verificationPlan.optional(),
    }),
  )
  .superRefine((plan, ctx) => {
    const seen = new Set<string>();
    plan.sequence?.forEach((step, i) => {
      if (seen.has(step.id)) {
        ctx.addIssue({
          code: 'custom',
          path: ['sequence', i, 'id'],
          message: `step id "${step.id}" is used twice`,
        });
      }
      seen.add(step.id);
    });
  });

export type Plan = z.infer<typeof planSchema>;

/** The parts of a plan the rulebook looks for; a rollout's view lists the ones missing. */
export const PLAN_PARTS = [
  'title',
  'scope',
  'environment',
  'products',
  'compatibility',
  'releaseNotes',
  'sequence',
  'sharedTruthChanges',
  'rollbackBoundary',
  'verification',
] as const satisfies readonly (keyof Plan)[];
export type PlanStep = z.infer<typeof planStep>;

/** The plan parts that are absent or empty: recorded as missing, and shown as such. */
export function missingPlanParts(plan: Plan): (typeof PLAN_PARTS)[number][] {
  return PLAN_PARTS.filter((part) => {
    const value = plan[part];
    return value === undefined || (Array.isArray(value) && value.length === 0);
  });
}
