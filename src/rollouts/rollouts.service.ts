import { createHash } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import type { Principal } from '../auth/principal.js';
import { ConcurrencyConflict, IdempotencyConflict, NotFound } from '../common/errors.js';
import { uuidText, uuidv7 } from '../common/ids.js';
import type { Json } from '../database/schema.js';
import { EventStore } from '../event-store/event-store.repository.js';
import type { StoredEvent } from '../event-store/event-store.types.js';
import { canonicalJson } from '../ledger/hashing.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { decide, type RolloutCommand } from './rollout.decide.js';
import { type EventMetadata, type RecordedRolloutEvent, rolloutStreamId } from './rollout.events.js';
import { continueFold, FoldCache, foldEvents } from './rollout.fold-cache.js';
import { missingPlanParts, type Plan } from './rollout.plan.js';
import { evolve, foldRollout, type RolloutState } from './rollout.state.js';
import { type RolloutListFilter, RolloutsRepository } from './rollouts.repository.js';

/** What a write was asked with, besides the command itself. */
export interface WriteContext {
  principal: Principal;
  requestId: string;
  /** Expected stream version from `If-Match`: a mismatch is a 412, never retried. */
  ifMatch?: number;
  /** `Idempotency-Key`: a retry with the same key and request answers the same and records nothing. */
  idempotencyKey?: string;
  /**
   * Canonical digest of method, route and body: a reused key with another request is refused.
   * Given with an idempotency key or a caller-chosen event id, the only writes that can be replayed.
   */
  requestDigest?: string;
  /**
   * The id of the write's first event, chosen by the caller (ingestion derives it from the
   * CloudEvent's source and id); takes the place of the Idempotency-Key's. Any further events of
   * the write get ids derived from it, so a retry names every event the same.
   */
  eventId?: string;
  /** Where the write came from: `rest` unless said. */
  source?: EventMetadata['source'];
  /** More metadata kept with every event of the write (ingestion: the original CloudEvent). */
  extraMetadata?: { [key: string]: Json };
}

export interface WriteResult {
  id: string;
  version: number;
  status: RolloutState['status'];
  /** True when this was an idempotent replay. */
  replayed: boolean;
}

/** How many times a write without If-Match re-reads and re-decides after losing a race. */
const MAX_ATTEMPTS = 5;

/** A UUID (v8 layout) derived from its inputs: the same key always names the same event. */
export function derivedUuid(...parts: string[]): string {
  const h = createHash('sha256').update(parts.join('\u0000')).digest();
  h[6] = ((h[6] as number) & 0x0f) | 0x80;
  h[8] = ((h[8] as number) & 0x3f) | 0x80;
  return uuidText(h);
}

/**
 * The id of the `index`-th event (from 0) of a write whose first event is `firstEventId`: derived,
 * so a retried write that records several events names each of them as the original did.
 */
export function followingEventId(firstEventId: string, index: number): string {
  return index === 0 ? firstEventId : derivedUuid('following', firstEventId, String(index));
}

export function requestDigest(method: string, route: string, body: unknown): string {
  return createHash('sha256')
    .update(canonicalJson({ method, route, body: body ?? null }))
    .digest('hex');
}

export const toRecorded = (e: StoredEvent & { position?: number | null }): RecordedRolloutEvent =>
  ({
    type: e.type,
    data: e.data,
    streamVersion: e.streamVersion,
    recordedAt: e.recordedAt,
    ...(e.position != null ? { position: e.position } : {}),
    metadata: e.metadata,
  }) as RecordedRolloutEvent;

/** Load the stream → decide → append; and the queries over rollouts. */
@Injectable()
export class RolloutsService {
  constructor(
    private readonly store: EventStore,
    private readonly repo: RolloutsRepository,
    private readonly metrics: MetricsService,
  ) {}

  /** Folded rollouts by stream version, for `get`: only ever continued, never served unread. */
  private readonly folds = new FoldCache();

  create(plan: Plan, ctx: WriteContext): Promise<WriteResult> {
    // With an Idempotency-Key the rollout id itself is derived, so a retry names the same rollout;
    // without one it is in time order (uuidv7), so the indexes on it grow at their right-hand end.
    const id = ctx.idempotencyKey ? derivedUuid('rollout', ctx.principal.id, ctx.idempotencyKey) : uuidv7();
    // A fresh id names no stream yet: no need to read it before the first attempt.
    return this.write(id, { type: 'PlanRollout', rolloutId: id, plan }, ctx, !ctx.idempotencyKey);
  }

  execute(id: string, command: RolloutCommand, ctx: WriteContext): Promise<WriteResult> {
    return this.write(id, command, ctx);
  }

