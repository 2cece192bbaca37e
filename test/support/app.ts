import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { createApp } from '../../src/app.js';
import { type AppConfig, loadConfig } from '../../src/config/config.js';
import type { DatabaseHandle } from '../../src/database/database.js';
import { LedgerRepository } from '../../src/ledger/ledger.repository.js';
import { SequencerService } from '../../src/ledger/sequencer.service.js';
import { ProjectionsRepository } from '../../src/projections/projections.repository.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { waitFor } from './wait.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';
export const AUTH = { Authorization: `Bearer ${ADMIN_TOKEN}` };

/** Configuration for tests: quiet logs, a temporary data directory, fast sequencer polling. */
export function testConfig(dataDir: string, env: Record<string, string> = {}): AppConfig {
  return loadConfig({
    ADMIN_TOKEN,
    DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
    SEQUENCER_POLL_MS: '50',
    CHECKPOINT_EVERY: '100',
    ...env,
  });
}

export interface TestApp {
  app: NestFastifyApplication;
  /** The HTTP server for supertest. */
  server: NestFastifyApplication['getHttpServer'] extends () => infer S ? S : never;
  db: TestDatabase;
  handle: DatabaseHandle;
  dataDir: string;
  close(): Promise<void>;
}

/**
 * The whole application on a database of this test file's own, ready for supertest.
 *
 * @example
 * const t = await startTestApp();
 * await request(t.server).get('/health/ready').expect(200);
 * await t.close();
 */
export async function startTestApp(
  options: { env?: Record<string, string>; db?: TestDatabase } = {},
): Promise<TestApp> {
  const db = options.db ?? (await createTestDatabase());
  const dataDir = await mkdtemp(path.join(tmpdir(), 'upgrade-ledger-test-'));
  const app = await createApp({ config: testConfig(dataDir, options.env), database: db.handle });
  return {
    app,
    server: app.getHttpServer(),
    db,
    handle: db.handle,
    dataDir,
    async close() {
      await app.close();
      if (!options.db) await db.drop().catch(() => {});
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Waits until every committed event has a ledger position (drains this instance's sequencer;
 * on a shared Postgres another session's open transaction can hold xmin back for a moment).
 */
export async function settleLedger(t: TestApp): Promise<void> {
  const sequencer = t.app.get(SequencerService);
  const ledger = t.app.get(LedgerRepository);
  await waitFor('every committed event to be sequenced', async () => {
    await sequencer.drain();
    return (await ledger.pendingCount()) === 0;
  });
}

/**
 * Waits until the ledger is settled and every served projection (the rollout list, snapshots,
 * drift, version truth) has applied it up to the head: for tests that read a read model.
 */
export async function settleProjections(t: TestApp): Promise<void> {
  await settleLedger(t);
  const ledger = t.app.get(LedgerRepository);
  const projections = t.app.get(ProjectionsRepository);
  const head = (await ledger.head()).position;
  await waitFor('every projection to reach the ledger head', async () =>
    (await projections.versions()).filter((v) => v.active).every((v) => Number(v.position) >= head),
  );
}
