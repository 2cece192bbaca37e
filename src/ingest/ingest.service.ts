import { Injectable } from '@nestjs/common';
import type { Principal } from '../auth/principal.js';
import { IdempotencyConflict, InvalidTransition, NotFound } from '../common/errors.js';
import type { Json } from '../database/schema.js';
import { EventStore } from '../event-store/event-store.repository.js';
import type { StoredEvent } from '../event-store/event-store.types.js';
import { MetricsService } from '../metrics/metrics.service.js';
import type { EventMetadata } from '../rollouts/rollout.events.js';
import type { RolloutState } from '../rollouts/rollout.state.js';
import {
  followingEventId,
  RolloutsService,
  requestDigest,
  type WriteContext,
} from '../rollouts/rollouts.service.js';
import { namesOf } from './cdevents/cdevent.view.js';
import { pathIn, type ValidCloudEvent } from './cdevents/cloudevent.js';
import { ATTACH_ROUTE, CLOUDEVENTS_ROUTE } from './ingest.dto.js';
import { type Delivery, externalFact, land, pickInFlight } from './ingest.mapping.js';
import { IngestRepository, UNATTRIBUTED_STREAM } from './ingest.repository.js';
import {
  ATTACHED,
  type AttachedData,
  attachedFactId,
  attachmentId,
  cloudEventRecordId,
  UNATTRIBUTED,
  type UnattributedData,
  type UnattributedItem,
  unattributedItem,
} from './unattributed.js';

/** Who sent a request, for the events it records. */
export interface Caller {
  principal: Principal;
  requestId: string;
}

/** What one CloudEvent became: the answer to its delivery, the same on every redelivery. */
export interface IngestResult {
  source: string;
  id: string;
  /** The ledger events it recorded (the first is derived from source + id). */
  eventIds: string[];
  /** Their types, e.g. `StepCompleted`, or `CloudEventUnattributed`. */
  recordedAs: string[];
  streamId: string;
  /** The rollout it landed on; null when it went to the unattributed stream. */
  rolloutId: string | null;
  /** Why it is unattributed. */
  reason?: string;
  /** True when this delivery was a redelivery: nothing new was recorded. */
  duplicate: boolean;
}

/** Who recorded an event, as every event's metadata says it. */
const actorOf = (principal: Principal): EventMetadata['actor'] => ({
  id: principal.id,
  name: principal.name,
  role: principal.role,
});

/** What the mapping needs of a CloudEvent: its identity, its CDEvent and the sender's hints. */
function deliveryOf(event: ValidCloudEvent): Delivery {
  const path = pathIn(event);
  return {
    source: event.source,
    id: event.id,
    cdevent: event.cdevent,
    ...(event.stepId ? { stepId: event.stepId } : {}),
    ...(path ? { path } : {}),
  };
}

/** The most events one write records (RecordRollback: two); bounds the look-up of a write's events. */
const MAX_EVENTS_PER_WRITE = 4;

/** Correlates CloudEvents to rollouts and records them; keeps the unattributed ones. */
@Injectable()
export class IngestService {
  constructor(
    private readonly store: EventStore,
    private readonly rollouts: RolloutsService,
    private readonly repo: IngestRepository,
    private readonly metrics: MetricsService,
  ) {}

  /**
   * Records each CloudEvent, in order. Idempotent per CloudEvent (source + id): a redelivery
   * records nothing and answers what the first delivery recorded.
   */
  async ingest(events: readonly ValidCloudEvent[], caller: Caller): Promise<IngestResult[]> {
    const results: IngestResult[] = [];
    for (const event of events) results.push(await this.ingestOne(event, caller));
    return results;
  }

  private async ingestOne(event: ValidCloudEvent, caller: Caller): Promise<IngestResult> {
    const recordId = cloudEventRecordId(event.source, event.id);
    const earlier = await this.recorded(event, recordId, true);
    if (earlier) return earlier;

    const delivery = deliveryOf(event);
    const target = await this.correlate(event);
    const written =
      'state' in target ? await this.writeOnRollout(event, delivery, target.state, caller, recordId) : target;
    return 'result' in written
      ? written.result
      : this.recordUnattributed(event, delivery, written.unattributed, caller, recordId);
  }

