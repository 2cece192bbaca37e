import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'csv-parse/sync';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventStore } from '../../src/event-store/event-store.repository.js';
import { EXPORT_CSV_COLUMNS, EXPORT_FORMAT } from '../../src/ledger/export-format.js';
import { GENESIS_HASH } from '../../src/ledger/hashing.js';
import { describeOutcome, UsageError, verifyExportFile } from '../../src/ledger/offline-verify.js';
import { AUTH, settleLedger, startTestApp, type TestApp } from '../support/app.js';
import { bearer, createKey } from '../support/auth.js';
import { buildServer } from '../support/build.js';

/**
 * The ledger export and its offline verifier, end to end: export over HTTP, verify the file with
 * the verifier function and with the real CLI (built from the sources, as process.e2e does),
 * then tamper with the file and see the verifier name the broken position.
 */

const _ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SEEDED = 2500; // more than one page (1000) of the exporter
const NOTES = 40;

type Line = Record<string, unknown> & { kind: string };

/** Buffers any response body (supertest leaves application/x-ndjson unparsed). */
function text(res: NodeJS.ReadableStream, done: (err: Error | null, body: string) => void): void {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (c: string) => {
    body += c;
  });
  res.on('end', () => done(null, body));
}

const linesOf = (ndjson: string): Line[] =>
  ndjson
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Line);

