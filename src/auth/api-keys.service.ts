import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { NotFound } from '../common/errors.js';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import type { ApiKeyRow } from '../database/schema.js';
import { API_KEY_FORMAT, generateApiKey, hashApiKey, hashesEqual, secretsEqual } from './api-key.secret.js';
import { ApiKeysRepository } from './api-keys.repository.js';
import type { Principal, Role } from './principal.js';

/**
 * How long a successful key lookup is trusted without asking the database again. This is the
 * bound on how long a key revoked by *another* replica can still be used if that replica's
 * NOTIFY is lost; a revocation in this process, or one heard by NOTIFY, takes effect at once.
 * An expiry is checked on every request, cached or not.
 */
export const AUTH_CACHE_TTL_MS = 5_000;
/** The cache holds at most this many keys; the oldest entry goes first. */
const AUTH_CACHE_MAX = 10_000;

export const ADMIN_TOKEN_PRINCIPAL: Principal = { id: 'env:ADMIN_TOKEN', name: 'ADMIN_TOKEN', role: 'admin' };

export interface ApiKeyInfo {
  id: string;
  name: string;
  role: Role;
  /** The key's first characters, to recognise it; never enough to use it. */
  keyPrefix: string;
  status: 'active' | 'revoked' | 'expired';
  createdAt: string;
  createdBy: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

export interface CreatedApiKey {
  id: string;
  name: string;
  role: Role;
  /** The secret, shown this once. */
  key: string;
  createdAt: string;
  expiresAt?: string;
}

interface CachedKey {
  principal: Principal;
  expiresAt: number | null;
  cachedUntil: number;
}

const principalOf = (row: ApiKeyRow): Principal => ({ id: `key:${row.id}`, name: row.name, role: row.role });

function statusOf(row: ApiKeyRow, now: number): ApiKeyInfo['status'] {
  if (row.revoked_at) return 'revoked';
  if (row.expires_at && row.expires_at.getTime() <= now) return 'expired';
  return 'active';
}

/** Issues, lists and revokes API keys, and turns a presented key into the principal it stands for. */
@Injectable()
export class ApiKeysService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('ApiKeys');
  /** Successful lookups by key hash (never by the key itself). */
  private readonly cache = new Map<string, CachedKey>();
  private unlisten: (() => Promise<void>) | undefined;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly keys: ApiKeysRepository,
  ) {}

  async onModuleInit(): Promise<void> {
    // Revocations on other replicas empty this cache at once; the TTL is only the fallback.
    this.unlisten = await this.keys.onRevocation(() => this.cache.clear());
  }

  async onModuleDestroy(): Promise<void> {
    await this.unlisten?.();
  }

  /**
   * The principal a bearer token stands for, or undefined if it is not a valid key (unknown,
   * revoked or expired). The environment's ADMIN_TOKEN, when set, is an admin key.
   */
  async authenticate(token: string): Promise<Principal | undefined> {
    if (this.config.adminToken && secretsEqual(token, this.config.adminToken)) return ADMIN_TOKEN_PRINCIPAL;
    // Anything not shaped like a key cannot be one: no database round trip for junk.
    if (!API_KEY_FORMAT.test(token)) return undefined;
    const hash = hashApiKey(token);
    const now = Date.now();
    const cached = this.cache.get(hash);
    if (cached && cached.cachedUntil > now) {
      return cached.expiresAt === null || cached.expiresAt > now ? cached.principal : undefined;
    }
    this.cache.delete(hash);
    // The lookup by hash is not constant time, but what it could leak is the hash of a key,
    // from which nothing follows; the final comparison is constant time all the same.
    const row = await this.keys.findByHash(hash);
    if (!row || !hashesEqual(row.key_hash, hash) || statusOf(row, now) !== 'active') return undefined;
    const principal = principalOf(row);
    this.remember(hash, {
      principal,
      expiresAt: row.expires_at?.getTime() ?? null,
      cachedUntil: now + AUTH_CACHE_TTL_MS,
    });
    if (!row.last_used_at || now - row.last_used_at.getTime() > 60_000) {
      // Bookkeeping only: a failed stamp must not turn a valid key away.
      await this.keys.touch(row.id).catch((err: unknown) => {
        this.logger.warn({ err, keyId: row.id }, 'could not record the use of an API key');
      });
    }
    return principal;
  }

  async create(
    input: { name: string; role: Role; expiresAt?: Date | undefined },
    createdBy: Principal,
  ): Promise<CreatedApiKey> {
    const { key, hash, prefix } = generateApiKey();
    const row = await this.keys.insert({
      name: input.name,
      role: input.role,
      hash,
      prefix,
      createdBy: createdBy.id,
      expiresAt: input.expiresAt ?? null,
    });
    this.logger.log({ keyId: row.id, role: row.role, createdBy: createdBy.id }, 'API key created');
    return {
      id: row.id,
      name: row.name,
      role: row.role,
      key,
      createdAt: row.created_at.toISOString(),
      ...(row.expires_at ? { expiresAt: row.expires_at.toISOString() } : {}),
    };
  }

  async list(): Promise<ApiKeyInfo[]> {
    const now = Date.now();
    return (await this.keys.list()).map((row) => ({
      id: row.id,
      name: row.name,
      role: row.role,
      keyPrefix: row.key_prefix,
      status: statusOf(row, now),
      createdAt: row.created_at.toISOString(),
      createdBy: row.created_by,
      expiresAt: row.expires_at?.toISOString() ?? null,
      revokedAt: row.revoked_at?.toISOString() ?? null,
      lastUsedAt: row.last_used_at?.toISOString() ?? null,
    }));
  }

  /**
   * Revokes a key; it stops working in this process at once. Revoking a revoked key is a no-op
   * (DELETE is idempotent, so a retried call succeeds); an unknown id is NotFound.
   */
  async revoke(id: string, by: Principal): Promise<void> {
    const outcome = await this.keys.revoke(id);
    if (outcome === 'not-found') throw new NotFound('api key', id);
    this.forget(`key:${id}`);
    if (outcome === 'revoked') this.logger.log({ keyId: id, revokedBy: by.id }, 'API key revoked');
  }

  private remember(hash: string, entry: CachedKey): void {
    if (this.cache.size >= AUTH_CACHE_MAX) {
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(hash, entry);
  }

  private forget(principalId: string): void {
    for (const [hash, entry] of this.cache) {
      if (entry.principal.id === principalId) this.cache.delete(hash);
    }
  }
}
