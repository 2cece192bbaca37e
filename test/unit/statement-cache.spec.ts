import fc from 'fast-check';
import {
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  sql,
} from 'kysely';
import { describe, expect, it } from 'vitest';
import type { Database } from '../../src/database/schema.js';
import { StatementCache } from '../../src/database/statement-cache.js';

const db = new Kysely<Database>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (k) => new PostgresIntrospector(k),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

interface P {
  [key: string]: unknown;
  stream: string;
  from: number | undefined;
  type: string | undefined;
}

const build = (p: P, table: string) => {
  let q = db
    .selectFrom(`${table} as e` as 'event as e')
    .select(['e.stream_version'])
    .select(sql<number>`case when e.stream_version > ${p.from ?? 0} then 1 end`.as('x'))
    .where('e.stream_id', '=', p.stream);
  if (p.from !== undefined) q = q.where('e.stream_version', '>=', p.from);
  if (p.type !== undefined) q = q.where('e.type', '=', p.type).limit(10);
  return q;
};

describe('StatementCache', () => {
  it('gives the SQL and parameters a fresh compile gives, whatever the values and their shape', () => {
    const cache = new StatementCache(build);
    fc.assert(
      fc.property(
        fc.constantFrom('event', 'event_v2'),
        fc.string(),
        fc.option(fc.integer(), { nil: undefined }),
        fc.option(fc.string(), { nil: undefined }),
        (table, stream, from, type) => {
          const params = { stream, from, type };
          const fresh = build(params, table).compile();
          const cached = cache.compile(table, params);
          expect(cached.sql).toBe(fresh.sql);
          expect(cached.parameters).toEqual(fresh.parameters);
        },
      ),
    );
  });

  it('refuses a statement that does not pass a value as a parameter unchanged', () => {
    const cache = new StatementCache((p: { [key: string]: unknown; q: string }) =>
      db.selectFrom('event').select('type').where('type', 'like', `%${p.q}%`),
    );
    expect(() => cache.compile('', { q: 'x' })).toThrow(/not passed as parameters \(q\)/);
  });

  it('refuses a builder that changes a value but keeps it a parameter (its case)', () => {
    const cache = new StatementCache((p: { [key: string]: unknown; type: string }) =>
      db.selectFrom('event').select('type').where('type', '=', p.type.toLowerCase()),
    );
    expect(() => cache.compile('', { type: 'Planned' })).toThrow(/not compilable once/);
  });

  it('refuses values that do not bind as one parameter (an array for `in`)', () => {
    const cache = new StatementCache((p: { [key: string]: unknown; types: string[] }) =>
      db.selectFrom('event').select('type').where('type', 'in', p.types),
    );
    expect(() => cache.compile('', { types: ['a', 'b'] })).toThrow(/types: only strings, numbers/);
  });
});
