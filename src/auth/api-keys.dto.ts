import { z } from 'zod';
import { ROLES } from './principal.js';

const MAX_DAYS = 3650;

export const createApiKeyBody = z
  .strictObject({
    name: z
      .string({ error: (iss) => (iss.input === undefined ? 'is required' : 'must be a string') })
      .trim()
      .min(1, 'must not be empty')
      .max(100, 'must be at most 100 characters')
      .describe('What the key is for, to recognise it later (e.g. "ci-deployer")'),
    role: z
      .enum(ROLES, {
        error: (iss) => (iss.input === undefined ? 'is required' : `must be one of ${ROLES.join(', ')}`),
      })
      .describe('engineer: write rollouts and read; auditor: read, reports, exports; admin: manage keys'),
    expiresAt: z.iso
      .datetime({ offset: true, error: 'must be an ISO 8601 date-time, e.g. 2027-01-31T00:00:00Z' })
      .refine((v) => Date.parse(v) > Date.now(), 'must be in the future')
      .optional()
      .describe('When the key stops working'),
    expiresInDays: z
      .number()
      .int('must be a whole number of days')
      .min(1, 'must be at least 1')
      .max(MAX_DAYS, `must be at most ${MAX_DAYS}`)
      .optional()
      .describe('Or: the key stops working this many days from now'),
  })
  .superRefine((body, ctx) => {
    if (body.expiresAt !== undefined && body.expiresInDays !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['expiresInDays'],
        message: 'give expiresAt or expiresInDays, not both',
      });
    }
  });
export type CreateApiKeyBody = z.infer<typeof createApiKeyBody>;

/** When a key created now with this body expires, if ever. */
export function expiryOf(body: CreateApiKeyBody, now = Date.now()): Date | undefined {
  if (body.expiresAt !== undefined) return new Date(body.expiresAt);
  if (body.expiresInDays !== undefined) return new Date(now + body.expiresInDays * 86_400_000);
  return undefined;
}

export const apiKeyIdParam = z.guid('must be a UUID');
