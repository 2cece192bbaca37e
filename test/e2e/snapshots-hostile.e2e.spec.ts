import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SamplePlatform, startSamplePlatform } from '../fixtures/sample-platform.js';
import { AUTH, startTestApp, type TestApp } from '../support/app.js';
import { eventually } from '../support/wait.js';

// Targets that misbehave in every way a platform can: each snapshot records SnapshotFailed with a
// reason naming what went wrong, a healthy target beside them is not held up, and the service
// stays ready.

const FIFTY_MB = 50 * 1024 * 1024;

/** One server, one hostile behaviour per path prefix. */
function hostileServer(): Promise<Server> {
  const chunk = Buffer.alloc(64 * 1024, 'x');
  const server = createServer((req, res) => {
    const kind = (req.url ?? '/').split('/')[1];
    switch (kind) {
      case 'hang':
        return; // accepts, never answers
      case 'huge': {
        res.writeHead(200, { 'content-type': 'application/json' });
        let sent = 0;
        const pump = () => {
          while (sent < FIFTY_MB) {
            sent += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('error', () => {});
        pump();
        return;
      }
      case 'html':
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>');
        return;
      case 'redirect':
        res.writeHead(302, { location: `http://evil.example.invalid${req.url}` });
        res.end();
        return;
      default:
        res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** A port nothing listens on: bound, then released. */
async function refusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

let t: TestApp;
let hostile: Server;
let healthy: SamplePlatform;

beforeAll(async () => {
  hostile = await hostileServer();
  healthy = await startSamplePlatform({ versions: { gateway: '1.4.2' } });
  const base = `http://127.0.0.1:${(hostile.address() as AddressInfo).port}`;
  const targets = [
    `hangs=${base}/hang`,
    `huge=${base}/huge`,
    `html=${base}/html`,
    `redirects=${base}/redirect`,
    `refuses=http://127.0.0.1:${await refusedPort()}`,
    `healthy=${healthy.url}`,
  ];
  t = await startTestApp({
    env: {
      SNAPSHOT_TARGETS: targets.join(','),
      SNAPSHOT_CRON: '0 0 1 1 *',
      SNAPSHOT_TIMEOUT_MS: '1500',
      SNAPSHOT_RETRIES: '1',
      SNAPSHOT_RETRY_BACKOFF_MS: '50',
    },
  });
});
afterAll(async () => {
  await t?.close();
  hostile?.closeAllConnections();
  await new Promise<void>((resolve) => (hostile ? hostile.close(() => resolve()) : resolve()));
  await healthy?.close();
});

describe('hostile targets', () => {
  it('record SnapshotFailed with a clear reason per surface, hold nobody up, and leave the service ready', async () => {
    const res = await request(t.server).post('/api/v1/snapshots').set(AUTH).send({}).expect(200);
    const byTarget = new Map(
      (res.body.snapshots as { target: string; status: string; snapshotId: string; reason?: string }[]).map(
        (s) => [s.target, s],
      ),
    );
    expect(Object.fromEntries([...byTarget].map(([k, v]) => [k, v.status]))).toEqual({
      hangs: 'failed',
      huge: 'failed',
      html: 'failed',
      redirects: 'failed',
      refuses: 'failed',
      healthy: 'taken',
    });
    const expected: Record<string, RegExp> = {
      hangs: /version-truth: timeout: no complete answer within 1500 ms \(after 2 attempts\)/,
      huge: /version-truth: too-large: the body exceeds the 262144-byte limit \(SNAPSHOT_MAX_BYTES\)/,
      html: /version-truth: not-json: the body is not JSON \(text\/html\)/,
      redirects:
        /version-truth: redirect: refused a redirect to another host \(http:\/\/evil\.example\.invalid\)/,
      refuses: /version-truth: connection-refused: the connection was refused \(after 2 attempts\)/,
    };
    for (const [target, reason] of Object.entries(expected)) {
      expect(byTarget.get(target)?.reason, target).toMatch(reason);
      // every surface of the target says the same
      expect(byTarget.get(target)?.reason?.split('; ')).toHaveLength(4);
    }

    // Recorded in the ledger as SnapshotFailed, each surface with its code, and readable by id.
    const failed = await eventually('the failed snapshots to be listed', async () => {
      const list = await request(t.server).get('/api/v1/snapshots?limit=50').set(AUTH).expect(200);
      return list.body.items.length === 6 ? list.body.items : undefined;
    });
    expect(failed.filter((s: { status: string }) => s.status === 'failed')).toHaveLength(5);
    const huge = await request(t.server)
      .get(`/api/v1/snapshots/${byTarget.get('huge')?.snapshotId}`)
      .set(AUTH)
      .expect(200);
    expect(huge.body).toMatchObject({ status: 'failed', target: 'huge', versions: null });
    expect(huge.body.surfaces['recovery-readiness']).toMatchObject({
      status: 'failed',
      httpStatus: 200,
      error: { code: 'too-large' },
    });
    expect(huge.body.surfaces['recovery-readiness'].bytes).toBeLessThan(FIFTY_MB);

    // The healthy target finished long before the hanging one gave up.
    const healthySnap = await request(t.server)
      .get(`/api/v1/snapshots/${byTarget.get('healthy')?.snapshotId}`)
      .set(AUTH)
      .expect(200);
    const hangSnap = await request(t.server)
      .get(`/api/v1/snapshots/${byTarget.get('hangs')?.snapshotId}`)
      .set(AUTH)
      .expect(200);
    expect(Date.parse(healthySnap.body.finishedAt)).toBeLessThan(Date.parse(hangSnap.body.finishedAt));
    expect(healthySnap.body.surfaces['version-truth'].body.versions).toEqual({ gateway: '1.4.2' });

    // Still healthy, and it says why the observability surface is not ready.
    await request(t.server).get('/health/ready').expect(200);
    const obs = await request(t.server).get('/api/v1/observability/readiness').set(AUTH).expect(200);
    expect(obs.body.ready).toBe(false);
    expect(obs.body.reasons).toEqual(
      expect.arrayContaining([expect.stringMatching(/^hangs: the latest snapshot \(tick .*\) failed$/)]),
    );
    expect(obs.body.reasons.join('\n')).not.toMatch(/healthy:/);
  });

  it('refuses a snapshot request for an unknown target, or from a key that may not write', async () => {
    const bad = await request(t.server)
      .post('/api/v1/snapshots')
      .set(AUTH)
      .send({ target: '../etc' })
      .expect(400);
    expect(bad.body.errors[0].field).toBe('target');
    await request(t.server).post('/api/v1/snapshots').set(AUTH).send({ target: 'x', extra: 1 }).expect(400);
  });
});
