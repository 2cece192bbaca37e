import { createHash, timingSafeEqual } from 'node:crypto';
import {
  type CanActivate,
  type ExecutionContext,
  Inject,
  Injectable,
  UnauthorizedException,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { IS_PUBLIC } from './public.decorator.js';

export interface Principal {
  id: string;
  name: string;
  role: 'admin';
}

export type AuthenticatedRequest = FastifyRequest & { principal?: Principal };

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Compares two secrets in constant time (over their digests, so lengths leak nothing either). */
export function secretsEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/**
 * Every route needs a bearer key unless it is marked @Public(). The environment's ADMIN_TOKEN
 * is an admin key.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  private readonly adminTokenDigest: Buffer | undefined;

  constructor(
    private readonly reflector: Reflector,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.adminTokenDigest = config.adminToken ? digest(config.adminToken) : undefined;
  }

  canActivate(context: ExecutionContext): boolean {
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, [context.getHandler(), context.getClass()])) {
      return true;
    }
    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    const token = bearerToken(request.headers.authorization);
    if (!token) throw new UnauthorizedException('an API key is required: Authorization: Bearer <key>');
    if (this.adminTokenDigest && timingSafeEqual(digest(token), this.adminTokenDigest)) {
      request.principal = { id: 'env:ADMIN_TOKEN', name: 'ADMIN_TOKEN', role: 'admin' };
      return true;
    }
    throw new UnauthorizedException('the API key is not valid');
  }
}

export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(header.trim());
  return match?.[1];
}
