import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { FoldEvent } from '../../src/event-store/event-store.types.js';
import type { RolloutEvent } from '../../src/rollouts/rollout.events.js';
import {
  continueFold,
  FOLD_CACHE_BYTES,
  FoldCache,
  foldBytes,
  foldEvents,
} from '../../src/rollouts/rollout.fold-cache.js';
import { foldRollout } from '../../src/rollouts/rollout.state.js';
import { recorded } from '../support/decider-spec.js';
import { ev, ROLLOUT_ID } from '../support/rollout-events.js';

/** Events as `EventStore.readStreamFrom(…, from)` gives them: the one at `from` without data. */
function read(events: RolloutEvent[], from = 0): FoldEvent[] {
  return recorded(events)
    .filter((e) => e.streamVersion >= from)
    .map((e) => ({
      streamVersion: e.streamVersion,
      type: e.type,
      data: e.streamVersion > from ? (e.data as FoldEvent['data']) : null,
      dataBytes: e.streamVersion > from ? Buffer.byteLength(JSON.stringify(e.data)) : 0,
      recordedAt: e.recordedAt,
      hash: `hash-${e.streamVersion}-${e.type}`,
      position: e.streamVersion * 10,
    }));
}

const stream: RolloutEvent[] = [
  ev.planned(),
  ev.approved('alice', 'ship it'),
  ev.started(),
  ev.stepStarted('schema'),
  ev.stepCompleted('schema'),
  ev.stepStarted('api'),
  ev.stepFailed('api', 'timeout'),
  ev.rollbackStarted(),
  ev.rollbackCompleted(),
  ev.completed(),
];

const cachedAt = (events: RolloutEvent[], version: number) => {
  const head = read(events).find((e) => e.streamVersion === version);
  if (!head) throw new Error(`no event ${version}`);
  const fold = foldEvents(ROLLOUT_ID, read(events.slice(0, version)));
  expect(fold).toMatchObject({ version, hash: head.hash });
  return fold;
};

describe('continueFold', () => {
  it('gives the state of the whole stream, wherever the cached fold ended', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: stream.length }), (version) => {
        const cached = cachedAt(stream, version);
        const whole = foldEvents(ROLLOUT_ID, read(stream));
        const continued = continueFold(cached, read(stream, version));
        expect(continued?.state).toEqual(foldRollout(ROLLOUT_ID, recorded(stream)));
        // Where it ends, and what it holds, as if the stream had been folded whole.
        expect(continued).toMatchObject({ version: whole.version, hash: whole.hash, bytes: whole.bytes });
      }),
    );
  });

  it('answers the cached state itself when nothing was appended since', () => {
    const cached = cachedAt(stream, stream.length);
    expect(continueFold(cached, read(stream, stream.length))).toBe(cached);
  });

  it('refuses a stream that no longer holds the event the fold ended at', () => {
    const cached = cachedAt(stream, 4);
    // Restored to an earlier point: the stream ends before the cached version.
    expect(continueFold(cached, read(stream.slice(0, 3), 4))).toBeUndefined();
    // Restored, then written again: another event at the cached version.
    const rewritten = [...stream.slice(0, 3), ev.aborted(), ...stream.slice(4)];
    expect(continueFold(cached, read(rewritten, 4))).toBeUndefined();
  });
});

describe('FoldCache', () => {
  const fold = (version: number, bytes = 1_000) => ({
    version,
    hash: `h${version}`,
    state: foldEvents(ROLLOUT_ID, []).state,
    bytes,
  });

  it('never goes back to an earlier fold of a stream (a slower concurrent read)', () => {
    const cache = new FoldCache();
    cache.remember('rollout-a', fold(5));
    cache.remember('rollout-a', fold(3));
    expect(cache.get('rollout-a')?.version).toBe(5);
    cache.remember('rollout-a', fold(6));
    expect(cache.get('rollout-a')?.version).toBe(6);
  });

  it('keeps at most its capacity, dropping the least recently remembered', () => {
    const cache = new FoldCache(2);
    cache.remember('rollout-a', fold(1));
    cache.remember('rollout-b', fold(1));
    cache.remember('rollout-a', fold(2));
    cache.remember('rollout-c', fold(1));
    expect(cache.size).toBe(2);
    expect(cache.get('rollout-b')).toBeUndefined();
    expect(cache.get('rollout-a')?.version).toBe(2);
  });

  it('keeps at most its byte budget, dropping the least recently remembered', () => {
    const cache = new FoldCache(100, 10_000);
    cache.remember('rollout-a', fold(1, 400));
    cache.remember('rollout-b', fold(1, 400));
    cache.remember('rollout-a', fold(2, 500)); // read again: now the most recent
    expect(cache.bytes).toBe(900);
    cache.remember('rollout-c', fold(1, 600));
    expect(cache.size).toBe(3);
    for (let i = 0; i < 20; i++) cache.remember(`rollout-x${i}`, fold(1, 600));
    expect(cache.bytes).toBeLessThanOrEqual(10_000);
    expect(cache.get('rollout-b')).toBeUndefined();
    expect(cache.get('rollout-x19')?.version).toBe(1);
  });

  it('never keeps a fold of more than a sixteenth of the budget, nor an older fold of that stream', () => {
    const cache = new FoldCache(100, 16_000);
    cache.remember('rollout-heavy', fold(1, 1_000));
    expect(cache.get('rollout-heavy')?.version).toBe(1);
    cache.remember('rollout-heavy', fold(2, 1_001));
    expect(cache.get('rollout-heavy')).toBeUndefined();
    expect(cache.bytes).toBe(0);
  });

  it('counts what each event adds: its data as stored text, plus a fixed overhead', () => {
    const events = read(stream);
    const data = events.reduce((n, e) => n + e.dataBytes, 0);
    expect(data).toBeGreaterThan(0);
    expect(foldBytes(events)).toBeGreaterThan(data);
    // A megabyte readback counts as at least a megabyte: 64 of them fill the default budget.
    const heavy = { ...events[0], dataBytes: 1024 * 1024 } as FoldEvent;
    expect(foldBytes([heavy]) * 64).toBeGreaterThan(FOLD_CACHE_BYTES);
  });
});