describe('ledger exports and the offline verifier', () => {
  let t: TestApp;
  let dir: string;
  let keyFile: string;
  let exportFile: string;
  let exported: string;
  let reportFile: string;
  let report: { basis: { position: number; chainHead: string } };
  let head: { position: number; hash: string };

  const exportLedger = (query: Record<string, string | number>, headers: Record<string, string> = AUTH) =>
    request(t.server)
      .get('/api/v1/exports/ledger')
      .query(query)
      .set(headers)
      .buffer(true)
      .parse(text as never);

  const verifyFile = (file: string, more: { reportFile?: string; publicKeyFiles?: string[] } = {}) =>
    verifyExportFile({ file, publicKeyFiles: [keyFile], ...more });

  /** Writes `content` to a new file of this test's directory. */
  const fileWith = async (name: string, content: string | Buffer) => {
    const file = path.join(dir, name);
    await writeFile(file, content);
    return file;
  };

  beforeAll(async () => {
    t = await startTestApp({ env: { CHECKPOINT_EVERY: '7' } });
    dir = await mkdtemp(path.join(tmpdir(), 'upgrade-ledger-exports-'));
    const store = t.app.get(EventStore);
    for (let i = 0; i < SEEDED; i += 500) {
      await store.append(
        `seeded-${i / 500}`,
        Array.from({ length: 500 }, (_, j) => ({ type: 'Seeded', data: { i: i + j } })),
      );
    }
    await settleLedger(t);
    // Appended one by one and settled in between, so checkpoints fall among them.
    for (let i = 0; i < NOTES; i++) {
      await store.append(`notes-${i % 3}`, [{ type: 'NoteTaken', data: { i, note: `hello-${i}` } }]);
      if (i % 8 === 7) await settleLedger(t);
    }
    const rollout = await request(t.server)
      .post('/api/v1/rollouts')
      .set(AUTH)
      .send({ title: 'exported' })
      .expect(201);
    await settleLedger(t);
    const reportRes = await request(t.server)
      .get(`/api/v1/reports/rollouts/${rollout.body.id}`)
      .query({ format: 'json' })
      .set(AUTH)
      .expect(200);
    report = reportRes.body;
    reportFile = await fileWith('report.json', reportRes.text);
    // More after the report, so a signed checkpoint lies beyond its position.
    for (let i = 0; i < 10; i++) await store.append('notes-late', [{ type: 'NoteTaken', data: { late: i } }]);
    await settleLedger(t);

    const pem = await request(t.server).get('/api/v1/ledger/public-key').set(AUTH).expect(200);
    keyFile = await fileWith('public-key.pem', pem.text);
    head = (await request(t.server).get('/api/v1/ledger/head').set(AUTH).expect(200)).body;
    const res = await exportLedger({ format: 'ndjson' }).expect(200);
    expect(res.headers['content-type']).toMatch(/^application\/x-ndjson/);
    exported = res.body as string;
    exportFile = await fileWith('export.ndjson', exported);
  });
  afterAll(async () => {
    await t?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The index of the line of the entry at `position`. */
  const entryLineIndex = (lines: string[], position: number) =>
    lines.findIndex(
      (l) => l.startsWith(`{"data":`) && l.includes(`"kind":"entry"`) && JSON.parse(l).position === position,
    );

  describe('the NDJSON export', () => {
    it('has a header, the keys, the checkpoints of the range, every entry in order, and an end line', async () => {
      const lines = linesOf(exported);
      expect(lines[0]).toEqual({
        kind: 'header',
        format: EXPORT_FORMAT,
        from: 1,
        to: head.position,
        prevHash: GENESIS_HASH,
        generatedFrom: { position: head.position, chainHead: head.hash },
      });
      const kinds = lines.map((l) => l.kind);
      const firstEntry = kinds.indexOf('entry');
      // Keys and checkpoints come before the first entry, nothing but entries after it, then the end.
      expect(kinds.slice(1, firstEntry).every((k) => k === 'key' || k === 'checkpoint')).toBe(true);
      expect(kinds.slice(firstEntry, -1).every((k) => k === 'entry')).toBe(true);
      expect(kinds.at(-1)).toBe('end');

      const entries = lines.filter((l) => l.kind === 'entry');
      expect(entries.map((e) => e.position)).toEqual(Array.from({ length: head.position }, (_, i) => i + 1));
      expect(entries.at(-1)?.hash).toBe(head.hash);
      const checkpoints = (
        await request(t.server).get('/api/v1/ledger/checkpoints').query({ limit: 1000 }).set(AUTH)
      ).body.checkpoints as { position: number }[];
      const exportedCheckpoints = lines.filter((l) => l.kind === 'checkpoint');
      expect(exportedCheckpoints.map(({ kind: _, ...c }) => c)).toEqual(
        checkpoints.filter((c) => c.position <= head.position),
      );
      expect(exportedCheckpoints.length).toBeGreaterThan(3);
      expect(lines.at(-1)).toEqual({
        kind: 'end',
        entries: head.position,
        checkpoints: exportedCheckpoints.length,
      });

      // An entry carries what the ledger API gives for it, the event's own type untouched.
      const page = await request(t.server).get('/api/v1/ledger').query({ after: 2509, limit: 1 }).set(AUTH);
      const { kind, ...entry } = entries[2509] as Line;
      expect(kind).toBe('entry');
      expect(entry).toEqual(page.body.events[0]);
      expect(entry.type).toBe('NoteTaken');
    });

    it('is the same bytes when the same range is exported again, also after the ledger grew', async () => {
      const again = await exportLedger({ to: head.position }).expect(200);
      const strip = (s: string) => s.split('\n').slice(1).join('\n'); // the header states the head now
      expect(strip(again.body)).toBe(strip(exported));
    });

    it('verifies offline: the chain, every checkpoint, with the public key fetched from the service', async () => {
      const progress: { bytesRead: number; totalBytes: number; entries: number }[] = [];
      const outcome = await verifyExportFile({
        file: exportFile,
        publicKeyFiles: [keyFile],
        onProgress: (p) => progress.push(p),
      });
      const checkpoints = linesOf(exported).filter((l) => l.kind === 'checkpoint');
      // Progress (the CLI draws it on a terminal) follows the bytes read, up to the whole file.
      const size = Buffer.byteLength(exported);
      expect(progress.length).toBeGreaterThan(1);
      expect(progress.every((p, i) => i === 0 || p.bytesRead >= progress[i - 1]!.bytesRead)).toBe(true);
      expect(progress.at(-1)).toEqual({ bytesRead: size, totalBytes: size, entries: head.position });
      expect(outcome).toMatchObject({
        ok: true,
        from: 1,
        to: head.position,
        entries: head.position,
        checkpoints: checkpoints.length,
        warnings: [],
      });
      expect(describeOutcome(outcome)).toMatch(
        new RegExp(
          `^OK: verified positions 1\\.\\.${head.position}, ${checkpoints.length} checkpoints signed by [0-9a-f]{32}`,
        ),
      );
    });

    it("verifies a report's basis: its chain head is the ledger's at that position, under a signed checkpoint", async () => {
      expect(await verifyFile(exportFile, { reportFile })).toMatchObject({ ok: true });

      const altered = structuredClone(report);
      altered.basis.chainHead = `${report.basis.chainHead.slice(0, -1)}${report.basis.chainHead.endsWith('0') ? '1' : '0'}`;
      const outcome = await verifyFile(exportFile, {
        reportFile: await fileWith('altered-report.json', JSON.stringify(altered)),
      });
      expect(outcome).toMatchObject({ ok: false, brokenAt: report.basis.position });
      expect(describeOutcome(outcome)).toMatch(
        new RegExp(`^BROKEN at position ${report.basis.position}: the report claims chain head`),
      );

      const moved = structuredClone(report);
      moved.basis.position -= 1;
      expect(
        await verifyFile(exportFile, {
          reportFile: await fileWith('moved-report.json', JSON.stringify(moved)),
        }),
      ).toMatchObject({ ok: false, brokenAt: report.basis.position - 1 });
    });

    it('fails at the position of an entry whose data had one byte flipped', async () => {
      const lines = exported.split('\n');
      const index = lines.findIndex((l) => l.includes('"note":"hello-17"'));
      const position = JSON.parse(lines[index]!).position as number;
      const bytes = Buffer.from(exported, 'utf8');
      const at = bytes.indexOf('"note":"hello-17"') + '"note":"h'.length;
      expect(String.fromCharCode(bytes[at]!)).toBe('e');
      bytes[at] = 'a'.charCodeAt(0);
      const outcome = await verifyFile(await fileWith('flipped.ndjson', bytes));
      expect(outcome).toMatchObject({ ok: false, brokenAt: position });
      expect(describeOutcome(outcome)).toMatch(
        new RegExp(`^BROKEN at position ${position}: event .* content was changed`),
      );
    });

    it('fails where an entry line was dropped, in the middle or at the end', async () => {
      const lines = exported.split('\n');
      const middle = entryLineIndex(lines, 1234);
      const withoutMiddle = lines.filter((_, i) => i !== middle).join('\n');
      expect(await verifyFile(await fileWith('dropped.ndjson', withoutMiddle))).toMatchObject({
        ok: false,
        brokenAt: 1234,
      });

      // The last entry may lie past the last checkpoint: the stated range and the end line catch it.
      const last = entryLineIndex(lines, head.position);
      const withoutLast = lines.filter((_, i) => i !== last).join('\n');
      expect(await verifyFile(await fileWith('dropped-last.ndjson', withoutLast))).toMatchObject({
        ok: false,
        brokenAt: head.position,
      });
    });

    it('fails when a checkpoint line was dropped, or the file was cut short', async () => {
      const lines = exported.split('\n');
      const cp = lines.findIndex((l) => l.includes('"kind":"checkpoint"'));
      const outcome = await verifyFile(
        await fileWith('no-cp.ndjson', lines.filter((_, i) => i !== cp).join('\n')),
      );
      expect(outcome).toMatchObject({ ok: false });
      if (!outcome.ok) expect(outcome.reason).toMatch(/checkpoints/);

      const cut = lines.slice(0, entryLineIndex(lines, 2000)).join('\n');
      expect(await verifyFile(await fileWith('cut.ndjson', cut))).toMatchObject({
        ok: false,
        brokenAt: 2000,
      });
    });

    it('fails at the first checkpoint against a public key of someone else', async () => {
      const other = generateKeyPairSync('ed25519')
        .publicKey.export({ type: 'spki', format: 'pem' })
        .toString();
      const firstCheckpoint = linesOf(exported).find((l) => l.kind === 'checkpoint')!.position as number;
      const outcome = await verifyExportFile({
        file: exportFile,
        publicKeyFiles: [await fileWith('other.pem', other)],
      });
      expect(outcome).toMatchObject({ ok: false, brokenAt: firstCheckpoint });
      if (!outcome.ok) expect(outcome.reason).toMatch(/unknown key/);
    });

    it("without --public-key uses the export's own keys, and warns that this proves integrity only", async () => {
      const outcome = await verifyExportFile({ file: exportFile });
      expect(outcome.ok).toBe(true);
      expect(outcome.warnings.join('\n')).toMatch(/keys came from the export itself/);
    });

    it('refuses what is not an export, or a missing file, as a usage error', async () => {
      await expect(verifyFile(path.join(dir, 'missing.ndjson'))).rejects.toBeInstanceOf(UsageError);
      await expect(verifyFile(reportFile)).rejects.toBeInstanceOf(UsageError);
    });
  });

  describe('ranges', () => {
    it('exports a range with the hash before it, and the range verifies on its own', async () => {
      const res = await exportLedger({ from: 1500, to: 2530 }).expect(200);
      const lines = linesOf(res.body);
      const before = await request(t.server).get('/api/v1/ledger').query({ after: 1498, limit: 1 }).set(AUTH);
      expect(lines[0]).toMatchObject({ from: 1500, to: 2530, prevHash: before.body.events[0].hash });
      const entries = lines.filter((l) => l.kind === 'entry');
      expect(entries.map((e) => e.position)).toEqual(Array.from({ length: 1031 }, (_, i) => 1500 + i));
      expect(
        lines
          .filter((l) => l.kind === 'checkpoint')
          .every((c) => (c.position as number) >= 1500 && (c.position as number) <= 2530),
      ).toBe(true);
      const outcome = await verifyFile(await fileWith('range.ndjson', res.body));
      expect(outcome).toMatchObject({ ok: true, from: 1500, to: 2530, entries: 1031 });

      // A wrong hash before the range breaks it at its first position.
      const forged = res.body.replace(before.body.events[0].hash, 'f'.repeat(64));
      expect(await verifyFile(await fileWith('range-forged.ndjson', forged))).toMatchObject({
        ok: false,
        brokenAt: 1500,
      });
    });

    it('caps `to` at the head, and refuses from > to or a from beyond the head', async () => {
      const capped = await exportLedger({ from: head.position, to: 10_000_000 }).expect(200);
      expect(linesOf(capped.body)[0]).toMatchObject({ from: head.position });
      expect(linesOf(capped.body)[0]!.to).toBeGreaterThanOrEqual(head.position);
      await exportLedger({ from: 20, to: 10 }).expect(400);
      await exportLedger({ from: 10_000_000 }).expect(400);
      await exportLedger({ from: 0 }).expect(400);
      await exportLedger({ format: 'xml' }).expect(400);
    });
  });

  describe('the CSV export', () => {
    it('parses with a CSV library: one row per entry, data and metadata as canonical JSON', async () => {
      const res = await exportLedger({ format: 'csv', to: head.position }).expect(200);
      expect(res.headers['content-type']).toMatch(/^text\/csv/);
      const rows = parse(res.body as string, { columns: true }) as Record<string, string>[];
      expect(Object.keys(rows[0]!)).toEqual([...EXPORT_CSV_COLUMNS]);
      expect(rows.map((r) => Number(r.position))).toEqual(
        Array.from({ length: head.position }, (_, i) => i + 1),
      );
      const entries = linesOf(exported).filter((l) => l.kind === 'entry');
      for (const i of [0, 999, 1000, 2520, head.position - 1]) {
        const row = rows[i]!;
        const entry = entries[i]!;
        expect(row.hash).toBe(entry.hash);
        expect(row.prev_hash).toBe(entry.prevHash);
        expect(row.event_hash).toBe(entry.eventHash);
        expect(row.type).toBe(entry.type);
        expect(JSON.parse(row.data!)).toEqual(entry.data);
        expect(JSON.parse(row.metadata!)).toEqual(entry.metadata);
      }
    });
  });

  describe('access', () => {
    it('is for auditors and admins only, and every export is recorded in the ledger', async () => {
      const auditor = (await createKey(t.server, { role: 'auditor', name: 'audit' })).key;
      const engineer = (await createKey(t.server, { role: 'engineer', name: 'eng' })).key;
      const ingest = (await createKey(t.server, { role: 'ingest', name: 'ci' })).key;
      await exportLedger({ from: 1, to: 5 }, bearer(auditor)).expect(200);
      await exportLedger({ from: 1, to: 5 }, bearer(engineer)).expect(403);
      await exportLedger({ from: 1, to: 5 }, bearer(ingest)).expect(403);
      await exportLedger({ from: 1, to: 5 }, {}).expect(401);

      await settleLedger(t);
      const page = await request(t.server)
        .get('/api/v1/ledger')
        .query({ after: head.position, limit: 1000 })
        .set(AUTH)
        .expect(200);
      const downloads = page.body.events.filter(
        (e: { type: string; data: { kind?: string } }) =>
          e.type === 'ReportDownloaded' && e.data.kind === 'ledger-export',
      );
      expect(downloads.at(-1).data).toMatchObject({
        kind: 'ledger-export',
        format: 'ndjson',
        from: 1,
        to: 5,
      });
      expect(downloads.at(-1).metadata.actor).toMatchObject({ role: 'auditor', name: 'audit' });
    });
  });

  describe('the CLI, as a process', () => {
    let buildDir: string;
    let cwd: string;

    beforeAll(async () => {
      buildDir = await buildServer('exports-build', { bundle: false }); // runs src/cli.js only
      cwd = await mkdtemp(path.join(tmpdir(), 'upgrade-ledger-cli-'));
    });
    afterAll(async () => {
      if (buildDir) await rm(buildDir, { recursive: true, force: true });
      if (cwd) await rm(cwd, { recursive: true, force: true });
    });

    /** Runs `upgrade-ledger …args` with no database configured, and a configuration that would not load. */
    const cli = (...args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const proc = spawn(process.execPath, [path.join(buildDir, 'src/cli.js'), ...args], {
          cwd,
          env: { PATH: process.env.PATH ?? '', HOME: cwd, PORT: 'not-a-port' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        proc.stdout.setEncoding('utf8').on('data', (c: string) => {
          stdout += c;
        });
        proc.stderr.setEncoding('utf8').on('data', (c: string) => {
          stderr += c;
        });
        proc.on('error', reject);
        proc.on('close', (code) => resolve({ code, stdout, stderr }));
      });

    it('exits 0 with OK for the export, 1 naming the broken position for a tampered one, 2 on bad usage', async () => {
      const ok = await cli('verify', exportFile, '--public-key', keyFile, '--report', reportFile);
      expect(ok.stderr).toBe('');
      expect(ok.stdout).toMatch(
        new RegExp(
          `^OK: verified positions 1\\.\\.${head.position}, \\d+ checkpoints signed by [0-9a-f]{32}`,
        ),
      );
      expect(ok.code).toBe(0);

      const lines = exported.split('\n');
      const index = lines.findIndex((l) => l.includes('"note":"hello-3"'));
      const position = JSON.parse(lines[index]!).position as number;
      lines[index] = lines[index]!.replace('"note":"hello-3"', '"note":"hallo-3"');
      const broken = await cli(
        'verify',
        await fileWith('cli-flipped.ndjson', lines.join('\n')),
        '--public-key',
        keyFile,
      );
      expect(broken.stdout).toMatch(new RegExp(`^BROKEN at position ${position}: `));
      expect(broken.code).toBe(1);

      const noKey = await cli('verify', exportFile);
      expect(noKey.code).toBe(0);
      expect(noKey.stderr).toMatch(/^warning: .*keys came from the export itself/);

      expect((await cli('verify')).code).toBe(2);
      expect((await cli('verify', path.join(dir, 'missing.ndjson'))).code).toBe(2);
      expect((await cli('verify', exportFile, '--public-key', path.join(dir, 'missing.pem'))).code).toBe(2);
      // It never opened (or created) a database: the embedded one would live in ./data.
      expect(await readdir(cwd)).toEqual([]);
    });
  });
});
