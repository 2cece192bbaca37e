import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { AUTH_CACHE_TTL_MS } from '../../src/auth/api-keys.service.js';
import { keyIdOf } from '../../src/ledger/signing.js';
import { onPostgres } from '../support/database.js';
import { adminUrl } from '../support/postgres.js';
import { eventually } from '../support/wait.js';
import { type ScratchCluster, startClusterFromBaseBackup, startScratchCluster } from './scratch-cluster.js';
import {
  createPostgresDatabase,
  createRollouts,
  DEADLINE_MS,
  getJson,
  head,
  kill,
  type LedgerEntry,
  ledgerShape,
  query,
  readLedger,
  runCli,
  type Service,
  startService,
  stop,
  TOKEN,
  verifyOffline,
  verifyOnline,
} from './support.js';

/**
 * The procedures of docs/operations.md, each tried on the real, built server: rotating the
 * checkpoint-signing key, revoking an API key across instances, a physical backup and restore,
 * and moving from the embedded database to Postgres with `upgrade-ledger transfer`.
 * (Logical restore: logical-restore.fault.spec.ts.)
 */
const AUTH = { Authorization: `Bearer ${TOKEN}` };

interface Checkpoint {
  position: number;
  keyId: string;
}

/** The whole ledger once every one of these rollouts is in it. */
function sequenced(base: string, ids: readonly string[]): Promise<LedgerEntry[]> {
  return eventually(
    `${ids.length} rollouts to be sequenced`,
    async () => {
      const entries = await readLedger(base);
      const streams = new Set(entries.map((e) => e.streamId));
      return ids.every((id) => streams.has(`rollout-${id}`)) ? entries : undefined;
    },
    { deadlineMs: DEADLINE_MS, intervalMs: 100 },
  );
}

const checkpoints = async (base: string) =>
  (await getJson<{ checkpoints: Checkpoint[] }>(base, '/api/v1/ledger/checkpoints?limit=1000')).checkpoints;

/** Waits for a checkpoint signed by `keyId` at or after `from`. */
function checkpointBy(base: string, keyId: string, from: number): Promise<Checkpoint> {
  return eventually(
    `a checkpoint signed by ${keyId} at ${from} or later`,
    async () => (await checkpoints(base)).find((c) => c.keyId === keyId && c.position >= from),
    { deadlineMs: DEADLINE_MS, intervalMs: 100 },
  );
}

/** An Ed25519 key pair as PEM files (PKCS#8 private, SPKI public); returns the paths and key id. */
async function newKey(
  dir: string,
  name: string,
): Promise<{ privateFile: string; publicFile: string; keyId: string }> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const privateFile = path.join(dir, `${name}.key.pem`);
  const publicFile = path.join(dir, `${name}.pub.pem`);
  await writeFile(privateFile, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), {
    mode: 0o600,
  });
  await writeFile(publicFile, publicKey.export({ type: 'spki', format: 'pem' }).toString());
  return { privateFile, publicFile, keyId: keyIdOf(publicKey) };
}

async function exportLedger(base: string, file: string): Promise<void> {
  const res = await fetch(`${base}/api/v1/exports/ledger?format=ndjson`, { headers: AUTH });
  expect(res.status).toBe(200);
  await writeFile(file, await res.text());
}

