import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { adminUrl, DB_PREFIX, ownerPid } from '../support/postgres.js';
import { sweepScratchClusters } from './scratch-cluster.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

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
  const buildDir = path.join(
    ROOT,
    'test-output',
    `faults-build-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  // The checks are the typecheck's job; this only emits, as `nest build` would.
  await promisify(execFile)(
    process.execPath,
    [
      path.join(ROOT, 'node_modules/typescript/bin/tsc'),
      '-p',
      path.join(ROOT, 'tsconfig.build.json'),
      '--noCheck',
      '--outDir',
      buildDir,
    ],
    { cwd: ROOT },
  );
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
