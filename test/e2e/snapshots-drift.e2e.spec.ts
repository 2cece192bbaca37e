import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SamplePlatform, startSamplePlatform } from '../fixtures/sample-platform.js';
import { AUTH, settleLedger, startTestApp, type TestApp } from '../support/app.js';
import { eventually } from '../support/wait.js';

// The acceptance story: a sample platform snapshotted every second; a rollout moves gateway to
// 1.5.0 (the change is attributed to it); the ledger then verifies 1.5.0; an out-of-band change
// to 1.6.0 is detected as drift against the ledger, and fixing it resolves the drift.

const PLAN = {
  title: 'Upgrade gateway',
  scope: 'product',
  environment: 'production',
  products: [{ product: 'gateway', fromVersion: '1.4.2', toVersion: '1.5.0' }],
  compatibility: [{ product: 'gateway', reference: 'compat#gateway-1.5', result: 'compatible' }],
  releaseNotes: [{ product: 'gateway', version: '1.5.0', reference: 'release-notes/gateway/1.5.0' }],
  sequence: [
    { id: 'roll-gateway', order: 1, product: 'gateway', action: 'roll gateway pods', reversible: true },
  ],
  sharedTruthChanges: 'version-truth publishes gateway 1.5.0 after roll-gateway',
  rollbackBoundary: { reversibleState: 'gateway pods', irreversibleAfterStepId: 'roll-gateway' },
  verification: {
    pre: ['version-truth', 'observability-readiness'],
    post: ['version-truth', 'observability-readiness'],
    representativePaths: ['operator lists services'],
  },
};

interface DriftView {
  id: string;
  key: string;
  basis: string;
  expected: string | null;
  observed: string | null;
  attribution: { kind: string; rolloutId?: string; stepId?: string | null };
  open: boolean;
  resolution: string | null;
  detectedPosition: number;
  resolvedPosition: number | null;
}

let t: TestApp;
let platform: SamplePlatform;

const get = (path: string) => request(t.server).get(path).set(AUTH);
const post = (path: string, body?: object) => request(t.server).post(path).set(AUTH).send(body);

async function driftOf(query = ''): Promise<DriftView[]> {
  const res = await get(`/api/v1/drift?target=production${query}`).expect(200);
  return res.body.items as DriftView[];
}

/** Ledger entries of a type (the ledger is the record; the read models only follow it). */
async function ledgerTypes(): Promise<{ type: string; data: Record<string, unknown>; position: number }[]> {
  const out: { type: string; data: Record<string, unknown>; position: number }[] = [];
  for (let after = 0; ; ) {
    const res = await get(`/api/v1/ledger?after=${after}&limit=1000`).expect(200);
    out.push(...res.body.events);
    if (res.body.next === null) return out;
    after = res.body.next;
  }
}

beforeAll(async () => {
  platform = await startSamplePlatform({ versions: { gateway: '1.4.2' } });
  t = await startTestApp({
    env: {
      SNAPSHOT_TARGETS: `production=${platform.url}`,
      SNAPSHOT_CRON: '* * * * * *',
      SNAPSHOT_TIMEOUT_MS: '2000',
      SNAPSHOT_RETRIES: '0',
    },
  });
});
afterAll(async () => {
  await t?.close();
  await platform?.close();
});

