import { describe, expect, it } from 'vitest';
import { Waker } from '../../src/common/waker.js';

describe('Waker', () => {
  it('a poke ends a wait long before its interval', async () => {
    const waker = new Waker();
    let done = false;
    const waiting = waker.wait(60_000).then(() => {
      done = true;
    });
    await Promise.resolve();
    expect(done).toBe(false);
    waker.poke();
    await waiting;
    expect(done).toBe(true);
  });

  it('remembers a poke that came while nobody waited, once', async () => {
    const waker = new Waker();
    waker.poke();
    waker.poke();
    await waker.wait(60_000); // returns at once: the poke was not lost
    let second = false;
    const waiting = waker.wait(60_000).then(() => {
      second = true;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(second).toBe(false); // two pokes before the wait count as one
    waker.poke();
    await waiting;
  });

  it('ends a wait when the interrupt settles, and after the interval by itself', async () => {
    const waker = new Waker();
    let lose!: () => void;
    const lost = new Promise<void>((r) => {
      lose = r;
    });
    const waiting = waker.wait(60_000, lost);
    lose();
    await waiting;
    await waker.wait(5);
  });
});
