import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Pace } from '../../src/common/waker.js';

describe('Pace', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Whether the promise has settled after the microtasks queued so far. */
  async function settled(p: Promise<void>): Promise<boolean> {
    let done = false;
    void p.then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(0);
    return done;
  }

  it('lets the first cycle and any cycle after a long idle start at once', async () => {
    const pace = new Pace(20);
    expect(await settled(pace.next())).toBe(true);
    await vi.advanceTimersByTimeAsync(25);
    expect(await settled(pace.next())).toBe(true);
  });

  it('holds a cycle that comes too soon until the interval since the last start is over', async () => {
    const pace = new Pace(20);
    await pace.next();
    await vi.advanceTimersByTimeAsync(5);
    const next = pace.next();
    expect(await settled(next)).toBe(false);
    await vi.advanceTimersByTimeAsync(14);
    expect(await settled(next)).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await settled(next)).toBe(true);
  });

  it('after release() (a full batch, a backlog) starts the next cycle at once', async () => {
    const pace = new Pace(20);
    await pace.next();
    pace.release();
    expect(await settled(pace.next())).toBe(true);
  });
});
