import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Logger } from 'pino';
import request from 'supertest';
import { vi } from 'vitest';
import { createApp } from '../../src/app.js';
import type { Role } from '../../src/auth/principal.js';
import type { DatabaseHandle } from '../../src/database/database.js';
import { AUTH, testConfig } from './app.js';

export const bearer = (key: string) => ({ Authorization: `Bearer ${key}` });

export interface CreatedKey {
  id: string;
  name: string;
  role: Role;
  key: string;
  createdAt: string;
  expiresAt?: string;
}

/**
 * Creates an API key through the API, as the ADMIN_TOKEN unless `as` is given.
 *
 * @example
 * const engineer = await createKey(t.server, { role: 'engineer', name: 'ci' });
 * await request(t.server).get('/api/v1/ledger').set(bearer(engineer.key)).expect(200);
 */
export async function createKey(
  server: Parameters<typeof request>[0],
  body: Record<string, unknown>,
  as: Record<string, string> = AUTH,
): Promise<CreatedKey> {
  const res = await request(server).post('/api/v1/api-keys').set(as).send(body).expect(201);
  return res.body as CreatedKey;
}

export interface AppOn {
  app: NestFastifyApplication;
  server: ReturnType<NestFastifyApplication['getHttpServer']>;
  close(): Promise<void>;
}

/**
 * The whole app on a database handle the caller owns (a second replica, or a shared PGlite),
 * optionally with a logger of the caller's. Closing it closes the handle, as in production.
 */
export async function startAppOn(
  handle: DatabaseHandle,
  env: Record<string, string> = {},
  logger?: Logger,
): Promise<AppOn> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'upgrade-ledger-test-'));
  const app = await createApp({
    config: testConfig(dataDir, env),
    database: handle,
    ...(logger ? { logger } : {}),
  });
  return {
    app,
    server: app.getHttpServer(),
    async close() {
      await app.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Runs `work` with process.stderr captured (and kept off the terminal); returns what was written.
 *
 * @example
 * const { printed } = await capturingStderr(() => startTestApp({ env: { ADMIN_TOKEN: '' } }));
 */
export async function capturingStderr<T>(work: () => Promise<T>): Promise<{ result: T; printed: string }> {
  const chunks: string[] = [];
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return true;
  });
  try {
    const result = await work();
    return { result, printed: chunks.join('') };
  } finally {
    spy.mockRestore();
  }
}
