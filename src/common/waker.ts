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
