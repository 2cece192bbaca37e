import { z } from 'zod';

const targetName = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/,
    'must be a target name (1-63 letters, digits, ".", "_" or "-")',
  );
const isoDateTime = z.iso.datetime({ offset: true });

export const takeSnapshotBody = z.strictObject({ target: targetName.optional() }).optional();

export const snapshotIdParam = z.uuid({ message: 'must be a snapshot id (a UUID)' });

export const snapshotListQuery = z.strictObject({
  target: targetName.optional(),
  from: isoDateTime.optional(),
  to: isoDateTime.optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(200).optional(),
});
export type SnapshotListQuery = z.infer<typeof snapshotListQuery>;

export const driftListQuery = z.strictObject({
  target: targetName.optional(),
  open: z
    .enum(['true', 'false'], { message: 'must be true or false' })
    .transform((v) => v === 'true')
    .optional(),
  from: isoDateTime.optional(),
  to: isoDateTime.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z.string().max(200).optional(),
});
export type DriftListQuery = z.infer<typeof driftListQuery>;

export const timelineQuery = z.strictObject({
  target: targetName.optional(),
  from: isoDateTime.optional(),
  to: isoDateTime.optional(),
});
export type TimelineQuery = z.infer<typeof timelineQuery>;

/** Keyset cursor: the last row's (time, id), opaque to clients. */
export function encodeCursor(at: string, id: string): string {
  return Buffer.from(JSON.stringify([at, id]), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): { at: string; id: string } | undefined {
  try {
    const parsed = z
      .tuple([isoDateTime, z.uuid()])
      .safeParse(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')));
    return parsed.success ? { at: parsed.data[0], id: parsed.data[1] } : undefined;
  } catch {
    return undefined;
  }
}
