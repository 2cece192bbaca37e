import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';

/**
 * An embedded database opened ahead of need. Opening PGlite is mostly compiling its WebAssembly,
 * which V8 does on background threads: started before the application's modules load, it overlaps
 * with them instead of following them, and the service is ready sooner (cold start).
 */
const pending = new Map<string, Promise<PGlite>>();

/** Where PGlite keeps its files under `DATA_DIR`. */
export const pgliteDir = (dataDir: string): string => path.resolve(dataDir, 'pgdata');

/** Starts opening the embedded database in `dataDir` (at most once until taken). */
export function preopenPGlite(dataDir: string): void {
  const dir = pgliteDir(dataDir);
  if (pending.has(dir)) return;
  const opening = mkdir(dir, { recursive: true }).then(() => PGlite.create(dir));
  // Whoever takes it sees the error; until then it must not count as unhandled.
  opening.catch(() => {});
  pending.set(dir, opening);
}

/** The database preopened for `dataDir`, if any; each is handed out once. */
export function takePreopened(dataDir: string): Promise<PGlite> | undefined {
  const dir = pgliteDir(dataDir);
  const opening = pending.get(dir);
  pending.delete(dir);
  return opening;
}

/** Closes the database preopened for `dataDir`, if any, once it has opened (or failed to). */
export async function discardPreopened(dataDir: string): Promise<void> {
  const db = await takePreopened(dataDir)?.catch(() => undefined);
  await db?.close().catch(() => {});
}
