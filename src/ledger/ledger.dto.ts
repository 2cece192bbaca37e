import { z } from 'zod';

const position = z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const ledgerPageQuery = z.strictObject({
  after: position.default(0).describe('Return entries with a position greater than this'),
  limit: z.coerce.number().int().min(1).max(1000).default(100).describe('At most this many entries (≤ 1000)'),
});
export type LedgerPageQuery = z.infer<typeof ledgerPageQuery>;

export const ledgerTailQuery = z.strictObject({
  after: position.optional().describe('Start after this position; Last-Event-ID takes precedence'),
});

/** `Last-Event-ID` as sent back by an EventSource: the last position it received. */
export const lastEventId = z
  .string()
  .regex(/^\d{1,16}$/, 'must be a ledger position')
  .transform(Number)
  .optional();

export const keyIdParam = z.string().regex(/^[0-9a-f]{32}$/, 'must be a 32-digit hex key id');
