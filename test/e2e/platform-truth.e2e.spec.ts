import { sql } from 'kysely';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SamplePlatform, startSamplePlatform } from '../fixtures/sample-platform.js';
import { AUTH, settleLedger, startTestApp, type TestApp } from '../support/app.js';
import { eventually } from '../support/wait.js';

// The service's own four shared-truth surfaces: each answers { ready, reasons }, and the verdict
// and its reasons follow their inputs.

/** 03:00:00 UTC on 29 February: a schedule that never fires while the tests run (snapshots are asked for). */
const LEAP_DAY_CRON = '0 0 3 29 2 *';

const PLAN = {
  title: 'Upgrade identity',
  environment: 'production',
  products: [{ product: 'identity', fromVersion: '3.2.0', toVersion: '3.3.0' }],
  sequence: [{ id: 'roll', order: 1, product: 'identity' }],
  rollbackBoundary: { reversibleState: 'identity pods', irreversibleAfterStepId: 'roll' },
};

let t: TestApp;
let platform: SamplePlatform;
/** The rollout that verified identity 3.3.0. */
let verifiedBy: string;

const get = (path: string) => request(t.server).get(path).set(AUTH).expect(200);
const post = (path: string, body?: object) =>
  request(t.server)
    .post(path)
    .set(AUTH)
    .send(body)
    .expect((res) => {
      if (res.status >= 300) throw new Error(`${path}: ${res.status} ${JSON.stringify(res.body)}`);
    });
/** Polls a surface until `check` holds for it (projections follow the ledger a moment later). */
const surfaceWhen = (
  path: string,
  what: string,
  check: (body: { ready: boolean; reasons: string[] }) => boolean,
) =>
  eventually(what, async () => {
    const res = await get(path);
    return check(res.body)
      ? (res.body as { ready: boolean; reasons: string[] } & Record<string, unknown>)
      : undefined;
  });
const snapshotNow = () => post('/api/v1/snapshots', { target: 'production' });

beforeAll(async () => {
  platform = await startSamplePlatform({ versions: { identity: '3.2.0' } });
  t = await startTestApp({
    env: {
      SNAPSHOT_TARGETS: `production=${platform.url}`,
      SNAPSHOT_CRON: LEAP_DAY_CRON,
      SNAPSHOT_RETRIES: '0',
      CHECKPOINT_INTERVAL_MS: '500',
    },
  });
});
afterAll(async () => {
  await t?.close();
  await platform?.close();
});

