import type { CookieSerializeOptions } from '@fastify/cookie';
import type { FastifyRequest } from 'fastify';
import type { Role } from '../auth/principal.js';

/** The console's session cookie: it holds the API key the auditor signed in with. */
export const CONSOLE_COOKIE = 'ul_console';

/** Who may use the console: auditors and admins (engineers and pipelines use the API). */
export const CONSOLE_ROLES: readonly Role[] = ['auditor', 'admin'];

const isConsolePath = (url: string) =>
  url === '/console' || url.startsWith('/console/') || url.startsWith('/console?');

/**
 * The key of a console session, for console pages only: on the API a cookie never counts, so a
 * page on another site can never make a signed-in browser write through the API.
 */
export function consoleSessionKey(request: FastifyRequest): string | undefined {
  if (!isConsolePath(request.url)) return undefined;
  const value = (request as FastifyRequest & { cookies?: Record<string, string | undefined> }).cookies?.[
    CONSOLE_COOKIE
  ];
  return value && /^[\x21-\x7e]{1,512}$/.test(value) ? value : undefined;
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?$/i;

/**
 * A session cookie (no expiry: it ends with the browser session), HttpOnly so no script can
 * read it, SameSite=Strict so no other site can send it, scoped to /console. Secure everywhere
 * but on a loopback address over plain HTTP (a local start), so that a key never crosses a
 * network in clear text.
 */
export function sessionCookie(request: FastifyRequest): CookieSerializeOptions {
  const local = request.protocol === 'http' && LOOPBACK.test(request.host);
  return { path: '/console', httpOnly: true, sameSite: 'strict', secure: !local };
}

/** Only a path of this console is a place to go back to after signing in. */
export function safeNext(next: unknown): string {
  return typeof next === 'string' && /^\/console(\/[\w\-/.?=&%]*)?$/.test(next) && !next.includes('//')
    ? next
    : '/console/rollouts';
}
