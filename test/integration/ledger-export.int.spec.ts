import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type RawBuilder, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventStore } from '../../src/event-store/event-store.repository.js';
import { entryLine } from '../../src/ledger/export-format.js';
import { canonicalJson } from '../../src/ledger/hashing.js';
import { LedgerRepository } from '../../src/ledger/ledger.repository.js';
import { verifyExportFile } from '../../src/ledger/offline-verify.js';
import { SequencerService } from '../../src/ledger/sequencer.service.js';
import { LedgerExporter } from '../../src/reporting/ledger-export.js';
import { startTestApp, type TestApp } from '../support/app.js';

/**
 * The export writes each entry from the canonical text the append stored, without parsing the
 * payload (`LedgerRepository.readText`, `entryLine`). An auditor's verifier parses the line and
 * hashes the values again, so the line must be exactly the canonical JSON of the entry as `read`
 * gives it, for awkward payloads and for events stored before that text existed.
 */
describe('the export reads entries as stored text', () => {
  let t: TestApp;
  let repo: LedgerRepository;
  // Every control character JSON escapes, then the C1 controls and DEL, which it does not.
  const controls = Array.from({ length: 31 }, (_, i) => String.fromCharCode(i + 1)).join('');
  const c1 = Array.from({ length: 33 }, (_, i) => String.fromCharCode(0x7f + i)).join('');
  const NAME = `q"b\\s/${controls}${c1}\u2028\u2029é😀`;
  const awkward = {
    z: 1,
    a: [1.5, -0, 1e21, 0.1, 333333333.3333333, -1e-7],
    é: 'naïve \u2028 "quoted" \\ \u0001 😀',
    '10': 'index-like keys sort as text',
    '9': true,
    nested: { b: null, a: { y: [], x: {} } },
  };

  beforeAll(async () => {
    t = await startTestApp({ env: { SEQUENCER_ENABLED: 'false' } });
    repo = t.app.get(LedgerRepository);
    const store = t.app.get(EventStore);
    await store.append('export-text-1', [
      { type: 'Awkward', data: awkward, metadata: { ü: 1, actor: { name: 'Zoë' } } },
      { type: 'Plain', data: { n: 1 }, metadata: {} },
    ]);
    await store.append('export-text-2', [{ type: 'Legacy', data: awkward, metadata: { source: 'old' } }]);
    // As an event appended before migration 000700 stored it: values only, no canonical text.
    await t.handle.db.transaction().execute(async (trx) => {
      await sql`set local session_replication_role = replica`.execute(trx);
      await sql`update event set data_jcs = null, metadata_jcs = null where stream_id = 'export-text-2'`.execute(
        trx,
      );
    });
    await store.append('export-text-3', [{ type: 'Named', data: {}, metadata: {} }]);
    expect(await t.app.get(SequencerService).drain()).toBe(4);
    // Names no caller could send, written as an attacker would: every character JSON escapes.
    await t.handle.db.transaction().execute(async (trx) => {
      await sql`set local session_replication_role = replica`.execute(trx);
      await sql`update event set type = ${NAME}, stream_id = ${`export-${NAME}`}
        where stream_id = 'export-text-3'`.execute(trx);
    });
  });
  afterAll(() => t?.close());

  it('gives each entry the line canonicalJson gives the entry read as values', async () => {
    const values = await repo.read(0, 10);
    const texts = await repo.readText(1, 10);
    expect(texts.map((e) => e.type)).toEqual(['Awkward', 'Plain', 'Legacy', NAME]);
    expect(texts.map(entryLine)).toEqual(values.map((e) => canonicalJson({ kind: 'entry', ...e })));
    const legacy = await sql<{ data_jcs: string | null }>`
      select data_jcs from event where stream_id = 'export-text-2'`.execute(t.handle.db);
    expect(legacy.rows).toEqual([{ data_jcs: null }]);
  });

  it('has Postgres build the same line, but for an entry stored without its canonical text', async () => {
    const lines = await repo.readLines(1, 10);
    const texts = await repo.readText(1, 10);
    expect(lines.map((r) => r.position)).toEqual(texts.map((e) => e.position));
    expect(lines.map((r) => r.line)).toEqual(texts.map((e) => (e.type === 'Legacy' ? null : entryLine(e))));
    // The names that need escaping, escaped as JSON.stringify escapes them.
    expect(lines[3]?.line).toContain(`"type":${JSON.stringify(NAME)}`);
    expect(lines[3]?.line).toContain(`"streamId":${JSON.stringify(`export-${NAME}`)}`);
  });

  it('exports the entry lines of a range, a page with an entry stored without its text too', async () => {
    const exporter = new LedgerExporter(repo);
    const exported = async (from: number, to: number) => {
      let body = '';
      for await (const chunk of exporter.ndjson(await exporter.range(from, to))) body += chunk;
      const lines = body.split('\n').filter((l) => l !== '');
      expect(JSON.parse(lines.at(-1) ?? '')).toMatchObject({ kind: 'end', entries: to - from + 1 });
      return lines.filter((l) => l.includes('"kind":"entry"'));
    };
    const canonical = async (from: number, to: number) =>
      (await repo.read(from - 1, to - from + 1)).map((e) => canonicalJson({ kind: 'entry', ...e }));
    expect(await exported(1, 2)).toEqual(await canonical(1, 2));
    expect(await exported(2, 4)).toEqual(await canonical(2, 4));
  });
});

