import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FetchPolicy, fetchSurface } from '../../../src/snapshots/surface-fetcher.js';

// The fetcher against a real local server whose answers each test picks: what is retried, what
// is followed, what is refused. (The hostile targets of the acceptance run in the e2e suite.)

const POLICY: FetchPolicy = { timeoutMs: 1000, retries: 2, backoffMs: 5, maxBytes: 1024 };
let server: Server;
let base: string;
const hits = new Map<string, number>();

beforeAll(async () => {
  server = createServer((req, res) => {
    const path = req.url ?? '/';
    const n = (hits.get(path) ?? 0) + 1;
    hits.set(path, n);
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    };
    switch (path) {
      case '/flaky':
        return n < 3 ? json(503, { error: 'busy' }) : json(200, { ready: true, reasons: ['third time'] });
      case '/moved':
        res.writeHead(301, { location: '/ok' });
        return res.end();
      case '/ok':
        return json(200, { ready: false, reasons: ['not yet'] });
      case '/forbidden':
        return json(403, { error: 'no' });
      case '/declared-huge':
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '999999' });
        return res.end();
      case '/deep':
        return json(200, `{"ready":true,"x":${'['.repeat(40)}${']'.repeat(40)}}`);
      case '/nul':
        return json(200, '{"ready":true,"reasons":["a\\u0000b"]}');
      case '/infinite':
        return json(200, '{"ready":true,"n":1e400}');
      default:
        return json(404, {});
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('fetchSurface', () => {
  it('retries a 5xx with backoff and succeeds, counting the attempts', async () => {
    const r = await fetchSurface(`${base}/flaky`, POLICY);
    expect(r).toMatchObject({
      status: 'ok',
      attempts: 3,
      httpStatus: 200,
      ready: true,
      reasons: ['third time'],
    });
  });

  it('follows a redirect on the same host', async () => {
    const r = await fetchSurface(`${base}/moved`, POLICY);
    expect(r).toMatchObject({
      status: 'ok',
      ready: false,
      reasons: ['not yet'],
      digest: expect.stringMatching(/^sha256:/),
    });
  });

  it('does not retry a 4xx', async () => {
    const r = await fetchSurface(`${base}/forbidden`, POLICY);
    expect(r).toMatchObject({
      status: 'failed',
      attempts: 1,
      httpStatus: 403,
      error: { code: 'http-status', message: 'HTTP 403' },
    });
  });

  it('refuses a declared length over the cap before reading the body', async () => {
    const r = await fetchSurface(`${base}/declared-huge`, POLICY);
    expect(r).toMatchObject({ status: 'failed', attempts: 1, bytes: 0, error: { code: 'too-large' } });
  });

  it.each([
    ['/deep', /nesting deeper than 32 levels/],
    ['/nul', /NUL character/],
    ['/infinite', /finite number/],
  ])('refuses JSON that cannot be stored as it is (%s)', async (path, message) => {
    const r = await fetchSurface(`${base}${path}`, POLICY);
    expect(r).toMatchObject({
      status: 'failed',
      error: { code: 'invalid-body', message: expect.stringMatching(message) },
    });
  });

  it('stops at once when the service shuts down', async () => {
    const cancel = new AbortController();
    cancel.abort();
    const r = await fetchSurface(`${base}/ok`, POLICY, cancel.signal);
    expect(r).toMatchObject({ status: 'failed', attempts: 0, error: { code: 'cancelled' } });
  });
});