describe('drift against the ledger, attributed', () => {
  it('attributes a rollout’s change to it, and an out-of-band change to nobody, then resolves both', async () => {
    // A first snapshot is the baseline.
    await eventually('a first snapshot', async () => {
      const res = await get('/api/v1/snapshots?target=production').expect(200);
      return res.body.items.find((s: { status: string }) => s.status === 'taken');
    });

    // The rollout, done by the book; the platform moves during its step.
    const created = await post('/api/v1/rollouts', PLAN).expect(201);
    const id = created.body.id as string;
    const readback = (phase: string, surface: string, version: string) =>
      post(`/api/v1/rollouts/${id}/readbacks`, {
        phase,
        surface,
        expected: { gateway: version },
        observed: { gateway: version },
        verdict: 'pass',
      }).expect(200);
    await readback('pre', 'version-truth', '1.4.2');
    await readback('pre', 'observability-readiness', '1.4.2');
    await post(`/api/v1/rollouts/${id}/start`).expect(200);
    await post(`/api/v1/rollouts/${id}/steps/roll-gateway/start`).expect(200);
    platform.setVersion('gateway', '1.5.0');
    const during = await eventually('the change to be seen during the step', async () =>
      (await driftOf()).find((d) => d.key === 'version:gateway' && d.observed === '1.5.0'),
    );
    expect(during).toMatchObject({
      basis: 'previous-snapshot',
      expected: '1.4.2',
      attribution: { kind: 'rollout', rolloutId: id, stepId: 'roll-gateway' },
      open: true,
    });
    await post(`/api/v1/rollouts/${id}/steps/roll-gateway/complete`).expect(200);
    await readback('post', 'version-truth', '1.5.0');
    await readback('post', 'observability-readiness', '1.5.0');
    await post(`/api/v1/rollouts/${id}/path-verifications`, {
      path: 'operator lists services',
      verdict: 'pass',
    }).expect(200);
    await post(`/api/v1/rollouts/${id}/complete`).expect(200);

    // Once the ledger verifies 1.5.0, the rollout's change is no longer drift.
    await eventually('the rollout’s change to resolve as matching the ledger', async () =>
      (await driftOf('&open=false')).find((d) => d.id === during.id && d.resolution === 'matches-ledger'),
    );
    const truth = await get('/api/v1/platform/version-truth').expect(200);
    expect(truth.body.products).toEqual([
      expect.objectContaining({
        environment: 'production',
        product: 'gateway',
        version: '1.5.0',
        rolloutId: id,
      }),
    ]);

    // Out of band: after a snapshot wholly after the rollout, someone moves gateway to 1.6.0.
    const settled = new Date().toISOString();
    await eventually('a snapshot after the rollout', async () => {
      const res = await get('/api/v1/snapshots?target=production&limit=1').expect(200);
      return res.body.items.find((s: { tickAt: string }) => s.tickAt > settled);
    });
    platform.setVersion('gateway', '1.6.0');
    const outOfBand = await eventually('the out-of-band drift', async () =>
      (await driftOf('&open=true')).find((d) => d.key === 'version:gateway' && d.observed === '1.6.0'),
    );
    expect(outOfBand).toMatchObject({
      basis: 'ledger',
      expected: '1.5.0',
      attribution: { kind: 'out-of-band' },
    });
    const drifted = await get('/api/v1/contracts/drift').expect(200);
    expect(drifted.body.ready).toBe(false);
    expect(drifted.body.reasons.join('\n')).toMatch(
      /gateway is 1\.6\.0, but the ledger verified 1\.5\.0.*out-of-band/,
    );

    // Fixed: back to what the ledger verified.
    platform.setVersion('gateway', '1.5.0');
    const resolved = await eventually('the drift to resolve', async () =>
      (await driftOf('&open=false')).find((d) => d.id === outOfBand.id),
    );
    expect(resolved).toMatchObject({ resolution: 'matches-ledger', open: false });
    expect(resolved.resolvedPosition).toBeGreaterThan(resolved.detectedPosition);

    // The ledger holds the events themselves.
    const entries = await eventually('the drift events in the ledger', async () => {
      const all = await ledgerTypes();
      return all.filter((e) => e.type === 'DriftResolved').length >= 2 ? all : undefined;
    });
    const detected = entries.filter((e) => e.type === 'DriftDetected').map((e) => e.data);
    expect(detected).toContainEqual(
      expect.objectContaining({
        driftId: outOfBand.id,
        attribution: { kind: 'out-of-band' },
        observed: '1.6.0',
      }),
    );
    // The rollout's report shows the drift seen during its window, attributed to it, and not
    // the out-of-band one that came after it.
    await settleLedger(t);
    const report = await get(`/api/v1/reports/rollouts/${id}?format=json`).expect(200);
    expect(report.body.drift).toEqual([
      expect.objectContaining({
        driftId: during.id,
        key: 'version:gateway',
        observed: '1.5.0',
        resolution: 'matches-ledger',
        attributedTo: `rollout ${id} step roll-gateway`,
      }),
    ]);
    const html = await get(`/api/v1/reports/rollouts/${id}?format=html`).expect(200);
    expect(html.text).toContain(`rollout ${id} step roll-gateway`);
    const clear = await eventually('contracts-drift to be ready again', async () => {
      const res = await get('/api/v1/contracts/drift').expect(200);
      return res.body.ready ? res.body : undefined;
    });
    expect(clear.reasons).toEqual(['no open drift across 1 target(s)']);
  });

  it('answers the queries: one snapshot with its bodies, the drift timeline', async () => {
    const list = await get('/api/v1/snapshots?target=production&limit=2').expect(200);
    expect(list.body.items).toHaveLength(2);
    expect(list.body.next).toEqual(expect.any(String));
    const older = await get(`/api/v1/snapshots?target=production&limit=2&cursor=${list.body.next}`).expect(
      200,
    );
    expect(older.body.items[0].tickAt < list.body.items[1].tickAt).toBe(true);

    const one = await get(`/api/v1/snapshots/${list.body.items[0].id}`).expect(200);
    expect(one.body).toMatchObject({ id: list.body.items[0].id, target: 'production', status: 'taken' });
    expect(one.body.surfaces['version-truth']).toMatchObject({
      status: 'ok',
      httpStatus: 200,
      digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      body: { versions: { gateway: '1.5.0' } },
    });

    const timeline = await get('/api/v1/drift/timeline?target=production').expect(200);
    const today = new Date().toISOString().slice(0, 10);
    expect(timeline.body.days.at(-1)).toMatchObject({ day: today, detected: 2, resolved: 2, open: 0 });

    await get('/api/v1/snapshots/not-a-uuid').expect(400);
    await get('/api/v1/snapshots/00000000-0000-4000-8000-000000000000').expect(404);
    const bad = await get('/api/v1/drift?open=maybe').expect(400);
    expect(bad.body.errors[0].field).toBe('open');
    await post('/api/v1/snapshots', { target: 'nowhere' }).expect(404);
  });
});
