const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Polls `probe` until it returns something other than undefined, or fails after a generous
 * deadline. For things that happen in the background (the sequencer, projections); never a
 * timed assertion: the deadline only bounds a hang.
 *
 * @example
 * const row = await eventually('the rollout to be listed', async () => (await list()).find(byId));
 */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  { deadlineMs = 30_000, intervalMs = 25, ignoreErrors = false } = {},
): Promise<T> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const value = ignoreErrors ? await probe().catch(() => undefined) : await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`gave up after ${deadlineMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Polls `check` until it is true, or fails after the deadline. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  options: { deadlineMs?: number; intervalMs?: number } = {},
): Promise<void> {
  await eventually(what, async () => ((await check()) ? true : undefined), options);
}
