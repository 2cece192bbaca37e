import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet from 'helmet';
import { describe, expect, it } from 'vitest';
import { helmetHeaders } from '../../src/auth/http-security.js';

/** What helmet's middleware itself sets on a real-enough response, for comparison. */
function setByMiddleware(options?: Parameters<typeof helmet>[0]): Record<string, string> {
  const set = new Map<string, string>([['x-powered-by', 'Express']]);
  const res = {
    setHeader: (k: string, v: unknown) => set.set(k.toLowerCase(), String(v)),
    removeHeader: (k: string) => set.delete(k.toLowerCase()),
  };
  helmet(options)({} as IncomingMessage, res as unknown as ServerResponse, () => {});
  return Object.fromEntries(set);
}

describe('helmetHeaders (the security headers, computed once)', () => {
  it('holds what helmet sets on a response, and nothing it removes', () => {
    const headers = helmetHeaders();
    const { 'x-powered-by': _removed, ...expected } = setByMiddleware();
    expect(headers).toEqual(expected);
    expect(headers['content-security-policy']).toContain("default-src 'self'");
    expect(headers['strict-transport-security']).toMatch(/max-age=\d+/);
    expect(headers).not.toHaveProperty('x-powered-by');
  });

  it('follows the options given', () => {
    const headers = helmetHeaders({
      contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } },
    });
    expect(headers['content-security-policy']).not.toContain('upgrade-insecure-requests');
    expect(helmetHeaders()['content-security-policy']).toContain('upgrade-insecure-requests');
  });

  it('refuses a policy that is computed per request, which cannot be computed ahead', () => {
    expect(() =>
      helmetHeaders({
        contentSecurityPolicy: {
          directives: { scriptSrc: ["'self'", (_req, res) => `'nonce-${String(res)}'`] },
        },
      }),
    ).toThrow();
  });

  it('is frozen: a route cannot change what every other answer gets', () => {
    expect(Object.isFrozen(helmetHeaders())).toBe(true);
  });
});