  /**
   * Lands the event on the rollout through its decider. A refusal (a closed rollout, a step that
   * is not running) is not an error of the sender's: the event is kept, with the decider's reason.
   */
  private async writeOnRollout(
    event: ValidCloudEvent,
    delivery: Delivery,
    state: RolloutState,
    caller: Caller,
    recordId: string,
  ): Promise<{ result: IngestResult } | { unattributed: string }> {
    const landing = land(delivery, state);
    if ('unattributed' in landing) return landing;
    try {
      const written = await this.rollouts.execute(
        state.id,
        landing.command,
        this.context(event, caller, recordId),
      );
      return { result: (await this.recorded(event, recordId, written.replayed)) ?? this.missing(recordId) };
    } catch (err) {
      if (err instanceof InvalidTransition || err instanceof NotFound) return { unattributed: err.message };
      return { result: await this.afterConflict(err, event, recordId) };
    }
  }

  /** The rollout named by the event, or the single in-flight one it is about. */
  private async correlate(
    event: ValidCloudEvent,
  ): Promise<{ state: RolloutState } | { unattributed: string }> {
    if (event.rolloutId) {
      const state = await this.rollouts.load(event.rolloutId);
      return state.exists ? { state } : { unattributed: `rollout ${event.rolloutId} does not exist` };
    }
    const { environment, service } = event.cdevent;
    const ids = environment
      ? await this.repo.openRolloutIds(namesOf(environment), service ? namesOf(service) : undefined)
      : [];
    const candidates = await Promise.all(ids.map((id) => this.rollouts.load(id)));
    const picked = pickInFlight(event.cdevent, candidates);
    if ('unattributed' in picked) return picked;
    const state = candidates.find((s) => s.id === picked.rolloutId);
    return state ? { state } : { unattributed: `rollout ${picked.rolloutId} does not exist` };
  }

  private context(event: ValidCloudEvent, caller: Caller, eventId: string): WriteContext {
    return {
      principal: caller.principal,
      requestId: caller.requestId,
      eventId,
      source: 'cloudevents',
      // Source + id name the CloudEvent: the same on every delivery, whatever the transport mode.
      requestDigest: requestDigest('POST', CLOUDEVENTS_ROUTE, { source: event.source, id: event.id }),
      extraMetadata: {
        cloudEvent: event.original,
        cloudEventMode: event.mode,
        cdeventType: event.type,
      },
    };
  }

  private async recordUnattributed(
    event: ValidCloudEvent,
    delivery: Delivery,
    reason: string,
    caller: Caller,
    recordId: string,
  ): Promise<IngestResult> {
    const data: UnattributedData = {
      reason: reason.slice(0, 2000),
      fact: externalFact(delivery),
      ...(event.rolloutId ? { rolloutId: event.rolloutId } : {}),
    };
    const ctx = this.context(event, caller, recordId);
    const metadata: EventMetadata & { [key: string]: Json } = {
      ...ctx.extraMetadata,
      actor: actorOf(caller.principal),
      requestId: caller.requestId,
      source: 'cloudevents',
    };
    try {
      const appended = await this.store.append(
        UNATTRIBUTED_STREAM,
        [{ eventId: recordId, type: UNATTRIBUTED, data: data as unknown as Json, metadata }],
        { expectedVersion: 'any', streamType: UNATTRIBUTED_STREAM },
      );
      if (!appended.duplicate) this.metrics.eventsAppended.inc();
      return (await this.recorded(event, recordId, appended.duplicate)) ?? this.missing(recordId);
    } catch (err) {
      return this.afterConflict(err, event, recordId);
    }
  }

  /**
   * A concurrent delivery of the same CloudEvent won the race and recorded it elsewhere (on the
   * rollout, or on the unattributed stream): answer what it recorded.
   */
  private async afterConflict(err: unknown, event: ValidCloudEvent, recordId: string): Promise<IngestResult> {
    if (err instanceof IdempotencyConflict) {
      const original = await this.recorded(event, recordId, true);
      if (original) return original;
    }
    throw err;
  }

  private missing(recordId: string): never {
    throw new Error(`event ${recordId} was recorded but cannot be read back`);
  }

  /** What a CloudEvent recorded, read from the ledger by its derived ids; undefined if nothing yet. */
  private async recorded(
    event: ValidCloudEvent,
    recordId: string,
    duplicate: boolean,
  ): Promise<IngestResult | undefined> {
    const head = await this.store.findEvent(recordId);
    if (!head) return undefined;
    const events: StoredEvent[] = [head];
    for (let i = 1; i < MAX_EVENTS_PER_WRITE; i++) {
      const next = await this.store.findEvent(followingEventId(recordId, i));
      if (!next) break;
      events.push(next);
    }
    const unattributed = head.streamId === UNATTRIBUTED_STREAM;
    return {
      source: event.source,
      id: event.id,
      eventIds: events.map((e) => e.eventId),
      recordedAs: events.map((e) => e.type),
      streamId: head.streamId,
      rolloutId: unattributed ? null : head.streamId.slice('rollout-'.length),
      ...(unattributed ? { reason: String((head.data as { reason?: Json }).reason ?? '') } : {}),
      duplicate,
    };
  }

