/**
 * Postgres errors are recognised by SQLSTATE and constraint name, fields both `pg` and PGlite
 * set from the server's error message: never by parsing the message text.
 */
interface PgErrorFields {
  code?: unknown;
  constraint?: unknown;
}

export function sqlState(err: unknown): string | undefined {
  const code = (err as PgErrorFields | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  if (sqlState(err) !== '23505') return false;
  return constraint === undefined || (err as PgErrorFields).constraint === constraint;
}

/**
 * Connection-class failures: the database is down, restarting or out of connections (53300, as
 * when many replicas reconnect at once after a restart), so the request may be retried.
 */
export function isConnectionFailure(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  // Socket errors first: EPIPE has the shape of a SQLSTATE.
  if (typeof code === 'string' && SOCKET_ERRORS.has(code)) return true;
  const state = sqlState(err);
  if (state) return state.startsWith('08') || ['57P01', '57P02', '57P03', '53300'].includes(state);
  const message = err instanceof Error ? err.message : '';
  // node-postgres and pg-pool report these without a code (the last: no connection free or
  // reachable within connectionTimeoutMillis).
  return /Connection terminated|connection timeout|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(
    message,
  );
}

const SOCKET_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND']);
