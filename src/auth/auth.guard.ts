import {
  type CanActivate,
  type ExecutionContext,
  ForbiddenException,
  Injectable,
  UnauthorizedException,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { consoleSessionKey } from '../console/session.js';
import { ApiKeysService } from './api-keys.service.js';
import { type AuthenticatedRequest, type Principal, READ_ROLES, ROLES_KEY, type Role } from './principal.js';
import { IS_PUBLIC } from './public.decorator.js';

/** The bearer token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(header.trim());
  return match?.[1];
}

const resolved = new WeakMap<FastifyRequest, Promise<Principal | undefined>>();

/**
 * The principal of a request's bearer key (or, on console pages only, of its session cookie),
 * or undefined (no key, or not a valid one). Looked up
 * once per request: the rate limiter (an onRequest hook) and the guard share the answer.
 */
export function authenticateRequest(
  request: FastifyRequest,
  keys: ApiKeysService,
): Promise<Principal | undefined> {
  let principal = resolved.get(request);
  if (!principal) {
    const token = bearerToken(request.headers.authorization) ?? consoleSessionKey(request);
    principal = token ? keys.authenticate(token) : Promise.resolve(undefined);
    resolved.set(request, principal);
  }
  return principal;
}

/**
 * Every route needs a valid bearer key unless it is marked @Public(): a missing or invalid key
 * is 401, a key without a role the route allows is 403. Routes without @Roles() are open to
 * READ_ROLES; admin passes every role check.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  /**
   * Each route's access rule, by controller and handler (a handler inherited by two controllers
   * has the class's decorators of each), read from the decorators once: they never change.
   */
  private readonly rules = new WeakMap<
    object,
    WeakMap<object, { open: boolean; allowed: readonly Role[] }>
  >();

  constructor(
    private readonly reflector: Reflector,
    private readonly keys: ApiKeysService,
  ) {}

  private ruleOf(context: ExecutionContext): { open: boolean; allowed: readonly Role[] } {
    const handler = context.getHandler();
    const controller = context.getClass();
    let byHandler = this.rules.get(controller);
    if (!byHandler) {
      byHandler = new WeakMap();
      this.rules.set(controller, byHandler);
    }
    let rule = byHandler.get(handler);
    if (!rule) {
      const targets = [handler, controller];
      rule = {
        open: this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets) === true,
        allowed: this.reflector.getAllAndOverride<Role[] | undefined>(ROLES_KEY, targets) ?? READ_ROLES,
      };
      byHandler.set(handler, rule);
    }
    return rule;
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const { open, allowed } = this.ruleOf(context);
    if (open) return true;

    const http = context.switchToHttp();
    const request = http.getRequest<AuthenticatedRequest>();
    const hasToken = bearerToken(request.headers.authorization) !== undefined;
    const principal = await authenticateRequest(request, this.keys);
    if (!principal) {
      // RFC 6750: a 401 names the scheme it wants.
      void http.getResponse<FastifyReply>().header('WWW-Authenticate', 'Bearer realm="upgrade-ledger"');
      throw new UnauthorizedException(
        hasToken
          ? 'the API key is not valid: it is unknown, revoked or expired'
          : 'an API key is required: Authorization: Bearer <key>',
      );
    }
    request.principal = principal;

    if (principal.role === 'admin' || allowed.includes(principal.role)) return true;
    throw new ForbiddenException(
      `this route needs the role ${[...allowed].join(' or ')}; the key has the role ${principal.role}`,
    );
  }
}