describe('operations', () => {
  const baseUrl = process.env.DATABASE_URL ?? '';
  let work: string;
  const services: Service[] = [];
  const cleanups: (() => Promise<void>)[] = [];

  const env = (extra: Record<string, string>) => ({
    RATE_LIMIT_MAX: '1000000',
    SEQUENCER_POLL_MS: '50',
    CHECKPOINT_EVERY: '5',
    ...extra,
  });
  async function start(e: Record<string, string>): Promise<string> {
    const { svc, base } = await startService(e);
    services.push(svc);
    onTestFailed(() => console.error(`service output:\n${svc.output().slice(-6000)}`));
    return base;
  }
  /** The database of a test: a new one on DATABASE_URL's server, or a DATA_DIR of its own. */
  async function database(what: string): Promise<Record<string, string>> {
    const dataDir = await mkdtemp(path.join(work, `${what}-`));
    if (!onPostgres) return { DATA_DIR: dataDir };
    const db = await createPostgresDatabase(baseUrl, what);
    cleanups.push(db.drop);
    return { DATA_DIR: dataDir, DATABASE_URL: db.url };
  }

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'upgrade-ledger-fault-ops-'));
  });
  afterEach(async () => {
    for (const s of services.splice(0)) await kill(s, 'SIGKILL');
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    await rm(work, { recursive: true, force: true });
  });

  it('rotating the signing key: both keys listed, old checkpoints verify with the old key only', async () => {
    const db = await database('rotate');
    const a = await newKey(work, 'key-a');
    const b = await newKey(work, 'key-b');

    const first = await start(env({ ...db, SIGNING_KEY_FILE: a.privateFile }));
    const before = await createRollouts(first, 7, 'signed by A');
    await sequenced(first, before);
    const signedByA = await checkpointBy(first, a.keyId, 5);
    await stop(services.pop());

    // The rotation: a new key file, a restart.
    const second = await start(env({ ...db, SIGNING_KEY_FILE: b.privateFile }));
    const current = await fetch(`${second}/api/v1/ledger/public-key`, { headers: AUTH });
    expect((await current.text()).trim()).toBe((await readFile(b.publicFile, 'utf8')).trim());
    const after = await createRollouts(second, 7, 'signed by B');
    const entries = await sequenced(second, after);
    const signedByB = await checkpointBy(second, b.keyId, signedByA.position + 1);
    const { keys } = await getJson<{ keys: { keyId: string }[] }>(second, '/api/v1/ledger/public-keys');
    expect(keys.map((k) => k.keyId).sort()).toEqual([a.keyId, b.keyId].sort());
    const all = await checkpoints(second);
    expect(all.filter((c) => c.keyId === a.keyId).length).toBeGreaterThan(0);
    expect(all.filter((c) => c.keyId === b.keyId).length).toBeGreaterThan(0);
    expect(all.every((c) => c.keyId === a.keyId || c.keyId === b.keyId)).toBe(true);

    const online = await verifyOnline(second);
    expect(online).toMatchObject({ ok: true });
    expect(online.checkpointsVerified).toBeGreaterThanOrEqual(
      all.filter((c) => c.position <= online.verifiedThrough!).length,
    );

    // Offline, with the keys from a trusted source: both verify the whole export …
    const file = path.join(work, 'rotated.ndjson');
    await exportLedger(second, file);
    const both = await runCli(['verify', file, '--public-key', a.publicFile, '--public-key', b.publicFile]);
    expect(both.stdout).toMatch(/^OK: verified positions 1\.\./);
    expect(both.code).toBe(0);
    // … the new key alone does not vouch for the checkpoints the old one signed …
    const onlyB = await runCli(['verify', file, '--public-key', b.publicFile]);
    expect(onlyB.code).toBe(1);
    expect(onlyB.stdout).toContain(`checkpoint at ${all[0]!.position} names unknown key ${a.keyId}`);
    // … nor the old key alone for the new ones.
    const onlyA = await runCli(['verify', file, '--public-key', a.publicFile]);
    expect(onlyA.code).toBe(1);
    expect(onlyA.stdout).toContain(`names unknown key ${b.keyId}`);
    console.log(
      `[fault] key rotation: ${entries.length} entries, checkpoint ${signedByA.position} by A, ` +
        `${signedByB.position} by B; online and offline (both keys) verify, one key alone fails`,
    );
  });

  it.runIf(onPostgres)('revoking an API key: refused at once on every instance (postgres)', async () => {
    const db = await database('revoke');
    const one = await start(env(db));
    const two = await start(env(db));
    const created = await fetch(`${one}/api/v1/api-keys`, {
      method: 'POST',
      headers: { ...AUTH, 'Content-Type': 'application/json' },
      body: JSON.stringify({ role: 'engineer', name: 'to-revoke' }),
    });
    expect(created.status).toBe(201);
    const { id, key } = (await created.json()) as { id: string; key: string };
    const asKey = (base: string) =>
      fetch(`${base}/api/v1/rollouts?limit=1`, { headers: { Authorization: `Bearer ${key}` } }).then(
        (r) => r.status,
      );
    // Both instances accept it, and now hold it in their cache (AUTH_CACHE_TTL_MS).
    expect(await asKey(one)).toBe(200);
    const cachedAt = Date.now();
    expect(await asKey(two)).toBe(200);

    const revoked = await fetch(`${one}/api/v1/api-keys/${id}`, { method: 'DELETE', headers: AUTH });
    expect(revoked.status).toBe(204);
    // On the instance that revoked it: at once.
    expect(await asKey(one)).toBe(401);
    // On the other: as soon as its NOTIFY arrives, before its cached lookup would have expired
    // (without the NOTIFY it would be accepted until then).
    await eventually('the other instance to refuse the revoked key', async () =>
      (await asKey(two)) === 401 ? true : undefined,
    );
    const refusedAfter = Date.now() - cachedAt;
    expect(refusedAfter).toBeLessThan(AUTH_CACHE_TTL_MS);
    // And it stays refused everywhere.
    expect([await asKey(one), await asKey(two)]).toEqual([401, 401]);
    const listed = await getJson<{ keys: { id: string; status: string }[] }>(two, '/api/v1/api-keys');
    expect(listed.keys.find((k) => k.id === id)?.status).toBe('revoked');
    console.log(`[fault] revocation: refused by the other instance ${refusedAfter} ms after its cached use`);
  });

  describe.runIf(onPostgres)('on scratch clusters (postgres)', () => {
    let major = 0;
    const clusters: ScratchCluster[] = [];
    beforeAll(async () => {
      const [{ version } = { version: 0 }] = await query<{ version: number }>(
        adminUrl(baseUrl),
        "select current_setting('server_version_num')::int as version",
      );
      major = Math.floor(version / 10_000);
    });
    afterAll(async () => {
      for (const c of clusters) await c.stop();
    });

    it('physical backup (pg_basebackup) and restore: starts without a fix, carries on', async () => {
      const origin = await startScratchCluster(major);
      clusters.push(origin);
      await origin.bin('createdb', ['ledger']);
      const dataDir = await mkdtemp(path.join(work, 'physical-'));
      const first = await start(env({ DATABASE_URL: origin.url('ledger'), DATA_DIR: dataDir }));
      const before = await createRollouts(first, 12, 'before backup');
      const atBackup = await sequenced(first, before);
      const headAtBackup = await head(first);
      expect(headAtBackup.position).toBe(atBackup.length);

      const restored = await startClusterFromBaseBackup(origin, major);
      clusters.push(restored);
      // Written after the backup: the restored cluster must not have these.
      const later = await createRollouts(first, 5, 'after backup');
      await sequenced(first, later);
      await stop(services.pop());

      const second = await start(env({ DATABASE_URL: restored.url('ledger'), DATA_DIR: dataDir }));
      const entries = await readLedger(second);
      expect(entries).toEqual(atBackup);
      expect(await head(second)).toEqual(headAtBackup);
      expect(await verifyOnline(second)).toMatchObject({ ok: true, verifiedThrough: atBackup.length });
      const ids = await createRollouts(second, 4, 'after restore');
      const carried = await sequenced(second, ids);
      expect(ledgerShape(carried)).toEqual({ gaps: [], duplicates: [] });
      expect(carried.slice(0, atBackup.length)).toEqual(atBackup);
      const positions = carried
        .filter((e) => ids.some((id) => e.streamId === `rollout-${id}`))
        .map((e) => e.position);
      expect(Math.min(...positions)).toBeGreaterThan(atBackup.length);
      expect(carried.some((e) => later.some((id) => e.streamId === `rollout-${id}`))).toBe(false);
      const offline = await verifyOffline(second, work);
      expect(offline.stdout).toMatch(/^OK: verified positions 1\.\./);
      expect(offline.code).toBe(0);
      console.log(
        `[fault] physical backup: ${atBackup.length} entries at the backup, restored unchanged without a fix; ` +
          `head ${carried.length} after ${ids.length} new rollouts`,
      );
    });
  });

  it.runIf(onPostgres)(
    'partitioning the ledger: converted in place, the service carries on, reads prune (postgres)',
    async () => {
      const db = await database('partition');
      const url = db.DATABASE_URL!;
      const first = await start(env(db));
      const ids = await createRollouts(first, 25, 'before partitioning');
      const original = await sequenced(first, ids);
      expect(original).toHaveLength(25);
      await stop(services.pop());

      // The conversion, with the service stopped: ranges of 10 positions.
      const run = await runCli(['partition-ledger', '--size', '10'], {
        DATABASE_URL: url,
        DATA_DIR: db.DATA_DIR!,
      });
      expect(run.stderr).toBe('');
      expect(run.stdout).toMatch(
        /^converted the ledger to range partitions; head 25; created ledger_from_31, ledger_from_41\n/,
      );
      expect(run.code).toBe(0);
      const partitionsOf = async () =>
        (
          await query<{ name: string; bound: string }>(
            url,
            `select c.relname as name, pg_get_expr(c.relpartbound, c.oid) as bound from pg_inherits i
             join pg_class c on c.oid = i.inhrelid where i.inhparent = 'ledger'::regclass order by c.relname`,
          )
        ).map((r) => `${r.name} ${r.bound}`);
      expect(await partitionsOf()).toEqual([
        "ledger_from_1 FOR VALUES FROM ('1') TO ('31')",
        "ledger_from_31 FOR VALUES FROM ('31') TO ('41')",
        "ledger_from_41 FOR VALUES FROM ('41') TO ('51')",
      ]);
      const [{ relkind } = { relkind: '' }] = await query<{ relkind: string }>(
        url,
        "select relkind from pg_class where oid = 'ledger'::regclass",
      );
      expect(relkind).toBe('p');

      // Still append-only, on the partitioned table and on every partition; one entry per event.
      const refused = (text: string) =>
        query(url, text).then(
          () => 'accepted',
          (err: Error) => err.message,
        );
      expect(await refused("update ledger set hash = 'x' where position = 3")).toContain('append-only');
      expect(await refused('delete from ledger_from_1 where position = 3')).toContain('append-only');
      // (TRUNCATE of ledger alone is refused by checkpoint's foreign key already; with it, by the trigger)
      expect(await refused('truncate ledger, checkpoint')).toContain('TRUNCATE on ledger is not allowed');
      expect(await refused('truncate ledger_from_41, checkpoint')).toContain(
        'TRUNCATE on ledger_from_41 is not allowed',
      );
      expect(await refused('truncate ledger_from_1, checkpoint')).toContain(
        'TRUNCATE on ledger_from_1 is not allowed',
      );
      expect(
        await refused(
          "insert into ledger (position, event_row_id, prev_hash, hash) select 35, event_row_id, 'x', 'y' from ledger where position = 3",
        ),
      ).toContain('already has a ledger position');
      expect(await refused('delete from checkpoint')).toContain('append-only');

      // The service on it: the same ledger, verified; new entries land in the next partition.
      const second = await start(env(db));
      expect(await readLedger(second)).toEqual(original);
      const more = await createRollouts(second, 12, 'after partitioning');
      const carried = await sequenced(second, more);
      expect(ledgerShape(carried)).toEqual({ gaps: [], duplicates: [] });
      expect(carried.slice(0, original.length)).toEqual(original);
      const perPartition = await query<{ p: string; n: number }>(
        url,
        'select tableoid::regclass::text as p, count(*)::int as n from ledger where position <= 37 group by 1 order by 1',
      );
      expect(perPartition).toEqual([
        { p: 'ledger_from_1', n: 30 },
        { p: 'ledger_from_31', n: 7 },
      ]);
      // A range read touches only the partitions of its range.
      const plan = (
        await query<{ 'QUERY PLAN': string }>(
          url,
          'explain (costs off) select l.* from ledger l join event e on e.id = l.event_row_id where l.position between 32 and 38 order by l.position',
        )
      )
        .map((r) => r['QUERY PLAN'])
        .join('\n');
      expect(new Set([...plan.matchAll(/on (ledger_from_\d+)/g)].map((m) => m[1]))).toEqual(
        new Set(['ledger_from_31']),
      );

      const online = await verifyOnline(second);
      expect(online).toMatchObject({ ok: true });
      expect(online.verifiedThrough).toBeGreaterThanOrEqual(37);
      const offline = await verifyOffline(second, work);
      expect(offline.stdout).toMatch(/^OK: verified positions 1\.\./);
      expect(offline.code).toBe(0);

      // Run again (from cron, the service running): keeps two empty partitions ahead of the head.
      const again = await runCli(['partition-ledger', '--size', '10'], {
        DATABASE_URL: url,
        DATA_DIR: db.DATA_DIR!,
      });
      expect(again.stdout).toMatch(/^the ledger is partitioned; head (3[7-9]|40); created ledger_from_51\n/);
      expect(again.code).toBe(0);
      expect(await partitionsOf()).toHaveLength(4);

      // Past the last partition (position 60): appends still succeed, sequencing pauses with the
      // database's error, and resumes, in order, once the command has added partitions.
      const [{ events } = { events: 0 }] = await query<{ events: number }>(
        url,
        'select count(*)::int as events from event',
      );
      expect(events).toBeLessThan(60);
      const fill = await createRollouts(second, 60 - events, 'up to the last partition');
      await sequenced(second, fill);
      expect((await head(second)).position).toBe(60);
      const beyond = await createRollouts(second, 3, 'beyond the last partition');
      const svc = services.at(-1)!;
      await eventually(
        'the sequencer to report the missing partition',
        async () => (svc.output().includes('sequencer paused: no partition of relation') ? true : undefined),
        { deadlineMs: DEADLINE_MS, intervalMs: 100 },
      );
      expect((await head(second)).position).toBe(60);
      const extended = await runCli(['partition-ledger', '--size', '10'], {
        DATABASE_URL: url,
        DATA_DIR: db.DATA_DIR!,
      });
      expect(extended.stdout).toMatch(/created ledger_from_61, ledger_from_71, ledger_from_81\n/);
      const resumed = await sequenced(second, beyond);
      expect(ledgerShape(resumed)).toEqual({ gaps: [], duplicates: [] });
      expect(
        resumed.filter((e) => beyond.some((id) => e.streamId === `rollout-${id}`)).map((e) => e.position),
      ).toEqual([61, 62, 63]);
      expect(await verifyOnline(second)).toMatchObject({ ok: true });
      console.log(
        `[fault] partitioning: 25 entries converted in place into ranges of 10; head ${carried.length} after ` +
          `${more.length} new rollouts, spread over 2 partitions; range read pruned to 1 partition; ` +
          'sequencing paused past the last partition and resumed once partitions were added',
      );
    },
  );

  it.runIf(onPostgres)('embedded → Postgres with `upgrade-ledger transfer` (postgres)', async () => {
    // The embedded database, written by the service itself.
    const dataDir = await mkdtemp(path.join(work, 'embedded-'));
    const key = await newKey(work, 'embedded');
    const embedded = await start(env({ DATA_DIR: dataDir, SIGNING_KEY_FILE: key.privateFile }));
    // Ten rollouts, one event each: the last checkpoint (every 5) is at the head, so none comes
    // after the list below is read.
    const ids = await createRollouts(embedded, 10, 'embedded');
    const original = await sequenced(embedded, ids);
    expect(original).toHaveLength(10);
    await checkpointBy(embedded, key.keyId, 10);
    const embeddedHead = await head(embedded);
    const embeddedCheckpoints = await checkpoints(embedded);
    await stop(services.pop());

    const target = await createPostgresDatabase(baseUrl, 'transfer');
    cleanups.push(target.drop);
    const moved = await runCli(['transfer', '--from-data-dir', dataDir, '--to', target.url]);
    expect(moved.stderr).toMatch(/^transfer: event: \d+\/\d+$/m);
    expect(moved.stdout).toContain(`head: ${embeddedHead.position} ${embeddedHead.hash}\n`);
    expect(moved.stdout).toContain(
      `verify: OK, positions 1..${embeddedHead.position}, ${embeddedCheckpoints.length} checkpoints\n`,
    );
    expect(moved.stdout).not.toContain('mismatch');
    expect(moved.code).toBe(0);

    // The service on Postgres, with a new key: same ledger, the old checkpoints still verify.
    const newKeyPair = await newKey(work, 'postgres');
    const pgDir = await mkdtemp(path.join(work, 'pg-'));
    const onPg = await start(
      env({ DATABASE_URL: target.url, DATA_DIR: pgDir, SIGNING_KEY_FILE: newKeyPair.privateFile }),
    );
    expect(await readLedger(onPg)).toEqual(original);
    expect(await head(onPg)).toEqual(embeddedHead);
    expect((await checkpoints(onPg)).slice(0, embeddedCheckpoints.length)).toEqual(embeddedCheckpoints);
    const more = await createRollouts(onPg, 3, 'on postgres');
    const carried = await sequenced(onPg, more);
    expect(ledgerShape(carried)).toEqual({ gaps: [], duplicates: [] });
    expect(carried.slice(0, original.length)).toEqual(original);
    expect(
      Math.min(
        ...carried.filter((e) => more.some((id) => e.streamId === `rollout-${id}`)).map((e) => e.position),
      ),
    ).toBe(original.length + 1);
    const online = await verifyOnline(onPg);
    expect(online).toMatchObject({ ok: true });
    expect(online.checkpointsVerified).toBeGreaterThanOrEqual(embeddedCheckpoints.length);
    const file = path.join(work, 'transferred.ndjson');
    await exportLedger(onPg, file);
    const offline = await runCli([
      'verify',
      file,
      '--public-key',
      key.publicFile,
      '--public-key',
      newKeyPair.publicFile,
    ]);
    expect(offline.stdout).toMatch(/^OK: verified positions 1\.\./);
    expect(offline.code).toBe(0);
    await stop(services.pop());

    // Into the same database again: refused, nothing written.
    // (the export above is itself recorded in the ledger, as ReportDownloaded)
    const countLedger = async () =>
      (await query<{ n: number }>(target.url, 'select count(*)::int as n from ledger'))[0]?.n;
    const entriesBefore = await countLedger();
    expect(entriesBefore).toBeGreaterThanOrEqual(carried.length);
    const again = await runCli(['transfer', '--from-data-dir', dataDir, '--to', target.url]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('transfer refused: the target database is not empty');
    expect(await countLedger()).toBe(entriesBefore);
    console.log(
      `[fault] transfer: ${original.length} entries and ${embeddedCheckpoints.length} checkpoints moved from ` +
        `the embedded database; head ${carried.length} on Postgres; a second transfer refused`,
    );
  });
});
