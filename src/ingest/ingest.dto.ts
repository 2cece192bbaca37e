import { z } from 'zod';

/** The one route that takes CloudEvents (and the CloudEvents media types). */
export const CLOUDEVENTS_ROUTE = '/api/v1/ingest/cloudevents';
export const ATTACH_ROUTE = '/api/v1/ingest/unattributed/:id/attach';

export const unattributedIdParam = z.uuid({ message: 'must be an unattributed event id (a UUID)' });

/** `POST /api/v1/ingest/unattributed/:id/attach`. */
export const attachBody = z.strictObject({
  rolloutId: z.uuid({ message: 'must be a rollout id (a UUID)' }),
  note: z.string().trim().min(1).max(2000).optional(),
});
export type AttachBody = z.infer<typeof attachBody>;

/** `GET /api/v1/ingest/unattributed`: oldest first, a page after a stream version. */
export const unattributedQuery = z.strictObject({
  status: z.enum(['open', 'attached', 'all']).default('all'),
  after: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});
export type UnattributedQuery = z.infer<typeof unattributedQuery>;
