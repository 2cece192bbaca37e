import { sql } from 'kysely';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProjectionsService } from '../../src/projections/projections.service.js';
import type { RolloutSummary } from '../../src/rollouts/rollouts.repository.js';
import { AUTH, startTestApp, type TestApp } from '../support/app.js';
import { bearer, createKey } from '../support/auth.js';
import { eventually } from '../support/wait.js';

// The rollout list: a checkpointed projection of the ledger, filtered and keyset-paginated,
// newest first; and its rebuild (a new version beside the served one, then swapped).

const BASE = '/api/v1/rollouts';
const PROJECTIONS = '/api/v1/admin/projections';

const ENVIRONMENTS = ['staging', 'production', 'dev-eu'] as const;
const PRODUCTS = ['identity', 'portal-docs', 'billing', 'search-api'] as const;
const KINDS = ['Quarterly patch', 'Security fix', 'Docs refresh', 'Major upgrade', 'Hotfix'] as const;
type Fate = 'planned' | 'in_progress' | 'completed' | 'aborted' | 'rolling_back';
const FATES: Fate[] = ['planned', 'in_progress', 'completed', 'aborted', 'rolling_back'];

type Summary = RolloutSummary;

interface Page {
  items: Summary[];
  next: string | null;
}

let t: TestApp;
/** What the list must say about each rollout this file created, by id. */
const expected = new Map<string, Summary>();

beforeAll(async () => {
  t = await startTestApp({ env: { SEQUENCER_POLL_MS: '20' } });
});
afterAll(() => t?.close());

// ---------------------------------------------------------------------------------------------
// helpers

const get = (path: string) => request(t.server).get(path).set(AUTH);
const post = (path: string, body?: object) => {
  const req = request(t.server).post(path).set(AUTH);
  return body === undefined ? req : req.send(body);
};

