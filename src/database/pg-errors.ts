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

/** Connection-class failures: the database is down or restarting, so the request may be retried. */
export function isConnectionFailure(err: unknown): boolean {
  const state = sqlState(err);
  if (state) return state.startsWith('08') || state === '57P01' || state === '57P02' || state === '57P03';
  const code = (err as { code?: unknown } | null)?.code;
  if (
    typeof code === 'string' &&
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND'].includes(code)
  ) {
    return true;
  }
  const message = err instanceof Error ? err.message : '';
  // node-postgres reports these without a code.
  return /Connection terminated|connection timeout|Client has encountered a connection error/i.test(message);
}
