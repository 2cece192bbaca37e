export const TEMPLATE_DB = 'upgrade_ledger_template';
export const testDbPrefix = 'upgrade_ledger_t_';

/** The same server, but the maintenance database, for CREATE/DROP DATABASE. */
export function adminUrl(url: string): string {
  const u = new URL(url);
  u.pathname = '/postgres';
  return u.toString();
}
