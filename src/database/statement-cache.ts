import { type Compilable, CompiledQuery } from 'kysely';

/**
 * Placeholder values: a NUL (which no text a statement is given can hold in Postgres), a capital
 * letter (so that a builder changing the value's case is caught too), the value's name.
 */
const MARK = '\u0000P';

interface Shape {
  sql: string;
  parameters: readonly unknown[];
  /** For each parameter, the value it takes (by key), or undefined for a constant of the shape. */
  slots: readonly (string | undefined)[];
}

/**
 * A read built with Kysely, compiled once per shape instead of once per call: building and
 * compiling the query was a tenth of a read route's CPU (docs/benchmarks.md). `build` must choose
 * its SQL only from `shape` and from which values are defined (never from the values themselves),
 * and pass each value as a parameter unchanged: it is first called with placeholders, and each
 * later call of the same shape puts its values where the placeholders ended up.
 *
 * @example
 * const byStream = new StatementCache((p: { streamId: string }) =>
 *   db.selectFrom('event').selectAll().where('stream_id', '=', p.streamId));
 * await db.executeQuery(byStream.compile('', { streamId: 'rollout-42' }));
 */
export class StatementCache<P extends Record<string, unknown>, R = unknown> {
  private readonly shapes = new Map<string, Shape>();

  constructor(
    private readonly build: (params: P, shape: string) => Compilable<R>,
    private readonly maxShapes = 256,
  ) {}

  /** The statement for these values; `shape` names what else its SQL depends on (a table name…). */
  compile(shape: string, params: P): CompiledQuery<R> {
    const keys = Object.keys(params).filter((k) => params[k] !== undefined);
    for (const k of keys) {
      const v = params[k];
      // An array or object may compile to something else than one parameter (`in (…)`, a JSON
      // value, an expression): only what binds as one value as it is.
      if (typeof v === 'object' && v !== null && !(v instanceof Date))
        throw new TypeError(
          `statement value ${k}: only strings, numbers, booleans and dates bind as one parameter`,
        );
    }
    const key = `${shape}|${keys.join(',')}`;
    let compiled = this.shapes.get(key);
    if (!compiled) {
      compiled = this.compileShape(shape, keys, params);
      if (this.shapes.size >= this.maxShapes) this.shapes.clear();
      this.shapes.set(key, compiled);
    }
    const { sql, parameters, slots } = compiled;
    return CompiledQuery.raw(
      sql,
      parameters.map((p, i) => {
        const slot = slots[i];
        return slot === undefined ? p : params[slot];
      }),
    ) as CompiledQuery<R>;
  }

  private compileShape(shape: string, keys: string[], params: P): Shape {
    const placeholders: Record<string, unknown> = { ...params };
    for (const k of keys) placeholders[k] = `${MARK}${k}`;
    const compiled = this.build(placeholders as P, shape).compile();
    const slots = compiled.parameters.map((p) =>
      typeof p === 'string' && p.startsWith(MARK) ? p.slice(MARK.length) : undefined,
    );
    // A placeholder the builder altered (its case, a suffix) is bound nowhere: refuse the shape.
    const altered = compiled.parameters.some(
      (p, i) => typeof p === 'string' && p.startsWith('\u0000') && p !== `${MARK}${slots[i]}`,
    );
    // A value the builder changed or left out would be bound wrongly: refuse the shape instead.
    const missing = keys.filter((k) => !slots.includes(k));
    const foreign = slots.filter((s) => s !== undefined && !keys.includes(s));
    if (missing.length > 0 || foreign.length > 0 || altered || compiled.sql.includes('\u0000')) {
      throw new Error(
        `statement not compilable once: values not passed as parameters (${missing.join(', ')})`,
      );
    }
    return { sql: compiled.sql, parameters: compiled.parameters, slots };
  }
}
