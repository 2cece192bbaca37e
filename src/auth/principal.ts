import { createParamDecorator, type ExecutionContext, SetMetadata } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';

export const ROLES = ['admin', 'engineer', 'auditor', 'ingest'] as const;
export type Role = (typeof ROLES)[number];

/** Who is calling: an API key (or the environment's ADMIN_TOKEN), never the secret itself. */
export interface Principal {
  /** `key:<uuid>` for stored keys, `env:ADMIN_TOKEN` for the environment's token. */
  id: string;
  name: string;
  role: Role;
}

export type AuthenticatedRequest = FastifyRequest & { principal?: Principal };

export const ROLES_KEY = 'upgrade-ledger:roles';

/** Roles that may read (every route without @Roles): everyone but the write-only ingest role. */
export const READ_ROLES: readonly Role[] = ['admin', 'engineer', 'auditor'];

/**
 * Restricts a route (or a controller) to these roles. Without it, a route is open to READ_ROLES.
 *
 * @example
 * @Roles('engineer', 'admin')
 * @Post() create() {}
 */
export const Roles = (...roles: Role[]) => SetMetadata(ROLES_KEY, roles);

/** The authenticated caller of this request (set by the AuthGuard). */
export const CurrentPrincipal = createParamDecorator((_: unknown, ctx: ExecutionContext): Principal => {
  const principal = ctx.switchToHttp().getRequest<AuthenticatedRequest>().principal;
  if (!principal) throw new Error('CurrentPrincipal used on a route without authentication');
  return principal;
});
