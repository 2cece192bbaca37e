import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY_FORMAT, generateApiKey } from '../../src/auth/api-key.secret.js';
import { ApiKeysRepository, BOOTSTRAP_LOCK_KEY } from '../../src/auth/api-keys.repository.js';
import { BOOTSTRAP_KEY_NAME } from '../../src/auth/bootstrap-admin-key.js';
import { ROLES, type Role } from '../../src/auth/principal.js';
import { ADMIN_TOKEN, AUTH, startTestApp, type TestApp } from '../support/app.js';
import { bearer, type CreatedKey, capturingStderr, createKey, startAppOn } from '../support/auth.js';
import { createTestDatabase, onPostgres } from '../support/database.js';

const READ_ROUTE = '/api/v1/ledger';
const ADMIN_ROUTE = '/api/v1/api-keys';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const madeUpKey = () => `ul_${randomBytes(32).toString('base64url')}`;

interface KeyInfo {
  id: string;
  name: string;
  role: Role;
  keyPrefix: string;
  status: 'active' | 'revoked' | 'expired';
  createdAt: string;
  createdBy: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

describe('API keys', () => {
  let t: TestApp;
  let printedAtStart: string;
  /** Every key this file was given, to prove none is ever stored or listed. */
  const issued: CreatedKey[] = [];
  const issue = async (body: Record<string, unknown>, as?: Record<string, string>) => {
    const key = await createKey(t.server, body, as);
    issued.push(key);
    return key;
  };
  const listKeys = async (): Promise<KeyInfo[]> =>
    (await request(t.server).get(ADMIN_ROUTE).set(AUTH).expect(200)).body.keys;

  beforeAll(async () => {
    ({ result: t, printed: printedAtStart } = await capturingStderr(() => startTestApp()));
  });
  afterAll(() => t.close());

  it('with ADMIN_TOKEN set, creates no bootstrap key and prints none', async () => {
    expect(printedAtStart).not.toContain('created the first admin key');
    const bootstrap = await t.handle.db
      .selectFrom('api_key')
      .select('id')
      .where('created_by', '=', 'bootstrap')
      .execute();
    expect(bootstrap).toEqual([]);
  });

  it('creates a key of each role, shown once, and each does what its role allows and no more', async () => {
    const keys = {} as Record<Role, CreatedKey>;
    for (const role of ROLES) {
      const created = await issue({ role, name: `${role}-key` });
      expect(created).toEqual({
        id: expect.any(String),
        name: `${role}-key`,
        role,
        key: expect.stringMatching(API_KEY_FORMAT),
        createdAt: expect.any(String),
      });
      keys[role] = created;
    }
    expect(new Set(ROLES.map((r) => keys[r].key)).size).toBe(ROLES.length);

    // Reading: everyone but the write-only ingest role.
    for (const role of ['admin', 'engineer', 'auditor'] as const) {
      await request(t.server).get(READ_ROUTE).set(bearer(keys[role].key)).expect(200);
    }
    const ingestRead = await request(t.server).get(READ_ROUTE).set(bearer(keys.ingest.key)).expect(403);
    expect(ingestRead.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(ingestRead.body.detail).toBe(
      'this route needs the role admin or engineer or auditor; the key has the role ingest',
    );

    // Managing keys: admin only.
    const byAdmin = await issue({ role: 'auditor', name: 'made-by-admin-key' }, bearer(keys.admin.key));
    for (const role of ['engineer', 'auditor', 'ingest'] as const) {
      const denied = await request(t.server)
        .post(ADMIN_ROUTE)
        .set(bearer(keys[role].key))
        .send({ role: 'admin', name: 'escalate' })
        .expect(403);
      expect(denied.body).toMatchObject({
        status: 403,
        detail: expect.stringContaining('needs the role admin'),
      });
      await request(t.server).get(ADMIN_ROUTE).set(bearer(keys[role].key)).expect(403);
      await request(t.server).delete(`${ADMIN_ROUTE}/${byAdmin.id}`).set(bearer(keys[role].key)).expect(403);
    }

    const listed = await listKeys();
    expect(listed.find((k) => k.id === byAdmin.id)?.createdBy).toBe(`key:${keys.admin.id}`);
    expect(listed.find((k) => k.id === keys.engineer.id)?.createdBy).toBe('env:ADMIN_TOKEN');
  });

  it('refuses a missing, malformed, unknown or wrong key with 401 problem+json', async () => {
    const missing = await request(t.server).get(READ_ROUTE).expect(401);
    expect(missing.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(missing.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(missing.body).toMatchObject({
      status: 401,
      detail: expect.stringContaining('API key is required'),
    });

    for (const header of [
      'Basic dXNlcjpwYXNz',
      'Bearer not-a-key',
      `Bearer ${madeUpKey()}`,
      `Bearer ${ADMIN_TOKEN}x`,
      `Bearer ${ADMIN_TOKEN.slice(0, -1)}`,
    ]) {
      const res = await request(t.server).get(READ_ROUTE).set('Authorization', header).expect(401);
      expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
      expect(res.body.status).toBe(401);
    }
    const wrong = await request(t.server).get(READ_ROUTE).set(bearer(madeUpKey())).expect(401);
    expect(wrong.body.detail).toBe('the API key is not valid: it is unknown, revoked or expired');
  });

  it('refuses a revoked key at once, even one just used; revoking again is a 204 no-op', async () => {
    const key = await issue({ role: 'engineer', name: 'to-revoke' });
    await request(t.server).get(READ_ROUTE).set(bearer(key.key)).expect(200);

    await request(t.server).delete(`${ADMIN_ROUTE}/${key.id}`).set(AUTH).expect(204);
    const refused = await request(t.server).get(READ_ROUTE).set(bearer(key.key)).expect(401);
    expect(refused.body.detail).toContain('revoked');

    const first = (await listKeys()).find((k) => k.id === key.id);
    expect(first).toMatchObject({ status: 'revoked', revokedAt: expect.any(String) });
    await request(t.server).delete(`${ADMIN_ROUTE}/${key.id}`).set(AUTH).expect(204);
    const again = (await listKeys()).find((k) => k.id === key.id);
    expect(again?.revokedAt).toBe(first?.revokedAt);
    await request(t.server).get(READ_ROUTE).set(bearer(key.key)).expect(401);
  });

  it('lets an admin key revoke itself, after which it is refused', async () => {
    const admin = await issue({ role: 'admin', name: 'self-revoking' });
    await request(t.server).delete(`${ADMIN_ROUTE}/${admin.id}`).set(bearer(admin.key)).expect(204);
    await request(t.server).get(ADMIN_ROUTE).set(bearer(admin.key)).expect(401);
  });

  it('honours an expiry: a key works until it, and is refused after it', async () => {
    const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
    const dated = await issue({ role: 'auditor', name: 'dated', expiresAt });
    expect(dated.expiresAt).toBe(expiresAt);
    await request(t.server).get(READ_ROUTE).set(bearer(dated.key)).expect(200);

    const inDays = await issue({ role: 'auditor', name: 'in-days', expiresInDays: 30 });
    const days = (Date.parse(inDays.expiresAt!) - Date.parse(inDays.createdAt)) / 86_400_000;
    expect(days).toBeCloseTo(30, 2);

    // Not used yet (so not cached): move its expiry into the past, as time passing would.
    await sql`update api_key set expires_at = now() - interval '1 minute' where id = ${inDays.id}`.execute(
      t.handle.db,
    );
    await request(t.server).get(READ_ROUTE).set(bearer(inDays.key)).expect(401);
    expect((await listKeys()).find((k) => k.id === inDays.id)?.status).toBe('expired');
  });

  it('stores only hashes: no stored row contains a key', async () => {
    const extra = await issue({ role: 'ingest', name: 'hash-check' });
    const rows = await t.handle.db.selectFrom('api_key').selectAll().execute();
    const dump = JSON.stringify(rows);
    expect(issued.length).toBeGreaterThan(5);
    for (const { key, id } of issued) {
      expect(dump).not.toContain(key);
      expect(dump).not.toContain(key.slice(11));
      const row = rows.find((r) => r.id === id);
      expect(row?.key_hash).toBe(sha256(key));
      expect(row?.key_prefix).toBe(key.slice(0, 11));
    }
    expect(dump).not.toContain(ADMIN_TOKEN);
    expect(rows.find((r) => r.id === extra.id)).toMatchObject({
      role: 'ingest',
      created_by: 'env:ADMIN_TOKEN',
    });
  });

  it('lists every key with its status and prefix, never a secret', async () => {
    const unused = await issue({ role: 'engineer', name: 'never-used' });
    const used = await issue({ role: 'engineer', name: 'used-once' });
    await request(t.server).get(READ_ROUTE).set(bearer(used.key)).expect(200);

    const res = await request(t.server).get(ADMIN_ROUTE).set(AUTH).expect(200);
    const keys = res.body.keys as KeyInfo[];
    for (const { key } of issued) expect(res.text).not.toContain(key);
    expect(keys.map((k) => k.id)).toEqual(expect.arrayContaining(issued.map((k) => k.id)));
    for (const k of keys) {
      expect(Object.keys(k).sort()).toEqual(
        [
          'createdAt',
          'createdBy',
          'expiresAt',
          'id',
          'keyPrefix',
          'lastUsedAt',
          'name',
          'revokedAt',
          'role',
          'status',
        ].sort(),
      );
    }
    expect(keys.find((k) => k.id === unused.id)).toMatchObject({
      name: 'never-used',
      role: 'engineer',
      status: 'active',
      keyPrefix: unused.key.slice(0, 11),
      lastUsedAt: null,
      expiresAt: null,
      revokedAt: null,
    });
    expect(keys.find((k) => k.id === used.id)?.lastUsedAt).toEqual(expect.any(String));
  });

  it.each([
    ['an unknown role', { name: 'x', role: 'superuser' }, 'role'],
    ['no role', { name: 'x' }, 'role'],
    ['an empty name', { name: '', role: 'engineer' }, 'name'],
    ['a blank name', { name: '   ', role: 'engineer' }, 'name'],
    ['no name', { role: 'engineer' }, 'name'],
    ['an extra field', { name: 'x', role: 'engineer', scopes: ['everything'] }, 'scopes'],
    [
      'an expiry in the past',
      { name: 'x', role: 'engineer', expiresAt: '2020-01-01T00:00:00Z' },
      'expiresAt',
    ],
    ['an expiry that is not a date', { name: 'x', role: 'engineer', expiresAt: 'tomorrow' }, 'expiresAt'],
    ['zero days', { name: 'x', role: 'engineer', expiresInDays: 0 }, 'expiresInDays'],
    [
      'both kinds of expiry',
      { name: 'x', role: 'engineer', expiresAt: '2099-01-01T00:00:00Z', expiresInDays: 5 },
      'expiresInDays',
    ],
  ])('answers a body with %s with 400 naming the field, and creates nothing', async (_, body, field) => {
    const before = await t.handle.db
      .selectFrom('api_key')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .executeTakeFirstOrThrow();
    const res = await request(t.server).post(ADMIN_ROUTE).set(AUTH).send(body).expect(400);
    expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(res.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field })]));
    const after = await t.handle.db
      .selectFrom('api_key')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .executeTakeFirstOrThrow();
    expect(Number(after.n)).toBe(Number(before.n));
  });

  it('answers a revocation of an unknown key with 404, and of a malformed id with 400', async () => {
    const id = randomUUID();
    const missing = await request(t.server).delete(`${ADMIN_ROUTE}/${id}`).set(AUTH).expect(404);
    expect(missing.body).toMatchObject({ status: 404, detail: `api key ${id} not found` });
    await request(t.server).delete(`${ADMIN_ROUTE}/not-a-uuid`).set(AUTH).expect(400);
  });
});

