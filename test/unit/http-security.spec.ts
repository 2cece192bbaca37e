import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import helmet from 'helmet';
import { describe, expect, it } from 'vitest';
import { helmetHeaders } from '../../src/auth/http-security.js';

/** What helmet's middleware itself leaves on a real response, for comparison. */
function setByMiddleware(options?: Parameters<typeof helmet>[0]): Record<string, string> {
  const req = new IncomingMessage(new Socket());
  const res = new ServerResponse(req);
  res.setHeader('X-Powered-By', 'Express');
  helmet(options)(req, res, () => {});
  return Object.fromEntries(Object.entries(res.getHeaders()).map(([k, v]) => [k, String(v)]));
}

describe('helmetHeaders (the security headers, computed once)', () => {
  it('holds what helmet sets on a response, and nothing it removes', () => {
    const headers = helmetHeaders();
    expect(headers).toEqual(setByMiddleware());
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
    const nonce = (_req: unknown, res: unknown) => `'nonce-${String(res)}'`;
    for (const scriptSrc of [["'self'", nonce], new Set(["'self'", nonce])]) {
      expect(() => helmetHeaders({ contentSecurityPolicy: { directives: { scriptSrc } } })).toThrow(
        /computed per request/,
      );
    }
  });

  it('is frozen: a route cannot change what every other answer gets', () => {
    expect(Object.isFrozen(helmetHeaders())).toBe(true);
  });
});
