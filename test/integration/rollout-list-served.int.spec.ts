import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../../src/database/database.js';
import { ProjectionsRepository } from '../../src/projections/projections.repository.js';
import { ROLLOUT_SUMMARY, RolloutsRepository, summaryTable } from '../../src/rollouts/rollouts.repository.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

// The list reads the version of the rollout summary this process last saw served, without a
// statement to look it up. These tests swap versions behind its back, as another replica would,
// and check that the list never answers from a version that is no longer served.

let tdb: TestDatabase;

beforeAll(async () => {
  tdb = await createTestDatabase();
});
afterAll(() => tdb.drop());

/** One summary row in `table`, with a title that says where it came from. */
async function insertRow(table: string, title: string, products: string[] = ['portal']): Promise<string> {
  const id = randomUUID();
  const now = new Date().toISOString();
  await sql`insert into ${sql.table(table)}
              (rollout_id, title, products, status, created_at, updated_at, version, last_position)
            values (${id}, ${title}, ${products}::text[], 'planned', ${now}, ${now}, 1, 1)`.execute(
    tdb.handle.db,
  );
  return id;
}

/** A replica: its own projections repository, so its own memory of the served version. */
function replica(handle: DatabaseHandle = tdb.handle) {
  const projections = new ProjectionsRepository(handle);
  return { projections, rollouts: new RolloutsRepository(handle, projections) };
}

const titles = async (r: ReturnType<typeof replica>, product?: string) =>
  (await r.rollouts.list({ limit: 50, product })).map((x) => x.title).sort();

/** What another replica does: build the next version, fill it, serve it. */
async function nextVersion(dropOld: boolean, fill: (table: string) => Promise<void>): Promise<number> {
  const other = new ProjectionsRepository(tdb.handle);
  const old = await other.activeVersion(ROLLOUT_SUMMARY);
  const { version } = await other.createNextVersion(ROLLOUT_SUMMARY, summaryTable);
  await fill(summaryTable(version));
  await other.swap(ROLLOUT_SUMMARY, version, dropOld ? summaryTable(old) : undefined);
  return version;
}

describe('the rollout list and the served projection version', () => {
  it('runs one statement per page once it knows the served version', async () => {
    let statements = 0;
    const counted = tdb.handle.db.withPlugin({
      transformQuery: (args) => args.node,
      // Once per statement executed (transformQuery also sees each subquery as it is built).
      transformResult: (args) => {
        statements++;
        return Promise.resolve(args.result);
      },
    });
    const projections = new ProjectionsRepository({ ...tdb.handle, db: counted });
    const rollouts = new RolloutsRepository({ ...tdb.handle, db: counted }, projections);
    await insertRow(summaryTable(1), 'v1 row');
    expect((await rollouts.list({ limit: 50 })).map((x) => x.title)).toEqual(['v1 row']);
    expect(statements).toBe(2);
    expect((await rollouts.list({ limit: 50 })).map((x) => x.title)).toEqual(['v1 row']);
    expect(statements).toBe(3);
  });

  it('answers from the new version when another replica swapped and dropped the old one', async () => {
    const r = replica();
    expect(await titles(r)).toEqual(['v1 row']);
    await nextVersion(true, async (t) => {
      await insertRow(t, 'v2 row');
    });
    // This replica still remembers version 1, whose table is gone.
    expect(await titles(r)).toEqual(['v2 row']);
  });

  it('never answers from a version that is no longer served, even when its table still exists', async () => {
    const r = replica();
    expect(await titles(r)).toEqual(['v2 row']);
    // Served: version 3; version 2's table is left in place with its rows.
    const v3 = await nextVersion(false, async (t) => {
      await insertRow(t, 'v3 row');
    });
    expect(v3).toBe(3);
    expect(await titles(r)).toEqual(['v3 row']);
  });

  it('checks an empty page too: the old version may have nothing where the served one has rows', async () => {
    const r = replica();
    expect(await titles(r, 'docs')).toEqual([]);
    // The stale version 2 (left in place above) is no longer a rebuild under way.
    await tdb.handle.db
      .deleteFrom('projection_checkpoint')
      .where('name', '=', ROLLOUT_SUMMARY)
      .where('version', '=', 2)
      .execute();
    await nextVersion(false, async (t) => {
      await insertRow(t, 'v4 docs row', ['docs']);
    });
    // Version 3 still exists and has no 'docs' row: an empty page from it would be wrong.
    expect(await titles(r, 'docs')).toEqual(['v4 docs row']);
  });
});