describe('the first admin key', () => {
  const KEY_IN_TEXT = /ul_[A-Za-z0-9_-]{43}/g;
  const noAdminToken = { ADMIN_TOKEN: '', SEQUENCER_ENABLED: 'false' };

  it('is not created by a replica that waited for another one creating it (advisory lock, then recount)', async () => {
    const t = await startTestApp({ env: { SEQUENCER_ENABLED: 'false' } });
    // The rival replica's session: its own on Postgres; PGlite has only the one.
    const rival = onPostgres ? await t.db.reopen(2) : t.handle;
    const newKey = () => {
      const { hash, prefix } = generateApiKey();
      return {
        name: BOOTSTRAP_KEY_NAME,
        role: 'admin' as const,
        hash,
        prefix,
        createdBy: 'bootstrap',
        expiresAt: null,
      };
    };
    try {
      const repository = t.app.get(ApiKeysRepository);
      let attempt!: Promise<unknown>;
      let settled = false;
      await rival.db.transaction().execute(async (trx) => {
        // The rival is mid-way through creating the first key: lock taken, row not yet committed.
        await sql`select pg_advisory_xact_lock(${BOOTSTRAP_LOCK_KEY.toString()}::bigint)`.execute(trx);
        const { hash, prefix } = generateApiKey();
        await trx
          .insertInto('api_key')
          .values({
            name: 'rival',
            role: 'admin',
            key_hash: hash,
            key_prefix: prefix,
            created_by: 'bootstrap',
          })
          .execute();
        attempt = repository.insertIfNoKeys(newKey());
        void attempt.then(
          () => (settled = true),
          () => (settled = true),
        );
        // On Postgres, commit only once the attempt is queued behind the lock (or has, wrongly,
        // finished without it). On PGlite it queues behind this transaction's session anyway.
        while (onPostgres && !settled) {
          const { rows } = await sql<{ n: number }>`
            select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted`.execute(trx);
          if ((rows[0]?.n ?? 0) > 0) break;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      });
      expect(await attempt).toBeUndefined();
      const rows = await t.handle.db.selectFrom('api_key').select('name').execute();
      expect(rows).toEqual([{ name: 'rival' }]);
    } finally {
      await t.close();
    }
  });

  it('is created once when two replicas start on an empty database, printed once, and works', async () => {
    const db = await createTestDatabase();
    // Two replicas: two sessions on Postgres; PGlite is one session, so they share it.
    const other = onPostgres ? await db.reopen() : db.handle;
    const {
      result: [a, b],
      printed,
    } = await capturingStderr(() =>
      Promise.all([startAppOn(db.handle, noAdminToken), startAppOn(other, noAdminToken)]),
    );
    try {
      expect(printed.match(/created the first admin key/g)).toHaveLength(1);
      const shown = [...new Set(printed.match(KEY_IN_TEXT))];
      expect(shown).toHaveLength(1);
      const key = shown[0]!;
      expect(printed).toContain(`(shown once, store it now): ${key}\n`);
      expect(printed).toContain(
        `use it as: curl -H 'Authorization: Bearer ${key}' http://127.0.0.1:3000/api/v1/ledger`,
      );

      // An admin key, on either replica.
      await request(a.server).get(READ_ROUTE).set(bearer(key)).expect(200);
      await request(b.server).get(READ_ROUTE).set(bearer(key)).expect(200);
      await request(b.server)
        .post(ADMIN_ROUTE)
        .set(bearer(key))
        .send({ role: 'auditor', name: 'alice' })
        .expect(201);

      const rows = await db.handle.db
        .selectFrom('api_key')
        .selectAll()
        .where('created_by', '=', 'bootstrap')
        .execute();
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ name: 'bootstrap-admin', role: 'admin', key_hash: sha256(key) });
      expect(JSON.stringify(rows)).not.toContain(key);

      // A later start finds keys and prints nothing; the key keeps working there too.
      const third = onPostgres ? await db.reopen() : db.handle;
      const { result: c, printed: later } = await capturingStderr(() => startAppOn(third, noAdminToken));
      try {
        expect(later).not.toContain('created the first admin key');
        expect(later).not.toMatch(KEY_IN_TEXT);
        await request(c.server).get(READ_ROUTE).set(bearer(key)).expect(200);
      } finally {
        await c.close();
      }
    } finally {
      await b.close();
      await a.close();
      await db.drop();
    }
  });
});
