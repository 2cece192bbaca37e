import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** Which processes a CPU figure adds up, by command line (and pid). */
export type ProcessMatch = (cmdline: string, pid: number) => boolean;

const TICKS_PER_SECOND = 100; // USER_HZ: `getconf CLK_TCK` on Linux

/** CPU time (user + system, ms) used so far by each live process that `match` accepts, by pid. */
export function cpuByPid(match: ProcessMatch): Map<number, number> {
  const byPid = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (!match(cmdline, Number(entry))) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name, which may itself hold spaces: utime and stime are 14 and 15.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      byPid.set(Number(entry), ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND);
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return byPid;
}

/**
 * CPU ms used between two readings: each process's growth, all of it for a process that started
 * in between. A process that ended in between is lost, which is why parts must stay connected.
 */
function cpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let ms = 0;
  for (const [pid, t] of after) ms += t - (before.get(pid) ?? 0);
  return ms;
}

/** The Postgres backends connected to one database (their title names it). */
export const backendsOf =
  (db: string): ProcessMatch =>
  (cmdline) =>
    cmdline.startsWith('postgres: ') && cmdline.includes(` ${db} `);

export const processOf =
  (pid: number): ProcessMatch =>
  (_cmdline, p) =>
    p === pid;

/** A bench child process (`node dist-bench/bench/index.js <kind> <db> …`). */
export const benchChild =
  (kind: string, db: string): ProcessMatch =>
  (cmdline) =>
    cmdline.includes(` ${kind} ${db} `);

export interface CpuWindow<T> {
  result: T;
  /** CPU ms of each part during the window. */
  ms: Record<string, number>;
  /** The window's length in seconds. */
  seconds: number;
}

/** The window starts this long after the load and ends this long before its planned end. */
const SETTLE_S = 3;
const MARGIN_S = 1;

/**
 * The CPU each part used while `work` (a load of `seconds`) ran, measured from 3 s after it
 * started (the load's own process has started and warmed up by then) to 1 s before its planned
 * end, while every process of the load is still there. A process that ends inside the window
 * takes its CPU with it: that is printed as a warning. A load too short for a window is an error.
 */
export async function cpuDuring<T>(
  seconds: number,
  parts: Record<string, ProcessMatch>,
  work: Promise<T>,
): Promise<CpuWindow<T>> {
  // Settled at once: a load that fails during the window must not be an unhandled rejection.
  const settled = work.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
  if (seconds < SETTLE_S + MARGIN_S + 2) {
    await settled;
    throw new Error(
      `a CPU window needs a load of at least ${SETTLE_S + MARGIN_S + 2} s (--duration), not ${seconds}`,
    );
  }
  const snapshot = () => Object.fromEntries(Object.entries(parts).map(([k, m]) => [k, cpuByPid(m)]));
  await sleep(SETTLE_S * 1000);
  const before = snapshot();
  const t = performance.now();
  await sleep((seconds - SETTLE_S - MARGIN_S) * 1000);
  const after = snapshot();
  const window = (performance.now() - t) / 1000;
  const outcome = await settled;
  if (!outcome.ok) throw outcome.error;
  // A pool may close a connection that sat idle, which used next to no CPU; anything else
  // ending here would be missed, so say so beside the figure.
  for (const [part, pids] of Object.entries(before)) {
    const gone = [...pids.keys()].filter((pid) => !after[part]?.has(pid));
    if (gone.length > 0)
      console.log(
        `  warning: CPU of ${part}: ${gone.length} process(es) ended inside the window, not counted there`,
      );
  }
  if (Object.values(before).every((pids) => pids.size === 0))
    throw new Error('CPU window: no process of the load was found');
  return {
    result: outcome.value,
    ms: Object.fromEntries(
      Object.keys(parts).map((k) => [k, cpuBetween(before[k] ?? new Map(), after[k] ?? new Map())]),
    ),
    seconds: window,
  };
}
