import { sql } from 'kysely';

/**
 * A timestamptz column as the ISO 8601 text `Date.prototype.toISOString` gives (UTC,
 * milliseconds, truncated as node-postgres truncates them), rendered by Postgres whatever the
 * session's time zone: parsing each value into a Date and formatting it again cost a sixth of the
 * rollout list's CPU (docs/benchmarks.md).
 *
 * @example
 * db.selectFrom('event as e').select(isoText('e.recorded_at').as('recorded_at_iso'))
 * // → '2026-11-26T18:40:29.123Z'
 */
export function isoText<T extends string | null = string>(column: string) {
  return sql<T>`to_char(${sql.ref(column)} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
}
