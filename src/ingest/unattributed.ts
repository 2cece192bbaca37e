import type { Json } from '../database/schema.js';
import type { StoredEvent } from '../event-store/event-store.types.js';
import type { ExternalFact } from '../rollouts/rollout.events.js';
import { derivedUuid } from '../rollouts/rollouts.service.js';

/**
 * The `unattributed` stream: every valid CloudEvent that matched no rollout (or that its rollout
 * refused), with the reason, and every later attachment of one of them to a rollout.
 */
export type UnattributedEvent =
  | {
      type: 'CloudEventUnattributed';
      data: {
        /** Why it is not on a rollout. */
        reason: string;
        /** The fact it would record on a rollout if attached. */
        fact: ExternalFact;
        /** The rollout the sender named, if any (it did not exist, or refused the event). */
        rolloutId?: string;
      };
    }
  | {
      type: 'UnattributedEventAttached';
      data: { unattributedEventId: string; rolloutId: string; factEventId: string; note?: string };
    };

export type UnattributedData = Extract<UnattributedEvent, { type: 'CloudEventUnattributed' }>['data'];
export type AttachedData = Extract<UnattributedEvent, { type: 'UnattributedEventAttached' }>['data'];

export const UNATTRIBUTED = 'CloudEventUnattributed';
export const ATTACHED = 'UnattributedEventAttached';

/** The id CloudEvents `source` + `id` are recorded under, wherever they land: the same on every delivery. */
export const cloudEventRecordId = (source: string, id: string) => derivedUuid('cloudevent', source, id);
/** The id of the fact an attachment records on the rollout. */
export const attachedFactId = (unattributedEventId: string) => derivedUuid('attach', unattributedEventId);
/** The id of the attachment's own event on the unattributed stream. */
export const attachmentId = (unattributedEventId: string) => derivedUuid('attached', unattributedEventId);

/** One unattributed CloudEvent, as `GET /api/v1/ingest/unattributed` lists it. */
export interface UnattributedItem {
  /** The id to attach it by. */
  eventId: string;
  streamVersion: number;
  position: number | null;
  recordedAt: string;
  reason: string;
  fact: ExternalFact;
  /** The CloudEvent as it was received. */
  cloudEvent: Json;
  attached: { rolloutId: string; factEventId: string; at: string; by: string | null } | null;
}

/**
 * The list item of an unattributed event, with its attachment if there is one.
 *
 * @example
 * unattributedItem(stored, undefined).attached; // null
 */
export function unattributedItem(
  event: StoredEvent & { position: number | null },
  attachment: StoredEvent | undefined,
): UnattributedItem {
  const data = event.data as unknown as Extract<
    UnattributedEvent,
    { type: 'CloudEventUnattributed' }
  >['data'];
  const attachedData = attachment?.data as unknown as
    | Extract<UnattributedEvent, { type: 'UnattributedEventAttached' }>['data']
    | undefined;
  const by = (attachment?.metadata.actor as { name?: unknown } | undefined)?.name;
  return {
    eventId: event.eventId,
    streamVersion: event.streamVersion,
    position: event.position,
    recordedAt: event.recordedAt,
    reason: data.reason,
    fact: data.fact,
    cloudEvent: event.metadata.cloudEvent ?? null,
    attached:
      attachment && attachedData
        ? {
            rolloutId: attachedData.rolloutId,
            factEventId: attachedData.factEventId,
            at: attachment.recordedAt,
            by: typeof by === 'string' ? by : null,
          }
        : null,
  };
}
