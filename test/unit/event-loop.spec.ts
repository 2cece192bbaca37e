import { describe, expect, it } from 'vitest';
import { holdingEventLoop } from '../../src/common/event-loop.js';

/** Timers pending in this process, as Node counts the work that keeps its loop running. */
const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('holdingEventLoop', () => {
  it('keeps a timer pending while the work runs, and none once it is done', async () => {
    const before = timers();
    const during = await holdingEventLoop(async () => {
      // Long enough for any short timer to have fired: the hold must still be pending.
      await new Promise((resolve) => setTimeout(resolve, 10));
      return timers();
    });
    expect(during).toBe(before + 1);
    expect(timers()).toBe(before);
  });

  it('gives back what the work returns, and releases the loop when the work throws', async () => {
    const before = timers();
    await expect(holdingEventLoop(async () => 42)).resolves.toBe(42);
    await expect(
      holdingEventLoop(async () => {
        throw new Error('failed to start');
      }),
    ).rejects.toThrow('failed to start');
    expect(timers()).toBe(before);
  });
});
