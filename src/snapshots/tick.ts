import { CronTime } from 'cron';

/** How early (clock skew between replicas, a timer firing a hair early) a tick may run. */
const EARLY_MS = 200;
/** How late a tick may run and still be the slot it was scheduled for. */
const LATE_MS = 5_000;

/** The snapshot schedule, in UTC so every replica reads the same slots. */
export function cronTimeOf(expression: string): CronTime {
  return new CronTime(expression, 'UTC');
}

/**
 * The cron slot a tick running at `now` belongs to: the latest scheduled time at or before
 * `now` (plus a little skew). Every replica firing for the same slot computes the same instant,
 * which is what the database's one-claim-per-(target, slot) rule keys on.
 *
 * @example
 * tickSlot(cronTimeOf('*\/15 * * * *'), new Date('2026-11-26T07:15:00.180Z')) // 07:15:00.000Z
 * tickSlot(cronTimeOf('*\/15 * * * *'), new Date('2026-11-26T07:14:59.900Z')) // 07:15:00.000Z (early timer)
 */
export function tickSlot(cron: CronTime, now: Date): Date {
  const horizon = now.getTime() + EARLY_MS;
  let slot: Date | undefined;
  let next = cron.getNextDateFrom(new Date(now.getTime() - LATE_MS), 'UTC').toJSDate();
  while (next.getTime() <= horizon) {
    slot = next;
    next = cron.getNextDateFrom(next, 'UTC').toJSDate();
  }
  // Later than LATE_MS after any slot (a stalled process): the second it runs in still dedupes
  // against itself, and the claim makes sure no other replica records it twice.
  return slot ?? new Date(Math.floor(now.getTime() / 1000) * 1000);
}

/** The time between two consecutive slots after `from`: how fresh a target's snapshot should be. */
export function cronPeriodMs(cron: CronTime, from = new Date()): number {
  const first = cron.getNextDateFrom(from, 'UTC');
  const second = cron.getNextDateFrom(first, 'UTC');
  return second.toMillis() - first.toMillis();
}
