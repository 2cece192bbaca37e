import { Inject, Injectable } from '@nestjs/common';
import { type Insertable, type Kysely, sql } from 'kysely';
import { ADVISORY_LOCKS } from '../common/advisory-locks.js';
import type { DatabaseHandle } from '../database/database.js';
import { DATABASE } from '../database/database.module.js';
import type { ApiKeyRow, ApiKeyTable, Database } from '../database/schema.js';
import type { Role } from './principal.js';

export interface NewApiKey {
  name: string;
  role: Role;
  hash: string;
  prefix: string;
  createdBy: string;
  expiresAt: Date | null;
}

/** NOTIFY channel on which a revocation tells every replica to drop its cached keys. */
const REVOCATIONS_CHANNEL = 'api_key_revoked';

/** Advisory lock key of the first-start admin key ("uledger" + 2): one replica creates it. */
export const BOOTSTRAP_LOCK_KEY = ADVISORY_LOCKS.bootstrapAdminKey;

const toRow = (key: NewApiKey): Insertable<ApiKeyTable> => ({
  name: key.name,
  role: key.role,
  key_hash: key.hash,
  key_prefix: key.prefix,
  created_by: key.createdBy,
  expires_at: key.expiresAt,
});

/** All SQL of API keys. */
@Injectable()
export class ApiKeysRepository {
  private readonly db: Kysely<Database>;

  constructor(@Inject(DATABASE) private readonly handle: DatabaseHandle) {
    this.db = handle.db;
  }

  insert(key: NewApiKey): Promise<ApiKeyRow> {
    return this.db.insertInto('api_key').values(toRow(key)).returningAll().executeTakeFirstOrThrow();
  }

  /**
   * Inserts the key only if no key was ever stored, under a transaction-scoped advisory lock so
   * that replicas starting together on an empty database create one key between them (the
   * second waits for the lock, then sees the first's row).
   */
  async insertIfNoKeys(key: NewApiKey): Promise<ApiKeyRow | undefined> {
    return this.db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(${BOOTSTRAP_LOCK_KEY.toString()}::bigint)`.execute(trx);
      if (await trx.selectFrom('api_key').select('id').limit(1).executeTakeFirst()) return undefined;
      return trx.insertInto('api_key').values(toRow(key)).returningAll().executeTakeFirstOrThrow();
    });
  }

  async hasAnyKey(): Promise<boolean> {
    const row = await this.db.selectFrom('api_key').select('id').limit(1).executeTakeFirst();
    return row !== undefined;
  }

  findByHash(hash: string): Promise<ApiKeyRow | undefined> {
    return this.db.selectFrom('api_key').selectAll().where('key_hash', '=', hash).executeTakeFirst();
  }

  list(): Promise<ApiKeyRow[]> {
    return this.db.selectFrom('api_key').selectAll().orderBy('created_at').orderBy('id').execute();
  }

  /**
   * Stamps revoked_at (once: a second revocation keeps the first time) and notifies the other
   * replicas in the same transaction, so they hear of it only if it committed.
   */
  async revoke(id: string): Promise<'revoked' | 'already-revoked' | 'not-found'> {
    return this.db.transaction().execute(async (trx) => {
      const updated = await trx
        .updateTable('api_key')
        .set({ revoked_at: sql<Date>`now()` })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .returning('id')
        .executeTakeFirst();
      if (updated) {
        await sql`select pg_notify(${REVOCATIONS_CHANNEL}, ${id})`.execute(trx);
        return 'revoked';
      }
      const exists = await trx.selectFrom('api_key').select('id').where('id', '=', id).executeTakeFirst();
      return exists ? 'already-revoked' : 'not-found';
    });
  }

  /** Records a use, at most once a minute per key, so that reads do not turn into a write each. */
  async touch(id: string): Promise<void> {
    await this.db
      .updateTable('api_key')
      .set({ last_used_at: sql<Date>`now()` })
      .where('id', '=', id)
      .where((eb) =>
        eb.or([
          eb('last_used_at', 'is', null),
          eb('last_used_at', '<', sql<Date>`now() - interval '1 minute'`),
        ]),
      )
      .execute();
  }

  /** Calls `onRevoked` when any replica revokes a key (or the subscription is lost). */
  onRevocation(onRevoked: () => void): Promise<() => Promise<void>> {
    return this.handle.listen(REVOCATIONS_CHANNEL, onRevoked);
  }
}