async function list(query = ''): Promise<Page> {
  const res = await get(`${BASE}${query ? `?${query}` : ''}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as Page;
}

/** The plan of the i-th rollout: environments, products, kinds and fates vary independently. */
function planOf(i: number): Record<string, unknown> {
  if (i === 24) return {}; // no title, no environment, no products
  const products = [PRODUCTS[i % 4]!, ...(i % 5 === 0 ? [PRODUCTS[(i + 1) % 4]!] : [])];
  const title =
    i === 7
      ? 'Rollout 7: 100% traffic shift'
      : i === 11
        ? 'Rollout 11: snake_case rename'
        : `Rollout ${i}: ${KINDS[i % 5]}`;
  return {
    title,
    scope: i % 2 === 0 ? 'stack-wide' : 'product',
    environment: ENVIRONMENTS[i % 3],
    // Listed twice in some plans: the list shows each product once, sorted.
    products: [...products, products[0]!].map((product) => ({ product, toVersion: `${i}.0.0` })),
    sequence: [
      { id: 's1', order: 1, product: products[0] },
      { id: 's2', order: 2, layer: 'docs' },
    ],
  };
}

const fateOf = (i: number): Fate => FATES[(i * 2) % 5]!;

const WRITES: Record<Fate, [string, object?][]> = {
  planned: [],
  in_progress: [['start'], ['steps/s1/start']],
  completed: [['start'], ['steps/s1/start'], ['steps/s1/complete'], ['complete']],
  aborted: [['abort', { reason: 'change freeze' }]],
  rolling_back: [
    ['start'],
    ['steps/s1/start'],
    ['steps/s1/fail', { reason: 'x' }],
    ['rollbacks', { reason: 'x' }],
  ],
};

/** Creates a rollout, takes it to its fate, and returns its id. */
async function record(plan: Record<string, unknown>, fate: Fate): Promise<string> {
  const created = await post(BASE, plan).expect(201);
  const id = created.body.id as string;
  for (const [path, body] of WRITES[fate]) {
    const res = await post(`${BASE}/${id}/${path}`, body);
    expect(res.status, `${path}: ${JSON.stringify(res.body)}`).toBe(200);
  }
  return id;
}

/** The summary the list must show for a rollout, derived from its own state (GET /:id). */
async function summaryFromState(id: string): Promise<Summary> {
  const s = (await get(`${BASE}/${id}`).expect(200)).body;
  return {
    id,
    title: s.plan.title ?? null,
    scope: s.plan.scope ?? null,
    environment: s.plan.environment ?? null,
    products: [...new Set<string>((s.plan.products ?? []).map((p: { product: string }) => p.product))].sort(),
    status: s.status,
    planRevision: s.planRevision,
    stepsPlanned: s.plan.sequence?.length ?? 0,
    stepsCompleted: s.steps.filter((step: { status: string }) => step.status === 'completed').length,
    rollbacks: s.rollbacks.length,
    createdBy: 'ADMIN_TOKEN',
    createdAt: s.createdAt,
    startedAt: s.startedAt ?? null,
    completedAt: s.completedAt ?? null,
    abortedAt: s.abortedAt ?? null,
    updatedAt: s.updatedAt,
    version: s.version,
    lastPosition: s.lastPosition,
  };
}

/**
 * Waits until the list shows every expected rollout at its current version, then completes the
 * expectations of rollouts recorded before they were sequenced (lastPosition); returns all rows.
 */
async function projected(): Promise<Summary[]> {
  const rows = await eventually('the projection to catch up', async () => {
    const { items } = await list('limit=200');
    const seen = new Map(items.map((item) => [item.id, item]));
    for (const [id, want] of expected) if (seen.get(id)?.version !== want.version) return undefined;
    return items;
  });
  for (const [id, want] of expected)
    if (want.lastPosition == null) expected.set(id, await summaryFromState(id));
  return rows;
}

const newestFirst = (a: Summary, b: Summary) =>
  a.createdAt === b.createdAt ? (a.id < b.id ? 1 : -1) : a.createdAt < b.createdAt ? 1 : -1;

/** The expected rows matching `keep`, newest first. */
const where = (keep: (s: Summary) => boolean) => [...expected.values()].filter(keep).sort(newestFirst);
const ids = (rows: { id: string }[]) => rows.map((r) => r.id);

/** Every row of a query, page by page, checking the page sizes and the cursors. */
async function walk(
  query: string,
  limit: number,
  between?: (page: number) => Promise<void>,
): Promise<Summary[]> {
  const rows: Summary[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 100; page++) {
    const res: Page = await list(
      [query, `limit=${limit}`, cursor ? `cursor=${cursor}` : ''].filter(Boolean).join('&'),
    );
    expect(res.items.length).toBeLessThanOrEqual(limit);
    rows.push(...res.items);
    if (res.next === null) {
      expect(res.items.length).toBeLessThan(limit + 1);
      return rows;
    }
    expect(res.items).toHaveLength(limit);
    cursor = res.next;
    await between?.(page);
  }
  throw new Error('more than 100 pages');
}

function expectProblem(res: request.Response, status: number, field?: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ status, title: expect.any(String), detail: expect.any(String) });
  if (field)
    expect(res.body.errors).toEqual(expect.arrayContaining([{ field, message: expect.any(String) }]));
}

// ---------------------------------------------------------------------------------------------

// 25 rollouts across environments, products and statuses, for every test of this file.
beforeAll(async () => {
  for (let i = 0; i < 25; i++) {
    const id = await record(planOf(i), fateOf(i));
    expected.set(id, { id } as Summary);
  }
  // Versions first (the projection is awaited against them), then the full summaries.
  for (const id of expected.keys()) expected.set(id, await summaryFromState(id));
  await projected();
});

describe('the rollout list', () => {
  it('shows every rollout, newest first, each row equal to the rollout’s own state', async () => {
    const { items, next } = await list('limit=200');
    expect(next).toBeNull();
    expect(items).toEqual(where(() => true));
    // The data set exercises every status, environment and product.
    const statuses = new Set(items.map((s) => s.status));
    expect([...statuses].sort()).toEqual([...FATES].sort());
    expect(items.filter((s) => s.environment === null)).toHaveLength(1);
  });

  it('without a limit gives at most 50, and the next cursor when the page is full', async () => {
    const { items, next } = await list();
    expect(items).toEqual(where(() => true).slice(0, 50));
    expect(next === null).toBe(items.length < 50);
  });

  it.each(FATES)('status=%s returns exactly the rollouts in that status', async (status) => {
    const want = where((s) => s.status === status);
    expect(want.length).toBeGreaterThan(0);
    expect(ids((await list(`status=${status}&limit=200`)).items)).toEqual(ids(want));
  });

  it.each(PRODUCTS)('product=%s returns exactly the rollouts moving it', async (product) => {
    const want = where((s) => s.products.includes(product));
    expect(want.length).toBeGreaterThan(0);
    expect(ids((await list(`product=${product}&limit=200`)).items)).toEqual(ids(want));
  });

  it.each(ENVIRONMENTS)('environment=%s returns exactly the rollouts there', async (environment) => {
    const want = where((s) => s.environment === environment);
    expect(want.length).toBeGreaterThan(0);
    expect(ids((await list(`environment=${environment}&limit=200`)).items)).toEqual(ids(want));
  });

  it('unknown values of a filter match nothing', async () => {
    expect((await list('product=kubernetes')).items).toEqual([]);
    expect((await list('environment=mars')).items).toEqual([]);
  });

  it('from (inclusive) and to (exclusive) bound the creation time, in any offset', async () => {
    const chronological = where(() => true).reverse();
    const from = chronological[5]!.createdAt;
    const to = chronological[17]!.createdAt;
    const q = (v: string) => encodeURIComponent(v);
    const between = where((s) => s.createdAt >= from && s.createdAt < to);
    expect(between.length).toBeGreaterThanOrEqual(10);
    expect(ids((await list(`from=${q(from)}&to=${q(to)}&limit=200`)).items)).toEqual(ids(between));
    expect(ids((await list(`from=${q(from)}&limit=200`)).items)).toEqual(
      ids(where((s) => s.createdAt >= from)),
    );
    expect(ids((await list(`to=${q(to)}&limit=200`)).items)).toEqual(ids(where((s) => s.createdAt < to)));
    // The same instant written with another offset.
    const shifted = (iso: string) => {
      const d = new Date(Date.parse(iso) + 2 * 3_600_000).toISOString();
      return d.replace('Z', '+02:00');
    };
    expect(ids((await list(`from=${q(shifted(from))}&to=${q(shifted(to))}&limit=200`)).items)).toEqual(
      ids(between),
    );
    expect((await list(`from=${q(to)}&to=${q(from)}`)).items).toEqual([]);
  });

  it('filters combine (AND)', async () => {
    const want = where(
      (s) => s.environment === 'production' && s.status === 'completed' && s.products.includes('identity'),
    );
    const got = await list('environment=production&status=completed&product=identity&limit=200');
    expect(ids(got.items)).toEqual(ids(want));
    const wider = where((s) => s.environment === 'staging' && s.status !== 'planned');
    const staging = (await list('environment=staging&limit=200')).items.filter((s) => s.status !== 'planned');
    expect(ids(staging)).toEqual(ids(wider));
  });

  it.each([
    ['QUARTERLY'],
    ['security fix'],
    ['docs'],
    ['prod'],
    ['search-api'],
    ['%'],
    ['_'],
    ['100%'],
    ['e_c'],
    ['\\'],
    ["'; drop table event; --"],
  ])(
    'q=%s matches title, products or environment, case-insensitively, wildcards taken literally',
    async (q) => {
      const needle = q.toLowerCase();
      const want = where((s) =>
        [s.title ?? '', s.products.join(' '), s.environment ?? ''].some((v) =>
          v.toLowerCase().includes(needle),
        ),
      );
      expect(ids((await list(`q=${encodeURIComponent(q)}&limit=200`)).items)).toEqual(ids(want));
    },
  );

  it('the % and _ searches find exactly the one title holding each', async () => {
    expect((await list('q=%25')).items.map((s) => s.title)).toEqual(['Rollout 7: 100% traffic shift']);
    expect((await list('q=_')).items.map((s) => s.title)).toEqual(['Rollout 11: snake_case rename']);
  });

  it.each([
    ['limit=0', 'limit'],
    ['limit=201', 'limit'],
    ['limit=-1', 'limit'],
    ['limit=ten', 'limit'],
    ['limit=1.5', 'limit'],
    ['cursor=garbage', 'cursor'],
    [`cursor=${Buffer.from('["x","y"]').toString('base64url')}`, 'cursor'],
    [`cursor=${Buffer.from('["2026-01-01T00:00:00.000Z","not-a-uuid"]').toString('base64url')}`, 'cursor'],
    [`cursor=${Buffer.from('{"createdAt":"2026-01-01T00:00:00.000Z"}').toString('base64url')}`, 'cursor'],
    [`cursor=${'a'.repeat(201)}`, 'cursor'],
    ['status=done', 'status'],
    ['product=bad%20product', 'product'],
    ['environment=%2E%2E%2Fetc', 'environment'],
    ['from=yesterday', 'from'],
    ['to=2026-01-01', 'to'],
    ['q=%20%20', 'q'],
    [`q=${'x'.repeat(201)}`, 'q'],
    ['sort=asc', 'sort'],
  ])('refuses ?%s with a 400 problem naming %s', async (query, field) => {
    expectProblem(await get(`${BASE}?${query}`), 400, field);
  });

  it('401 without a key', async () => {
    const res = await request(t.server).get(BASE);
    expectProblem(res, 401);
  });

  it('a filtered walk with limit=2 gives every matching row once, in order', async () => {
    for (const status of ['completed', 'planned']) {
      const rows = await walk(`status=${status}`, 2);
      expect(ids(rows)).toEqual(ids(where((s) => s.status === status)));
    }
  });

  // Last of the list tests: it adds rollouts.
  it('keyset pagination with limit=7 walks every row exactly once, in order, while new rollouts arrive', async () => {
    const before = where(() => true);
    const added: string[] = [];
    const rows = await walk('', 7, async (page) => {
      if (page > 1) return;
      // Rollouts created between pages are newer than every row: they must not shift the walk.
      for (let n = 0; n < 2; n++) {
        const id = await record(
          { title: `Arrived during page ${page} #${n}`, environment: 'staging' },
          'planned',
        );
        added.push(id);
        expected.set(id, await summaryFromState(id));
      }
      await projected();
    });
    expect(ids(rows)).toEqual(ids(before));
    expect(new Set(ids(rows)).size).toBe(rows.length);
    // A fresh first page shows the newcomers first, newest first.
    const fresh = await list('limit=7');
    expect(ids(fresh.items)).toEqual(ids(where(() => true)).slice(0, 7));
    expect(ids(fresh.items).slice(0, 4)).toEqual([...added].reverse());
    expect(ids(fresh.items).slice(4)).toEqual(ids(before).slice(0, 3));
  });
});

