import { randomUUID } from 'node:crypto';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { LogController } from 'fastify';
import type { Logger } from 'pino';
import { AppModule, type AppOptions } from './app.module.js';
import { configureHttpSecurity } from './auth/http-security.js';
import { createPinoLogger, PinoNestLogger } from './common/logger.js';
import { setupOpenApi } from './common/openapi.js';
import { ProblemFilter } from './common/problem.filter.js';
import { isBlank, parseJsonStrictly } from './common/strict-json.js';
import { SchemaValidationPipe } from './common/validation.pipe.js';
import { MetricsService } from './metrics/metrics.service.js';
import { VERSION } from './version.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export interface CreateAppOptions extends AppOptions {
  logger?: Logger;
}

/**
 * Builds the whole application (HTTP adapter, filters, validation, metrics hooks) without
 * listening: main.ts listens, tests drive it with supertest.
 */
export async function createApp(options: CreateAppOptions): Promise<NestFastifyApplication> {
  const { config } = options;
  const logger = options.logger ?? createPinoLogger(config.logLevel);
  const adapter = new FastifyAdapter({
    loggerInstance: logger,
    bodyLimit: config.bodyLimitBytes,
    // A request must arrive whole in this time (408 otherwise), or a client dribbling its body
    // (slowloris) holds a connection for ever. Node only looks for late requests every
    // connectionsCheckingInterval (30 s by default), so it looks often enough to honour it; and
    // when headersTimeout (60 s by default) exceeds requestTimeout, Node swaps the two, so a slow
    // body would get 60 s: the headers' limit is never longer than the whole request's.
    requestTimeout: config.requestTimeoutMs,
    http: {
      connectionsCheckingInterval: Math.min(1000, config.requestTimeoutMs),
      headersTimeout: Math.min(60_000, config.requestTimeoutMs),
    },
    // A caller's request id is kept when it is sane, so logs join up across services.
    genReqId: (req: { headers: Record<string, string | string[] | undefined> }) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    logController: new LogController({ requestIdLogLabel: 'requestId' }),
    routerOptions: { maxParamLength: 200 },
    return503OnClosing: true,
  });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(options), adapter, {
    logger: new PinoNestLogger(logger),
    abortOnError: false,
    // Fastify's own JSON parser only (with its prototype-poisoning guard and body limit): no form
    // bodies, so any other content type is a 415.
    bodyParser: false,
  });
  app.useGlobalFilters(new ProblemFilter());
  app.useGlobalPipes(new SchemaValidationPipe());

  const metrics = app.get(MetricsService);
  const fastify = app.getHttpAdapter().getInstance();
  // JSON as Fastify parses it (prototype and constructor poisoning refused), except that an empty
  // body is no body: `curl -X POST -H 'Content-Type: application/json' …/start` must work; and
  // what JSON.parse would read one way silently is a 400 naming the field: a duplicate key (it
  // keeps the last), bytes that are not UTF-8 (decoding makes them U+FFFD). So: bytes, not text.
  const parseJson = fastify.getDefaultJsonParser('error', 'error');
  fastify.removeContentTypeParser('application/json');
  // Fastify also reads text/plain by default: a route without a body schema then ignored the
  // body and acted (DELETE /api-keys/:id with a text/plain body revoked the key). JSON only.
  fastify.removeContentTypeParser('text/plain');
  fastify.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    if (isBlank(body)) {
      done(null, undefined);
      return;
    }
    parseJsonStrictly(parseJson, request, body, done);
  });
  // Forms, for the console's sign-in and buttons only: the API speaks JSON and answers 415 to them.
  fastify.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: 16 * 1024 },
    (request, body, done) => {
      if (!request.url.startsWith('/console/')) {
        done(
          Object.assign(new Error('this route accepts application/json bodies only'), { statusCode: 415 }),
        );
        return;
      }
      // Own properties only: a field named __proto__ is data, never a prototype.
      done(null, Object.fromEntries(new URLSearchParams(String(body))));
    },
  );
  // Set on arrival too: an SSE stream never goes through onSend, but Nest sends it the reply's headers.
  // Callback hooks, not async ones: nothing here waits, and an async hook costs every request a
  // promise and a turn of the microtask queue.
  fastify.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id);
    done();
  });
  fastify.addHook('onSend', (request, reply, payload, done) => {
    void reply.header('x-request-id', request.id);
    done(null, payload);
  });
  fastify.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions?.url ?? 'unmatched';
    metrics.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    done();
  });

  await configureHttpSecurity(app, config);
  setupOpenApi(app, VERSION);
  await app.init();
  await fastify.ready();
  return app;
}
