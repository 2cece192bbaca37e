/**
 * Names of this test run's databases on the shared Postgres. Each run (one vitest process) owns
 * a template and copies named after its pid, so runs side by side never drop each other's.
 */
export const RUN_TAG = `p${process.env.UPGRADE_LEDGER_TEST_RUN ?? process.pid}`;
export const DB_PREFIX = 'upgrade_ledger_';
export const templateDb = (tag = RUN_TAG) => `${DB_PREFIX}tpl_${tag}`;
export const testDbPrefix = (tag = RUN_TAG) => `${DB_PREFIX}t_${tag}_`;

/** The pid a test database name belongs to, if it follows this scheme. */
export function ownerPid(datname: string): number | undefined {
  const m = /^upgrade_ledger_(?:tpl|t)_p(\d+)(?:_|$)/.exec(datname);
  return m ? Number(m[1]) : undefined;
}

/** The same server, but the maintenance database, for CREATE/DROP DATABASE. */
export function adminUrl(url: string): string {
  const u = new URL(url);
  u.pathname = '/postgres';
  return u.toString();
}
