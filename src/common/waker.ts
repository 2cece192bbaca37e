/**
 * A wait that a notification can cut short, for polling loops woken by NOTIFY or an in-process
 * event. A poke that arrives while nobody waits is remembered, so the next wait returns at once
 * and no wake-up is lost between two polls.
 *
 * @example
 * const waker = new Waker();
 * onNotify(() => waker.poke());
 * for (;;) { await work(); await waker.wait(500); }
 */
export class Waker {
  #pending = false;
  #wake: (() => void) | undefined;

  poke(): void {
    this.#pending = true;
    this.#wake?.();
  }

  /** Resolves after `ms`, on a poke, or when `interrupt` settles, whichever comes first. */
  wait(ms: number, interrupt?: Promise<unknown>): Promise<void> {
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#pending = false;
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
      void interrupt?.then(done, done);
    });
  }
}

/**
 * Spaces out the starts of a loop's cycles by at least `ms`: `await pace.next()` before each
 * cycle waits out the rest of the interval since the previous start, and returns at once when
 * the loop was idle for longer. Under load the loop's batches grow instead of its cycles. After
 * a full batch (a backlog), `release()` lets the next cycle start at once.
 */
export class Pace {
  #last = Number.NEGATIVE_INFINITY;

  constructor(private readonly ms: number) {}

  async next(): Promise<void> {
    const wait = this.#last + this.ms - performance.now();
    if (wait > 0) await new Promise<void>((resolve) => setTimeout(resolve, wait));
    this.#last = performance.now();
  }

  release(): void {
    this.#last = Number.NEGATIVE_INFINITY;
  }
}