// ---------------------------------------------------------------------------------------------

describe('rebuilding the projection', () => {
  const versionsOf = async () =>
    (
      (await get(PROJECTIONS).expect(200)).body.projections as {
        name: string;
        version: number;
        active: boolean;
      }[]
    )
      .filter((p) => p.name === 'rollouts')
      .map((p) => ({ version: p.version, active: p.active }));

  it('builds a new version beside the served one, swaps it in, drops the old, and serves the same list', async () => {
    const before = await projected();
    expect(before.length).toBeGreaterThanOrEqual(25);
    expect(await versionsOf()).toEqual([{ version: 1, active: true }]);

    const res = await post(`${PROJECTIONS}/rollouts/rebuild`).expect(202);
    expect(res.body).toMatchObject({ name: 'rollouts', version: 2, position: expect.any(Number) });
    // Right after: the new version is listed (building, or already swapped in).
    expect((await versionsOf()).map((v) => v.version)).toContain(2);

    await eventually('version 2 to be served alone', async () => {
      const versions = await versionsOf();
      return versions.length === 1 && versions[0]?.version === 2 && versions[0].active ? true : undefined;
    });
    const { rows } = await sql<{ v1: string | null; v2: string | null }>`
      select to_regclass('rollout_summary_v1')::text as v1, to_regclass('rollout_summary_v2')::text as v2
    `.execute(t.handle.db);
    expect(rows[0]).toEqual({ v1: null, v2: 'rollout_summary_v2' });

    const after = (await list('limit=200')).items;
    expect(after).toEqual(before);
    for (const status of FATES) {
      expect(ids((await list(`status=${status}&limit=200`)).items)).toEqual(
        ids(where((s) => s.status === status)),
      );
    }

    // The new version keeps following the ledger.
    const id = await record({ title: 'After the rebuild', environment: 'dev-eu' }, 'in_progress');
    expected.set(id, await summaryFromState(id));
    const rowsNow = await projected();
    expect(rowsNow.find((s) => s.id === id)).toEqual(expected.get(id));
    expect(rowsNow).toEqual(where(() => true));
  });

  it('refuses an unknown projection (404), a malformed name (400) and a non-admin key (403)', async () => {
    const before = await versionsOf();
    expectProblem(await post(`${PROJECTIONS}/nothing-here/rebuild`), 404);
    expectProblem(await post(`${PROJECTIONS}/Bad_Name/rebuild`), 400, 'name');
    const engineer = await createKey(t.server, { name: 'rebuild-engineer', role: 'engineer' });
    expectProblem(
      await request(t.server).post(`${PROJECTIONS}/rollouts/rebuild`).set(bearer(engineer.key)),
      403,
    );
    expectProblem(await request(t.server).get(PROJECTIONS).set(bearer(engineer.key)), 403);
    expect(await versionsOf()).toEqual(before);
  });

  describe('while a rebuild is under way', () => {
    // A replica whose projection runner is off: a rebuild stays under way until drained.
    let idle: TestApp;
    beforeAll(async () => {
      idle = await startTestApp({ env: { SEQUENCER_ENABLED: 'false' } });
    });
    afterAll(() => idle?.close());

    const idleVersions = async () =>
      (
        (await request(idle.server).get(PROJECTIONS).set(AUTH).expect(200)).body.projections as {
          name: string;
          version: number;
          active: boolean;
        }[]
      )
        .filter((p) => p.name === 'rollouts')
        .map((p) => ({ version: p.version, active: p.active }));
    const rebuild = () => request(idle.server).post(`${PROJECTIONS}/rollouts/rebuild`).set(AUTH);

    it('a second rebuild is refused with 400 until the first is swapped in', async () => {
      await rebuild().expect(202);
      const second = await rebuild();
      expectProblem(second, 400, 'name');
      expect(second.body.detail).toMatch(/already under way/);
      expect(await idleVersions()).toEqual([
        { version: 1, active: true },
        { version: 2, active: false },
      ]);

      await idle.app.get(ProjectionsService).drain();
      expect(await idleVersions()).toEqual([{ version: 2, active: true }]);
      const third = await rebuild().expect(202);
      expect(third.body).toMatchObject({ name: 'rollouts', version: 3, active: false });
      await idle.app.get(ProjectionsService).drain();
    });

    it('two rebuilds asked at once: one is accepted, the other refused', async () => {
      const results = await Promise.all([rebuild(), rebuild()]);
      expect(results.map((r) => r.status).sort()).toEqual([202, 400]);
      expect(await idleVersions()).toEqual([
        { version: 3, active: true },
        { version: 4, active: false },
      ]);
    });
  });
});
