import { z } from 'zod';
import { identifier, SURFACES } from './rollout.plan.js';

export { planSchema } from './rollout.plan.js';

const reason = z.string().trim().min(1).max(2000);
/** Any JSON value (what a surface said, or was expected to say). */
const jsonValue = z.json();

export const rolloutIdParam = z.uuid({ message: 'must be a rollout id (a UUID)' });
export const stepIdParam = identifier;

export const approvalBody = z
  .strictObject({ comment: z.string().trim().min(1).max(2000).optional() })
  .optional();

export const readbackBody = z.strictObject({
  phase: z.enum(['pre', 'during', 'post']),
  surface: z.enum(SURFACES),
  expected: jsonValue,
  observed: jsonValue,
  verdict: z.enum(['pass', 'fail', 'warn']),
  stepId: identifier.optional(),
});

export const emptyBody = z.strictObject({}).optional();

export const stepFailBody = z.strictObject({ reason });

export const pathVerificationBody = z.strictObject({
  path: z.string().trim().min(1).max(1000),
  verdict: z.enum(['pass', 'fail']),
  evidence: z.string().trim().min(1).max(4000).optional(),
});

export const rollbackBody = z.strictObject({ reason, toStepId: identifier.optional() });

export const abortBody = z.strictObject({ reason });

/** `asOf`: a ledger position (digits) or an ISO-8601 time. */
export const asOfQuery = z.strictObject({
  asOf: z
    .string()
    .refine((v) => /^\d{1,15}$/.test(v) || z.iso.datetime({ offset: true }).safeParse(v).success, {
      message: 'must be a ledger position or an ISO-8601 time',
    })
    .transform((v) => (/^\d+$/.test(v) ? { position: Number(v) } : { time: new Date(v) }))
    .optional(),
});

export const STATUSES = ['planned', 'in_progress', 'rolling_back', 'completed', 'aborted'] as const;

export const listQuery = z.strictObject({
  status: z.enum(STATUSES).optional(),
  product: identifier.optional(),
  environment: identifier.optional(),
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
  q: z.string().trim().min(1).max(200).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(200).optional(),
});
export type ListQuery = z.infer<typeof listQuery>;

/** Keyset cursor: the last row's (createdAt, id), opaque to clients. */
export function encodeCursor(createdAt: string, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id]), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): { createdAt: string; id: string } | undefined {
  try {
    const parsed = z
      .tuple([z.iso.datetime({ offset: true }), z.uuid()])
      .safeParse(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')));
    return parsed.success ? { createdAt: parsed.data[0], id: parsed.data[1] } : undefined;
  } catch {
    return undefined;
  }
}

/** `If-Match: "3"` (or W/"3", or 3) → 3. */
export function parseIfMatch(header: string | undefined): number | undefined | 'invalid' {
  if (header === undefined) return undefined;
  const m = /^\s*(?:W\/)?"?(\d{1,15})"?\s*$/.exec(header);
  return m ? Number(m[1]) : 'invalid';
}

export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;
