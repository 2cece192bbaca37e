import type { IncomingMessage, ServerResponse } from 'node:http';
import cookie from '@fastify/cookie';
import rateLimit from '@fastify/rate-limit';
import { HttpException, HttpStatus } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import helmet, { type HelmetOptions } from 'helmet';
import type { AppConfig } from '../config/config.js';
import { ApiKeysService } from './api-keys.service.js';
import { authenticateRequest } from './auth.guard.js';

/** Probes from orchestrators must never be throttled. */
const isHealthRoute = (url: string) => url === '/health' || url.startsWith('/health/');
/** Swagger UI, at /api/docs. */
const isDocsRoute = (url: string) => url === '/api/docs' || url.startsWith('/api/docs/');

/**
 * Changes to helmet's default CSP (which it keeps for every directive not named here), only on
 * the docs pages and only as far as Swagger UI needs. Its scripts are files of its own (Nest's
 * template has no inline script unless `customJsStr` is given), so script-src stays 'self'; its
 * inline <style> is already allowed by the default style-src.
 */
const DOCS_CSP_DIRECTIVES = {
  imgSrc: ["'self'", 'data:', 'https://validator.swagger.io'],
  // Over plain http (a local start), upgrading its own asset requests to https would break it.
  upgradeInsecureRequests: null,
};

/**
 * The HTTP hardening of the whole app, in one place: security headers (helmet), rate limiting
 * per key, and CORS only for configured origins. Call before `app.init()`, so that every route
 * Nest registers gets the hooks.
 *
 * Rate limiting counts per key: a request with a valid key counts against that key, whatever
 * address it comes from; a request without one (no key, or a bad one) counts against its client
 * IP. Counting unverified tokens separately would let anyone escape the limit by sending a new
 * made-up token each time. The key lookup is the guard's own (once per request, cached).
 * Counters are per process: with N replicas, a key gets up to N × RATE_LIMIT_MAX per window.
 */
export async function configureHttpSecurity(app: NestFastifyApplication, config: AppConfig): Promise<void> {
  const fastify = app.getHttpAdapter().getInstance();
  const keys = app.get(ApiKeysService);

  // Before the rate limiter's own onRoute hook, so that it sees this per-route setting.
  fastify.addHook('onRoute', (route) => {
    if (isHealthRoute(route.url)) route.config = { ...route.config, rateLimit: false };
  });

  // Parsed on arrival, before the rate limiter's key lookup (console pages sign in by cookie).
  await app.register(cookie);

  // Helmet's headers, read once from its middleware: with no per-request directive (a nonce),
  // they are the same on every answer. Handed to Fastify's reply rather than set on the raw
  // response: helmet's thirteen middleware calls and setHeader each were 2 % of the service's CPU
  // under appends, and any header set on the raw response made Node copy Fastify's own into its
  // header map on every answer.
  const headers = helmetHeaders();
  const docsHeaders = helmetHeaders({ contentSecurityPolicy: { directives: DOCS_CSP_DIRECTIVES } });
  fastify.addHook('onRequest', (request, reply, done) => {
    const url = request.routeOptions.url;
    reply.headers(url !== undefined && isDocsRoute(url) ? docsHeaders : headers);
    done();
  });

  await app.register(rateLimit, {
    global: true,
    max: config.rateLimit.max,
    timeWindow: config.rateLimit.windowMs,
    keyGenerator: async (request) => {
      const principal = await authenticateRequest(request, keys);
      return principal ? principal.id : `ip:${request.ip}`;
    },
    // Thrown into Nest's error handling, so the ProblemFilter answers with problem+json;
    // Retry-After is already on the reply.
    errorResponseBuilder: (_request, context) =>
      new HttpException(
        `rate limit exceeded: at most ${context.max} requests per ${Math.round(config.rateLimit.windowMs / 1000)} s ` +
          `for each API key (or client address without one); retry in ${context.after}`,
        HttpStatus.TOO_MANY_REQUESTS,
      ),
  });

  if (config.corsOrigins) app.enableCors({ origin: config.corsOrigins });
}

/**
 * The headers helmet's middleware sets, by running it once against a response that records them.
 * Refuses a CSP directive computed per request (a nonce), whose header would differ per answer;
 * throws too if the middleware does anything else with the response or does not finish at once.
 */
export function helmetHeaders(options?: Readonly<HelmetOptions>): Record<string, string> {
  const csp = options?.contentSecurityPolicy;
  for (const [name, value] of Object.entries((typeof csp === 'object' && csp.directives) || {})) {
    // A directive's value is a string, a function, any iterable of them (an array, a Set…), or
    // helmet's symbol that turns a default directive off.
    const parts: unknown[] =
      typeof value === 'object' && value !== null && Symbol.iterator in value ? [...value] : [value];
    if (parts.some((v) => typeof v === 'function')) {
      throw new Error(
        `the CSP directive ${name} is computed per request: helmet's headers cannot be computed ahead`,
      );
    }
  }
  const headers: Record<string, string> = {};
  const recorder = {
    setHeader(name: string, value: unknown) {
      headers[name.toLowerCase()] = String(value);
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()];
    },
  };
  let finished = false;
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (err?: unknown) => {
    if (err) throw err;
    finished = true;
  });
  if (!finished) throw new Error('helmet did not finish at once: its headers depend on the request');
  return Object.freeze(headers) as Record<string, string>;
}