describe('the four surfaces', () => {
  it('version-truth: not ready until a completed rollout verifies a version, then names it with its position', async () => {
    const before = await get('/api/v1/platform/version-truth');
    expect(before.body).toMatchObject({
      ready: false,
      reasons: ['no completed rollout has verified a product version yet'],
      products: [],
    });

    const id = (await request(t.server).post('/api/v1/rollouts').set(AUTH).send(PLAN).expect(201)).body.id;
    verifiedBy = id;
    for (const step of ['start', 'steps/roll/start', 'steps/roll/complete', 'complete']) {
      await post(`/api/v1/rollouts/${id}/${step}`);
    }
    const after = await surfaceWhen(
      '/api/v1/platform/version-truth',
      'version-truth to be ready',
      (b) => b.ready,
    );
    expect(after.products).toEqual([
      {
        environment: 'production',
        product: 'identity',
        version: '3.3.0',
        rolloutId: id,
        verifiedAt: expect.any(String),
        position: expect.any(Number),
      },
    ]);
    const events = (await get(`/api/v1/rollouts/${id}/events`)).body.events;
    expect((after.products as { position: number }[])[0]?.position).toBe(events.at(-1).position);
    expect(after.reasons[0]).toMatch(
      /^1 product version\(s\) verified by completed rollouts in 1 environment\(s\)/,
    );
  });

  it('contracts/drift: unknown before a snapshot, not ready while drift is open, ready when it resolves', async () => {
    const unknown = await get('/api/v1/contracts/drift');
    expect(unknown.body).toMatchObject({
      ready: false,
      reasons: ['production: no snapshot taken yet, so its drift is unknown'],
    });

    // The platform still shows 3.2.0 while the ledger verified 3.3.0: drift. With no snapshot
    // before, the change may have happened any time up to now, so the rollout is the suspect.
    await snapshotNow();
    const drifted = await surfaceWhen('/api/v1/contracts/drift', 'drift to show', (b) =>
      b.reasons.some((r) => r.includes('identity')),
    );
    expect(drifted.ready).toBe(false);
    expect(drifted.reasons).toEqual([
      expect.stringMatching(
        new RegExp(
          `^production: identity is 3\\.2\\.0, but the ledger verified 3\\.3\\.0 at position \\d+ \\(during rollout ${verifiedBy} step roll, since .*\\)$`,
        ),
      ),
    ]);

    platform.setVersion('identity', '3.3.0');
    await snapshotNow();
    const clear = await surfaceWhen('/api/v1/contracts/drift', 'drift to resolve', (b) => b.ready);
    expect(clear).toMatchObject({ reasons: ['no open drift across 1 target(s)'], drift: [] });
  });

  it('observability/readiness: follows the latest snapshot of each target', async () => {
    const ready = await surfaceWhen(
      '/api/v1/observability/readiness',
      'observability to be ready',
      (b) => b.ready,
    );
    expect(ready).toMatchObject({ database: { ok: true }, sequencer: { pending: expect.any(Number) } });
    expect(ready.snapshots).toEqual([
      expect.objectContaining({ target: 'production', fresh: true, latestStatus: 'taken' }),
    ]);

    platform.setReadiness('observability-readiness', true);
    // The platform stops answering: its next snapshot fails, and readiness says which target.
    const url = platform.url;
    await platform.close();
    await snapshotNow();
    const failing = await surfaceWhen(
      '/api/v1/observability/readiness',
      'observability to notice',
      (b) => !b.ready,
    );
    expect(failing.reasons).toEqual([
      expect.stringMatching(/^production: the latest snapshot \(tick .*\) failed$/),
    ]);

    platform = await startSamplePlatform({
      port: Number(new URL(url).port),
      versions: { identity: '3.3.0' },
    });
    await snapshotNow();
    await surfaceWhen('/api/v1/observability/readiness', 'observability to recover', (b) => b.ready);
  });

  it('recovery/readiness: names an in-flight rollout without a rollback boundary, and the ledger’s state', async () => {
    await settleLedger(t);
    const ok = await surfaceWhen('/api/v1/recovery/readiness', 'recovery to be ready', (b) => b.ready);
    expect(ok.ledger).toMatchObject({ ok: true });
    expect(ok.reasons[0]).toMatch(
      /^the ledger verifies through position \d+, the latest checkpoint \(position \d+\) is signed and fresh/,
    );

    const { rollbackBoundary: _, ...noBoundary } = PLAN;
    const id = (
      await request(t.server)
        .post('/api/v1/rollouts')
        .set(AUTH)
        .send({ ...noBoundary, title: 'Risky' })
        .expect(201)
    ).body.id;
    await post(`/api/v1/rollouts/${id}/start`);
    const risky = await surfaceWhen(
      '/api/v1/recovery/readiness',
      'recovery to name the rollout',
      (b) => !b.ready,
    );
    expect(risky.reasons).toEqual([
      `rollout ${id} (Risky) is in_progress without a declared rollback boundary`,
    ]);

    await post(`/api/v1/rollouts/${id}/abort`, { reason: 'no boundary declared' });
    await surfaceWhen('/api/v1/recovery/readiness', 'recovery to be ready again', (b) => b.ready);
  });

  it('recovery/readiness: a ledger that no longer verifies is not ready', async () => {
    await settleLedger(t);
    await surfaceWhen('/api/v1/recovery/readiness', 'recovery to be ready', (b) => b.ready);
    // A new entry, then tampered with the way only a superuser could, behind the triggers' back.
    const id = (
      await request(t.server)
        .post('/api/v1/rollouts')
        .set(AUTH)
        .send({ ...PLAN, title: 'Honest' })
        .expect(201)
    ).body.id;
    await settleLedger(t);
    await sql`alter table event disable trigger event_no_update_delete`.execute(t.handle.db);
    await sql`update event set data = jsonb_set(data, '{plan,title}', '"forged"')
              where stream_id = ${`rollout-${id}`}`.execute(t.handle.db);
    await sql`alter table event enable trigger event_no_update_delete`.execute(t.handle.db);
    const broken = await get('/api/v1/recovery/readiness');
    expect(broken.body).toMatchObject({ ready: false, ledger: { ok: false } });
    expect(broken.body.reasons[0]).toMatch(
      /^the ledger does not verify: broken at position \d+: event .* does not match its hash/,
    );
  });
});
