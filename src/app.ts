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
  // body is no body: `curl -X POST -H 'Content-Type: application/json' …/start` must work.
  const parseJson = fastify.getDefaultJsonParser('error', 'error');
  fastify.removeContentTypeParser('application/json');
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    parseJson(request, text, done);
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
  fastify.addHook('onRequest', async (request, reply) => {
    void reply.header('x-request-id', request.id);
  });
  fastify.addHook('onSend', async (request, reply, payload) => {
    void reply.header('x-request-id', request.id);
    return payload;
  });
  fastify.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions?.url ?? 'unmatched';
    metrics.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });

  await configureHttpSecurity(app, config);
  setupOpenApi(app, VERSION);
  await app.init();
  await fastify.ready();
  return app;
}