describe('an export of a ledger whose jsonb was edited behind the triggers', () => {
  let t: TestApp;
  let dir: string;
  beforeAll(async () => {
    t = await startTestApp({ env: { SEQUENCER_ENABLED: 'false' } });
    dir = await mkdtemp(path.join(tmpdir(), 'ledger-export-'));
  });
  afterAll(async () => {
    await t?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const exportFile = async (name: string): Promise<string> => {
    const exporter = new LedgerExporter(t.app.get(LedgerRepository));
    let body = '';
    for await (const chunk of exporter.ndjson(await exporter.range(undefined, undefined))) body += chunk;
    const file = path.join(dir, name);
    await writeFile(file, body);
    return file;
  };

  it('exports an empty ledger as a header, the key and an end line, which verify', async () => {
    const file = await exportFile('empty.ndjson');
    const lines = (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');
    expect(lines.map((l) => JSON.parse(l).kind)).toEqual(['header', 'key', 'end']);
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({ from: 1, to: 0 });
    expect(JSON.parse(lines[2] ?? '')).toEqual({ kind: 'end', entries: 0, checkpoints: 0 });
    expect(await verifyExportFile({ file })).toMatchObject({ ok: true, entries: 0 });
  });

  /** Runs an UPDATE of `event` as an attacker would: with every trigger off. */
  const edit = (statement: RawBuilder<unknown>) =>
    t.handle.db.transaction().execute(async (trx) => {
      await sql`set local session_replication_role = replica`.execute(trx);
      await statement.execute(trx);
    });
  /** Each entry's event as the append stored it, to put back after a case. */
  const restore = () =>
    edit(
      sql`update event set data = data_jcs::jsonb, metadata = '{}'::jsonb where stream_id like 'edited-%'`,
    );
  const exported = async (name: string) => {
    const file = await exportFile(name);
    const lines = (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');
    return { file, entries: lines.filter((l) => JSON.parse(l).kind === 'entry') };
  };
  /** The entry lines an export must hold: canonicalJson of each entry as `read` gives it (the jsonb). */
  const fromJsonb = async () =>
    (await t.app.get(LedgerRepository).read(0, 10)).map((e) => canonicalJson({ kind: 'entry', ...e }));

  /**
   * Which of entries 1..3 Postgres wrote no line for, that the export holds each entry as the
   * jsonb says it, and that it fails offline verification at the first edited one.
   */
  const expectWrittenFromJsonb = async (missing: boolean[], brokenAt: number) => {
    const lines = await t.app.get(LedgerRepository).readLines(1, 3);
    expect(lines.map((r) => r.line === null)).toEqual(missing);
    const after = await exported(`edited-${missing.join('-')}.ndjson`);
    expect(after.entries).toEqual(await fromJsonb());
    expect(await verifyExportFile({ file: after.file })).toMatchObject({ ok: false, brokenAt });
  };

  it('writes an entry whose jsonb data was edited from the jsonb, so offline verification fails at it', async () => {
    const store = t.app.get(EventStore);
    for (let i = 0; i < 3; i++)
      await store.append(`edited-${i}`, [{ type: 'Noted', data: { i }, metadata: {} }]);
    expect(await t.app.get(SequencerService).drain()).toBe(3);
    expect(await verifyExportFile({ file: await exportFile('before.ndjson') })).toMatchObject({ ok: true });

    // The value every report is built from changes; the stored text, which the sequencer hashed,
    // does not.
    await edit(sql`update event set data = '{"i": 99}'::jsonb where stream_id = 'edited-1'`);
    await expectWrittenFromJsonb([false, true, false], 2);
    expect((await t.app.get(LedgerRepository).readText(2, 2))[0]?.dataJcs).toBe('{"i":99}');
    await restore();
    expect(await verifyExportFile({ file: await exportFile('restored.ndjson') })).toMatchObject({ ok: true });
  });

  it('does the same for an edit of the metadata alone', async () => {
    await edit(sql`update event set metadata = '{"by": "someone else"}'::jsonb where stream_id = 'edited-2'`);
    await expectWrittenFromJsonb([false, false, true], 3);
    expect((await t.app.get(LedgerRepository).readText(3, 3))[0]?.metadataJcs).toBe('{"by":"someone else"}');
    await restore();
  });

  it('joins the lines of entries edited apart, with one between them as stored', async () => {
    await edit(sql`update event set data = '{"i": -1}'::jsonb where stream_id in ('edited-0', 'edited-2')`);
    await expectWrittenFromJsonb([true, false, true], 1);
    await restore();
  });

  it('writes from the jsonb, and verifies, an entry whose stored text alone was edited', async () => {
    for (const text of [
      '{"i":5}', // another value: the text no longer says what the jsonb says
      '{"i":', // not JSON at all: the cast refuses it, and the window is read again without it
      '{\n"i":1}', // the same value, with a line break that would split the export's line
    ]) {
      await edit(sql`update event set data_jcs = ${text} where stream_id = 'edited-1'`);
      const after = await exported('text.ndjson');
      expect(after.entries, text).toEqual(await fromJsonb());
      expect(await verifyExportFile({ file: after.file }), text).toMatchObject({ ok: true, entries: 3 });
      let csv = '';
      const exporter = new LedgerExporter(t.app.get(LedgerRepository));
      for await (const chunk of exporter.csv(await exporter.range(undefined, undefined))) csv += chunk;
      expect(csv, text).toContain('"{""i"":1}"');
    }
    await edit(sql`update event set data_jcs = '{"i":1}' where stream_id = 'edited-1'`);
  });
});
