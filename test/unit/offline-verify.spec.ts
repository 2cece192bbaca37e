import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPORT_FORMAT } from '../../src/ledger/export-format.js';
import { canonicalJson, GENESIS_HASH } from '../../src/ledger/hashing.js';
import { describeOutcome, UsageError, verifyExportFile } from '../../src/ledger/offline-verify.js';

/** The offline verifier on hand-made files; real exports are verified in test/e2e/exports. */
describe('verifyExportFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'offline-verify-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const file = async (name: string, lines: unknown[]) => {
    const f = path.join(dir, name);
    await writeFile(f, lines.map((l) => `${canonicalJson(l)}\n`).join(''));
    return f;
  };
  const header = (from: number, to: number) => ({
    kind: 'header',
    format: EXPORT_FORMAT,
    from,
    to,
    prevHash: GENESIS_HASH,
    generatedFrom: { position: 0, chainHead: GENESIS_HASH },
  });

  it('passes the export of an empty ledger', async () => {
    const outcome = await verifyExportFile({
      file: await file('empty.ndjson', [header(1, 0), { kind: 'end', entries: 0, checkpoints: 0 }]),
    });
    expect(outcome).toMatchObject({ ok: true, entries: 0, checkpoints: 0 });
    expect(describeOutcome(outcome)).toBe('OK: verified no positions (an empty range), 0 checkpoints');
  });

  it('fails an export whose header promises entries that never come', async () => {
    const outcome = await verifyExportFile({
      file: await file('hollow.ndjson', [header(1, 3), { kind: 'end', entries: 0, checkpoints: 0 }]),
    });
    expect(outcome).toMatchObject({ ok: false, brokenAt: 1 });
  });

  it('fails an export without its end line, and one with a line that is not JSON', async () => {
    expect(await verifyExportFile({ file: await file('cut.ndjson', [header(1, 0)]) })).toMatchObject({
      ok: false,
      brokenAt: 1,
      reason: expect.stringMatching(/no end line/),
    });
    const garbled = path.join(dir, 'garbled.ndjson');
    await writeFile(garbled, `${canonicalJson(header(1, 1))}\n{"kind":"entry",\n`);
    expect(await verifyExportFile({ file: garbled })).toMatchObject({
      ok: false,
      brokenAt: 1,
      reason: 'line 2 is not valid JSON',
    });
  });

  it('refuses a file that is not an export, and an unreadable report, as usage errors', async () => {
    const notExport = await file('other.ndjson', [{ kind: 'entry' }]);
    await expect(verifyExportFile({ file: notExport })).rejects.toBeInstanceOf(UsageError);
    const empty = await file('empty-export.ndjson', [
      header(1, 0),
      { kind: 'end', entries: 0, checkpoints: 0 },
    ]);
    await expect(
      verifyExportFile({ file: empty, reportFile: path.join(dir, 'missing.json') }),
    ).rejects.toBeInstanceOf(UsageError);
    await expect(verifyExportFile({ file: empty, publicKeyFiles: [empty] })).rejects.toThrow(
      /does not hold a PEM public key/,
    );
  });
});