  /** A page of unattributed CloudEvents, oldest first, each with its attachment if any. */
  async unattributed(query: {
    after: number;
    limit: number;
    status: 'open' | 'attached' | 'all';
  }): Promise<{ items: UnattributedItem[]; next: number | null }> {
    const page = await this.repo.unattributedPage(UNATTRIBUTED, query.after, query.limit);
    const attachments = await this.repo.eventsById(page.map((e) => attachmentId(e.eventId)));
    const byEvent = new Map(
      attachments.map((a) => [(a.data as { unattributedEventId?: Json }).unattributedEventId, a]),
    );
    const items = page
      .map((e) => unattributedItem(e, byEvent.get(e.eventId)))
      .filter((item) => query.status === 'all' || (query.status === 'open') === (item.attached === null));
    const last = page.at(-1);
    return { items, next: page.length === query.limit && last ? last.streamVersion : null };
  }

  /**
   * Attaches an unattributed CloudEvent to a rollout: records its fact on the rollout (through the
   * rollout's decider: a closed rollout refuses), then the attachment on the unattributed stream.
   * Retrying the same attachment answers the same; attaching it to another rollout is a 409.
   */
  async attach(
    unattributedEventId: string,
    rolloutId: string,
    note: string | undefined,
    caller: Caller,
  ): Promise<{ unattributedEventId: string; rolloutId: string; factEventId: string; version: number }> {
    const event = await this.store.findEvent(unattributedEventId);
    if (!event || event.streamId !== UNATTRIBUTED_STREAM || event.type !== UNATTRIBUTED) {
      throw new NotFound('unattributed event', unattributedEventId);
    }
    const marker = await this.store.findEvent(attachmentId(unattributedEventId));
    const attachedTo = (marker?.data as { rolloutId?: Json } | undefined)?.rolloutId;
    if (attachedTo !== undefined && attachedTo !== rolloutId) {
      throw new IdempotencyConflict(
        [unattributedEventId],
        `unattributed event ${unattributedEventId} is already attached to rollout ${String(attachedTo)}`,
      );
    }
    const data = event.data as unknown as UnattributedData;
    const factEventId = attachedFactId(unattributedEventId);
    const fact = { ...data.fact, attachedFrom: unattributedEventId, ...(note ? { note } : {}) };
    const written = await this.rollouts
      .execute(
        rolloutId,
        { type: 'RecordExternalFact', fact },
        {
          principal: caller.principal,
          requestId: caller.requestId,
          eventId: factEventId,
          requestDigest: requestDigest('POST', ATTACH_ROUTE, {
            unattributedEventId,
            rolloutId,
            note: note ?? null,
          }),
          extraMetadata: { cloudEvent: event.metadata.cloudEvent ?? null, attachedFrom: unattributedEventId },
        },
      )
      .catch((err: unknown) => {
        if (err instanceof IdempotencyConflict) {
          throw new IdempotencyConflict(
            [unattributedEventId],
            `unattributed event ${unattributedEventId} is already attached to another rollout, or with another note`,
          );
        }
        throw err;
      });
    await this.recordAttachment(
      { unattributedEventId, rolloutId, factEventId, ...(note ? { note } : {}) },
      caller,
    );
    const factEvent = await this.store.findEvent(factEventId);
    return {
      unattributedEventId,
      rolloutId,
      factEventId,
      version: factEvent?.streamVersion ?? written.version,
    };
  }

  /** The attachment's own event on the unattributed stream (idempotent: its id is derived). */
  private async recordAttachment(attachment: AttachedData, caller: Caller): Promise<void> {
    await this.store.append(
      UNATTRIBUTED_STREAM,
      [
        {
          eventId: attachmentId(attachment.unattributedEventId),
          type: ATTACHED,
          data: attachment as unknown as Json,
          metadata: { actor: actorOf(caller.principal), requestId: caller.requestId, source: 'rest' },
        },
      ],
      { expectedVersion: 'any', streamType: UNATTRIBUTED_STREAM },
    );
  }
}
