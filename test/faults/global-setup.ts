import { rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { buildServer } from '../support/build.js';
import { adminUrl, DB_PREFIX, ownerPid } from '../support/postgres.js';
import { sweepScratchClusters } from './scratch-cluster.js';

const _ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Builds the server once for the whole fault suite, into a directory of this run's own (as
 * test/e2e/process.e2e.spec.ts does: the shared dist/ may be rebuilt by anyone meanwhile), and
 * names the run so that its databases follow test/support/postgres.ts's scheme: a concurrent run's
 * global setup leaves them alone while this process lives, and drops them if it died.
 */
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

export async function setup(): Promise<() => Promise<void>> {
  process.env.UPGRADE_LEDGER_TEST_RUN = String(process.pid);
  await sweepScratchClusters(alive);
  const buildDir = await buildServer('faults-build');
  process.env.UPGRADE_LEDGER_FAULTS_BUILD = buildDir;

  return async () => {
    await rm(buildDir, { recursive: true, force: true });
    const url = process.env.DATABASE_URL;
    if (!url) return;
    // Whatever a test could not drop itself (a worker that crashed): this run's databases only.
    const admin = new pg.Client({ connectionString: adminUrl(url) });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ datname: string }>(
        'select datname from pg_database where datname like $1',
        [`${DB_PREFIX}%`],
      );
      for (const { datname } of rows.filter((r) => ownerPid(r.datname) === process.pid)) {
        await admin.query(`drop database if exists ${pg.escapeIdentifier(datname)} with (force)`);
      }
    } finally {
      await admin.end();
    }
  };
}
