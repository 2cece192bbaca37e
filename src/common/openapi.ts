import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiKeysService } from '../auth/api-keys.service.js';
import { bearerToken } from '../auth/auth.guard.js';
import { READ_ROLES } from '../auth/principal.js';

const DOCS_PATH = '/api/docs';
const SPEC_PATH = '/api/openapi.json';
const YAML_PATH = '/api/openapi.yaml';

/** The key of `Authorization: Bearer <key>`, or the password of `Basic` (so a browser can ask for it). */
function keyOf(header: string | undefined): string | undefined {
  const bearer = bearerToken(header);
  if (bearer) return bearer;
  const basic = /^Basic ([A-Za-z0-9+/=]{1,1024})$/i.exec(header?.trim() ?? '');
  if (!basic?.[1]) return undefined;
  const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon >= 0 ? decoded.slice(colon + 1) || undefined : undefined;
}

/**
 * OpenAPI at /api/openapi.json and Swagger UI at /api/docs, generated from the same zod schemas
 * that validate requests. Like every route but the health checks, both need a key: a bearer key,
 * or, so that a browser can open the UI, HTTP Basic with any user name and the key as password.
 * Like every read route, they are for READ_ROLES (and admin): an ingest key gets a 403.
 */
export function setupOpenApi(app: NestFastifyApplication, version: string): void {
  // Built on the first request for it, not at start: scanning every controller is work the
  // service need not do before it is ready (cold start), and most processes never serve the docs.
  const document = () =>
    SwaggerModule.createDocument(
      app,
      new DocumentBuilder()
        .setTitle('upgrade-ledger')
        .setDescription(
          'System of record for stack upgrades: rollouts as append-only events in a hash-chained, signed ledger.',
        )
        .setVersion(version)
        .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'an API key: ul_…' })
        .build(),
    );
  const keys = app.get(ApiKeysService);
  const fastify = app.getHttpAdapter().getInstance();
  const isDocsPath = (path: string) =>
    path === SPEC_PATH || path === YAML_PATH || path === DOCS_PATH || path.startsWith(`${DOCS_PATH}/`);
  /** True when the caller may read the docs; otherwise answers 401 or 403 and gives false. */
  const admit = async (request: FastifyRequest, reply: FastifyReply, path: string): Promise<boolean> => {
    const key = keyOf(request.headers.authorization);
    const principal = key ? await keys.authenticate(key) : undefined;
    // The same rule as every route without @Roles: the readers, and admin (not the ingest role).
    if (principal && (principal.role === 'admin' || READ_ROLES.includes(principal.role))) return true;
    if (principal) {
      await reply
        .status(403)
        .header('Content-Type', 'application/problem+json; charset=utf-8')
        .send({
          type: 'https://upgrade-ledger.dev/problems/forbidden',
          title: 'Forbidden',
          status: 403,
          detail: `the API docs need the role ${READ_ROLES.join(' or ')}; the key has the role ${principal.role}`,
          instance: path,
        });
      return false;
    }
    await reply
      .status(401)
      .header('WWW-Authenticate', 'Basic realm="upgrade-ledger API docs: the password is your API key"')
      .header('Content-Type', 'application/problem+json; charset=utf-8')
      .send({
        type: 'https://upgrade-ledger.dev/problems/unauthorized',
        title: 'Unauthorized',
        status: 401,
        detail: 'an API key is required: Authorization: Bearer <key> (or Basic, with the key as password)',
        instance: path,
      });
    return false;
  };
  // A plain hook, not an async one: every request passes here, and all but the docs' leave at
  // once, without a promise and a turn of the microtask queue each.
  fastify.addHook('onRequest', (request, reply, done) => {
    // The route Fastify matched, not the URL as sent: the router decodes the path first, so
    // `/api/%64ocs` is the docs too, and a test of the raw URL let it through without a key.
    const route = request.routeOptions.url;
    if (route === undefined || !isDocsPath(route)) {
      done();
      return;
    }
    const path = request.url.split('?')[0] ?? '';
    admit(request, reply, path).then((admitted) => {
      // Answered already when not admitted: Fastify's request ends there, without done().
      if (admitted) done();
    }, done);
  });
  SwaggerModule.setup(DOCS_PATH.slice(1), app, document, {
    jsonDocumentUrl: SPEC_PATH.slice(1),
    yamlDocumentUrl: YAML_PATH.slice(1),
    swaggerOptions: { persistAuthorization: false },
  });
}
