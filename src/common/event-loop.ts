/**
 * Runs `work` with the event loop held open by a pending timer, released when `work` settles.
 *
 * Why, for the service's start: PGlite's WebAssembly compiles on V8's worker threads, and V8 hands
 * the result back as a task of its own, not as a libuv event. While the start awaits only that,
 * libuv's loop has nothing pending and returns, and Node then drains V8's tasks: it waits until
 * every job on the worker threads has finished, runs what V8 handed back, and repeats while there
 * is more. The embedded database's whole start then runs inside that drain, and after each step
 * the main thread waits for the optimising compiles its statements set off on the workers: 0.2 to
 * 0.3 s in all, idle, on a two-core machine (docs/benchmarks.md, "The wait on V8's workers
 * (session 13)"). With a timer pending the loop keeps running, and V8's tasks arrive through it
 * as they are ready.
 *
 * The timer never fires: it only counts as pending work. It is cleared however `work` ends, so a
 * process that would exit afterwards still does.
 */
export async function holdingEventLoop<T>(work: () => Promise<T>): Promise<T> {
  const hold = setInterval(() => {}, 2 ** 31 - 1);
  try {
    return await work();
  } finally {
    clearInterval(hold);
  }
}