describe('the rollout list timestamps', () => {
  it('are the ISO text a Date of the stored value gives, whatever the session time zone', async () => {
    // One session for the whole test, so that the time zone set below is the list's own: on
    // Postgres, a pooled handle could run the list on another connection.
    const session = tdb.url ? await tdb.reopen(1) : tdb.handle;
    const r = replica(session);
    const table = summaryTable(await r.projections.activeVersion(ROLLOUT_SUMMARY));
    const id = randomUUID();
    // Microseconds, an offset, a date that is another day in UTC, a date last century.
    await sql`insert into ${sql.table(table)}
                (rollout_id, title, products, status, created_at, started_at, completed_at,
                 updated_at, version, last_position)
              values (${id}, 'timestamps', '{}', 'completed', '2031-12-31T23:59:59.999999-05:00',
                      '2031-12-31T20:00:00.0005+00:00', '1999-01-02T03:04:05.06Z',
                      '2032-01-01T00:00:00Z', 3, 3)`.execute(session.db);
    await sql`set time zone 'Asia/Kathmandu'`.execute(session.db);
    try {
      const { rows } = await sql<{ tz: string }>`select current_setting('TimeZone') as tz`.execute(
        session.db,
      );
      expect(rows[0]?.tz).toBe('Asia/Kathmandu');
      const item = (await r.rollouts.list({ limit: 200 })).find((x) => x.id === id);
      const stored = await session.db
        .selectFrom(table as 'rollout_summary_v1')
        .select(['created_at', 'started_at', 'completed_at', 'aborted_at', 'updated_at'])
        .where('rollout_id', '=', id)
        .executeTakeFirstOrThrow();
      expect(item).toMatchObject({
        createdAt: stored.created_at.toISOString(),
        startedAt: stored.started_at?.toISOString(),
        completedAt: stored.completed_at?.toISOString(),
        abortedAt: null,
        updatedAt: stored.updated_at.toISOString(),
      });
      expect(item?.createdAt).toBe('2032-01-01T04:59:59.999Z');
    } finally {
      await sql`set time zone 'UTC'`.execute(session.db);
      if (session !== tdb.handle) await session.close();
    }
  });
});

describe('the rollout list as JSON text', () => {
  it('is, byte for byte, what JSON.stringify gives for the stored values, however odd the text', async () => {
    const r = replica();
    const table = summaryTable(await r.projections.activeVersion(ROLLOUT_SUMMARY));
    const id = randomUUID();
    // Quotes, backslashes, escaped control characters (Postgres text holds no NUL), DEL, U+2028, non-BMP, a slash.
    const odd = `"quoted" \\ back\\slash / \b\f\n\r\t \u0001\u0002\u001f \u007f \u2028 é ✓ 😀 </script>`;
    await sql`insert into ${sql.table(table)}
                (rollout_id, title, scope, environment, products, status, plan_revision,
                 steps_planned, steps_completed, rollbacks, created_by, created_at, started_at,
                 updated_at, version, last_position)
              values (${id}, ${odd}, null, 'odd-env', ${['odd-product', odd]}::text[], 'in_progress',
                      2, 7, 3, 1, ${odd}, '2033-05-06T07:08:09.123456Z', '2033-05-06T07:08:10Z',
                      '2033-05-06T07:08:11.5Z', 9007199254740991, 42)`.execute(tdb.handle.db);
    const page = await r.rollouts.listPage({ limit: 1, product: 'odd-product' });
    const s = await tdb.handle.db
      .selectFrom(table as 'rollout_summary_v1')
      .selectAll()
      .where('rollout_id', '=', id)
      .executeTakeFirstOrThrow();
    const iso = (d: Date | null) => (d ? d.toISOString() : null);
    // As the list answered before Postgres built its JSON: the row's values, mapped, serialised.
    const expected = JSON.stringify([
      {
        id: s.rollout_id,
        title: s.title,
        scope: s.scope,
        environment: s.environment,
        products: s.products,
        status: s.status,
        planRevision: s.plan_revision,
        stepsPlanned: s.steps_planned,
        stepsCompleted: s.steps_completed,
        rollbacks: s.rollbacks,
        createdBy: s.created_by,
        createdAt: iso(s.created_at),
        startedAt: iso(s.started_at),
        completedAt: iso(s.completed_at),
        abortedAt: iso(s.aborted_at),
        updatedAt: iso(s.updated_at),
        version: s.version,
        lastPosition: s.last_position,
      },
    ]);
    expect(page.itemsJson).toBe(expected);
    expect(page).toMatchObject({ count: 1, last: { createdAt: '2033-05-06T07:08:09.123Z', id } });
    expect((await r.rollouts.list({ limit: 1, product: 'odd-product' }))[0]?.title).toBe(odd);
  });

  it('is an empty array, with no last row, when nothing matches', async () => {
    const page = await replica().rollouts.listPage({ limit: 50, product: 'no-such-product' });
    expect(page).toEqual({ itemsJson: '[]', count: 0, last: undefined });
  });
});