  private async write(
    id: string,
    command: RolloutCommand,
    ctx: WriteContext,
    knownNew = false,
  ): Promise<WriteResult> {
    const streamId = rolloutStreamId(id);
    const eventId =
      ctx.eventId ??
      (ctx.idempotencyKey ? derivedUuid('event', ctx.principal.id, ctx.idempotencyKey) : undefined);
    for (let attempt = 1; ; attempt++) {
      const state = knownNew && attempt === 1 ? foldRollout(id, []) : await this.load(id);
      // Looked for after the load, never before: an original that committed before the load is
      // found here, one that commits later is found by the append (under the stream lock). Looked
      // for before the load, an original committing in between made the retry decide on a state
      // that already held its own event ("already started" → 409 instead of the replay).
      if (eventId) {
        const replay = await this.replay(eventId, streamId, ctx);
        if (replay) return replay;
      }
      // An unknown rollout is a 404 whatever If-Match says.
      if (!state.exists && command.type !== 'PlanRollout') throw new NotFound('rollout', id);
      if (ctx.ifMatch !== undefined && state.version !== ctx.ifMatch) {
        throw new ConcurrencyConflict(
          streamId,
          ctx.ifMatch,
          state.version === 0 ? 'no_stream' : state.version,
        );
      }
      const events = decide(command, state);
      const metadata: EventMetadata = {
        actor: { id: ctx.principal.id, name: ctx.principal.name, role: ctx.principal.role },
        requestId: ctx.requestId,
        source: ctx.source ?? 'rest',
        ...(ctx.idempotencyKey ? { idempotencyKey: ctx.idempotencyKey } : {}),
      };
      try {
        const result = await this.store.append(
          streamId,
          events.map((e, i) => ({
            eventId: eventId === undefined || i === 0 ? eventId : followingEventId(eventId, i),
            type: e.type,
            data: e.data as Json,
            metadata: {
              ...ctx.extraMetadata,
              ...metadata,
              ...(ctx.requestDigest !== undefined ? { requestDigest: ctx.requestDigest } : {}),
            } as unknown as { [k: string]: Json },
          })),
          { expectedVersion: state.version === 0 ? 'no_stream' : state.version, streamType: 'rollout' },
        );
        if (result.duplicate && eventId) {
          const replay = await this.replay(eventId, streamId, ctx);
          if (replay) return replay;
        }
        this.metrics.eventsAppended.inc(events.length);
        const after = events.reduce(
          (s, e, i) =>
            evolve(s, { ...e, streamVersion: state.version + i + 1, recordedAt: new Date().toISOString() }),
          state,
        );
        return { id, version: result.streamVersion, status: after.status, replayed: false };
      } catch (err) {
        // Without If-Match the caller asked for no precondition: re-read and decide again.
        if (err instanceof ConcurrencyConflict && ctx.ifMatch === undefined && attempt < MAX_ATTEMPTS)
          continue;
        throw err;
      }
    }
  }

  /** The original answer to an idempotent retry, or undefined when the key is new. */
  private async replay(
    eventId: string,
    streamId: string,
    ctx: WriteContext,
  ): Promise<WriteResult | undefined> {
    const original = await this.store.findEvent(eventId);
    if (!original) return undefined;
    if (original.streamId !== streamId || original.metadata.requestDigest !== ctx.requestDigest) {
      throw new IdempotencyConflict(
        [eventId],
        'this Idempotency-Key was already used for a different request',
      );
    }
    const id = streamId.slice('rollout-'.length);
    const events = await this.store.readStream(streamId, { toVersion: original.streamVersion });
    const state = foldRollout(id, events.map(toRecorded));
    return { id, version: original.streamVersion, status: state.status, replayed: true };
  }

  /** The rollout now (from its stream: always up to date). */
  async load(id: string): Promise<RolloutState> {
    const events = await this.store.readStream(rolloutStreamId(id));
    return foldRollout(id, events.map(toRecorded));
  }

  /**
   * The rollout now, or as it was at a ledger position or a time. Now: one statement reads the
   * stream from the version this process last folded it to (`FoldCache`) and checks, in the same
   * snapshot, that the stream still holds that event; only the events after it are decoded and
   * folded. Folding every event of the stream on every read was most of the route's own CPU.
   */
  async get(id: string, asOf?: { position: number } | { time: Date }): Promise<RolloutView> {
    if (asOf) {
      const events = await this.store.readStreamAsOf(rolloutStreamId(id), asOf);
      const state = foldRollout(id, events.map(toRecorded));
      if (!state.exists) throw new NotFound('rollout', id);
      return view(state, events.at(-1)?.position ?? null);
    }
    const streamId = rolloutStreamId(id);
    const cached = this.folds.get(streamId);
    let events = await this.store.readStreamFrom(streamId, cached?.version ?? 0);
    let fold = cached && continueFold(cached, events);
    if (!fold) {
      if (cached) {
        // The stream no longer holds the event the fold ended at: fold it anew, whole.
        this.folds.forget(streamId);
        events = await this.store.readStreamFrom(streamId, 0);
      }
      fold = foldEvents(id, events);
    }
    const last = events.at(-1);
    if (!fold.state.exists || !last) throw new NotFound('rollout', id);
    this.folds.remember(streamId, fold);
    return view(fold.state, last.position);
  }

  async events(id: string) {
    const events = await this.store.readStreamAsOf(rolloutStreamId(id));
    if (events.length === 0) throw new NotFound('rollout', id);
    return events.map((e) => ({
      position: e.position,
      streamVersion: e.streamVersion,
      eventId: e.eventId,
      type: e.type,
      data: e.data,
      actor: e.metadata.actor ?? null,
      metadata: publicMetadata(e.metadata),
      recordedAt: e.recordedAt,
      hash: e.hash,
    }));
  }

  list(filter: RolloutListFilter) {
    return this.repo.list(filter);
  }

  /** A page of the list as the JSON text of its items (see `RolloutsRepository.listPage`). */
  listPage(filter: RolloutListFilter) {
    return this.repo.listPage(filter);
  }
}

/** Metadata as shown to readers: the request digest is internal bookkeeping. */
function publicMetadata(metadata: { [key: string]: Json }) {
  const { requestDigest: _, ...rest } = metadata;
  return rest;
}

export type RolloutView = RolloutState & { missingPlanParts: string[]; lastPosition: number | null };

function view(state: RolloutState, lastPosition: number | null): RolloutView {
  return { ...state, missingPlanParts: missingPlanParts(state.plan), lastPosition };
}
