import type { FoldEvent } from '../event-store/event-store.types.js';
import type { RecordedRolloutEvent } from './rollout.events.js';
import { evolve, foldRollout, type RolloutState } from './rollout.state.js';

/** Folded rollouts remembered per process, at most. */
export const FOLD_CACHE_SIZE = 5_000;
/**
 * And at most this many bytes of event data folded into them (a state keeps every readback and
 * verification it was given, up to the body limit each): a few heavy rollouts must not hold a
 * replica's memory. A fold of more than a sixteenth of it is never kept.
 */
export const FOLD_CACHE_BYTES = 64 * 1024 * 1024;
/** What an event adds to a state besides its data (keys, dates, the event's own fields). */
const EVENT_OVERHEAD_BYTES = 256;

/** A rollout folded up to an event of its stream: that event's version and hash. */
export interface CachedFold {
  version: number;
  hash: string;
  state: RolloutState;
  /** The data folded into it, as stored JSON text, plus a fixed overhead per event. */
  bytes: number;
}

/** What folding these events adds to a state, in bytes, as `CachedFold.bytes` counts them. */
export function foldBytes(events: readonly FoldEvent[]): number {
  let bytes = 0;
  for (const e of events) bytes += e.dataBytes + EVENT_OVERHEAD_BYTES;
  return bytes;
}

/**
 * Folded states of recently read rollouts by stream id, least recently used dropped first. Never
 * served on its own: a reader reads the stream from the cached version on, in one statement, and
 * folds only what follows (`continueFold`), so an event appended meanwhile (by any replica) is
 * always in the answer. States are shared between readers: `evolve` never changes one in place,
 * and nothing else may.
 */
export class FoldCache {
  private readonly folds = new Map<string, CachedFold>();
  private totalBytes = 0;

  constructor(
    private readonly capacity = FOLD_CACHE_SIZE,
    private readonly maxBytes = FOLD_CACHE_BYTES,
  ) {}

  get(streamId: string): CachedFold | undefined {
    return this.folds.get(streamId);
  }

  /**
   * Keeps the fold, unless a fold further along is already kept (a slower concurrent read), or
   * it is too large to keep (then no fold of that stream is kept).
   */
  remember(streamId: string, fold: CachedFold): void {
    const kept = this.folds.get(streamId);
    if (kept && kept.version > fold.version) return;
    this.forget(streamId);
    if (fold.bytes > this.maxBytes / 16) return;
    this.folds.set(streamId, fold);
    this.totalBytes += fold.bytes;
    while (this.folds.size > this.capacity || this.totalBytes > this.maxBytes) {
      const oldest = this.folds.keys().next().value;
      if (oldest === undefined) break;
      this.forget(oldest);
    }
  }

  forget(streamId: string): void {
    const kept = this.folds.get(streamId);
    if (!kept) return;
    this.folds.delete(streamId);
    this.totalBytes -= kept.bytes;
  }

  get size(): number {
    return this.folds.size;
  }

  /** The bytes the kept folds count (`CachedFold.bytes`). */
  get bytes(): number {
    return this.totalBytes;
  }
}

const recorded = (e: FoldEvent): RecordedRolloutEvent =>
  ({
    type: e.type,
    data: e.data,
    streamVersion: e.streamVersion,
    recordedAt: e.recordedAt,
  }) as RecordedRolloutEvent;

/**
 * The fold of a whole stream read from version 0 (`EventStore.readStreamFrom`), ending at its last
 * event (at version 0 and no hash for a stream with none).
 */
export function foldEvents(id: string, events: readonly FoldEvent[]): CachedFold {
  const last = events.at(-1);
  return {
    version: last?.streamVersion ?? 0,
    hash: last?.hash ?? '',
    state: foldRollout(id, events.map(recorded)),
    bytes: foldBytes(events),
  };
}

/**
 * The fold after `events`, read from `cached.version` on, when they continue the cached fold:
 * the first is the event the fold ended at (same version, same hash). Undefined when they do not,
 * i.e. the stream no longer holds that event (a database restored to an earlier point, then
 * written again): the caller then reads the stream whole. Nothing appended since: the cached
 * fold itself.
 *
 * @example
 * const events = await store.readStreamFrom(streamId, cached.version);
 * const fold = continueFold(cached, events) ?? foldEvents(id, await store.readStreamFrom(streamId, 0));
 */
export function continueFold(cached: CachedFold, events: readonly FoldEvent[]): CachedFold | undefined {
  const [head, ...after] = events;
  if (!head || head.streamVersion !== cached.version || head.hash !== cached.hash) return undefined;
  const last = after.at(-1);
  if (!last) return cached;
  return {
    version: last.streamVersion,
    hash: last.hash,
    state: after.reduce((state, e) => evolve(state, recorded(e)), cached.state),
    bytes: cached.bytes + foldBytes(after),
  };
}
