import { Injectable } from '@nestjs/common';
import { InvalidInput } from '../common/errors.js';
import { sqlState } from '../database/pg-errors.js';
import { EXPORT_CSV_COLUMNS, EXPORT_FORMAT, type ExportHeader, entryLine } from '../ledger/export-format.js';
import { canonicalJson } from '../ledger/hashing.js';
import { LedgerRepository } from '../ledger/ledger.repository.js';
import { csvLine } from './csv.js';

export type ExportFormat = 'ndjson' | 'csv';

/**
 * Entries read per query: memory stays bounded by a few pages (AHEAD out, one being written, and
 * a re-read of its entries without a line), whatever the range.
 */
const PAGE = 1000;
/**
 * Queries out at once: two keep Postgres reading while the service writes. An export so holds up
 * to three of the pool's connections while it runs (docs/operations.md).
 */
const AHEAD = 2;
/** Lines are handed to the HTTP response in chunks of about this many characters. */
const CHUNK_CHARS = 64 * 1024;

export interface ExportRange {
  from: number;
  to: number;
  prevHash: string;
  head: { position: number; hash: string };
}

/** Streams a range of the ledger as NDJSON (verifiable offline) or CSV (for spreadsheets). */
@Injectable()
export class LedgerExporter {
  constructor(private readonly ledger: LedgerRepository) {}

  /**
   * Fixes the range before anything is sent: `to` defaults to (and is capped at) the head now,
   * so an export is a snapshot even while the ledger grows. An empty ledger gives 1..0.
   */
  async range(from: number | undefined, to: number | undefined): Promise<ExportRange> {
    const head = await this.ledger.head();
    const start = from ?? 1;
    if (to !== undefined && to < start) throw new InvalidInput('to', `must be ≥ from (${start})`);
    const end = Math.min(to ?? head.position, head.position);
    if (start > end && head.position > 0) {
      throw new InvalidInput('from', `is beyond the ledger head (${head.position})`);
    }
    const prevHash = await this.ledger.hashAt(start - 1);
    if (prevHash === undefined)
      throw new InvalidInput('from', `is beyond the ledger head (${head.position})`);
    return { from: start, to: end, prevHash, head };
  }

  async *ndjson(range: ExportRange): AsyncGenerator<string> {
    yield* chunked(this.ndjsonLines(range), (line) => `${line}\n`);
  }

  /** The export's lines in order (see export-format.ts), each canonical JSON. */
  private async *ndjsonLines(range: ExportRange): AsyncGenerator<string> {
    const header: ExportHeader = {
      kind: 'header',
      format: EXPORT_FORMAT,
      from: range.from,
      to: range.to,
      prevHash: range.prevHash,
      generatedFrom: { position: range.head.position, chainHead: range.head.hash },
    };
    yield canonicalJson(header);
    for (const k of await this.ledger.publicKeys()) {
      yield canonicalJson({
        kind: 'key',
        keyId: k.keyId,
        algorithm: k.algorithm,
        publicKeyPem: k.publicKeyPem,
      });
    }
    let checkpoints = 0;
    for (let after = range.from - 1; ; ) {
      const page = await this.ledger.checkpoints(after, PAGE);
      for (const c of page) {
        if (c.position > range.to) break;
        checkpoints++;
        yield canonicalJson({ kind: 'checkpoint', ...c });
      }
      const last = page.at(-1);
      if (!last || page.length < PAGE || last.position >= range.to) break;
      after = last.position;
    }
    let entries = 0;
    const read = (from: number, to: number) =>
      this.ledger.readLines(from, to).catch((err: unknown) => {
        if (!isDataException(err)) throw err;
        return this.jsonbLines(from, to);
      });
    for await (const page of this.pages(range, read)) {
      const lines = await this.withMissingLines(page);
      for (const line of lines) {
        entries++;
        yield line;
      }
    }
    yield canonicalJson({ kind: 'end', entries, checkpoints });
  }

  /**
   * The page's lines, with those Postgres did not build (an event without stored canonical text,
   * or whose text no longer says what its jsonb says: `LedgerRepository.readLines`) joined here
   * from the jsonb, read just for the positions from the first such entry to the last.
   */
  private async withMissingLines(page: { position: number; line: string | null }[]): Promise<string[]> {
    const missing = page.filter((row) => row.line === null);
    const first = missing[0];
    const last = missing.at(-1);
    if (!first || !last) return page.map((row) => row.line as string);
    const joined = new Map(
      (await this.jsonbLines(first.position, last.position)).map((row) => [row.position, row.line]),
    );
    return page.map((row) => {
      const line = row.line ?? joined.get(row.position);
      if (line === undefined) throw new Error(`ledger entry ${row.position} could not be read again`);
      return line;
    });
  }

  /**
   * The lines of the entries at positions from..to joined in Node from their jsonb, the stored
   * canonical text left unread: for entries Postgres did not build a line for, and for a window
   * whose stored text is no longer JSON.
   */
  private async jsonbLines(from: number, to: number): Promise<{ position: number; line: string }[]> {
    return (await this.ledger.readText(from, to, false)).map((e) => ({
      position: e.position,
      line: entryLine(e),
    }));
  }

  async *csv(range: ExportRange): AsyncGenerator<string> {
    const self = this;
    async function* rows(): AsyncGenerator<string> {
      yield csvLine([...EXPORT_CSV_COLUMNS]);
      const read = (from: number, to: number) =>
        self.ledger.readText(from, to).catch((err: unknown) => {
          if (!isDataException(err)) throw err;
          return self.ledger.readText(from, to, false);
        });
      for await (const page of self.pages(range, read)) {
        for (const e of page) {
          yield csvLine([
            e.position,
            e.hash,
            e.prevHash,
            e.eventHash,
            e.eventPrevHash,
            e.streamId,
            e.streamVersion,
            e.eventId,
            e.type,
            e.schemaVersion,
            e.recordedAt,
            e.dataJcs,
            e.metadataJcs,
          ]);
        }
      }
    }
    yield* chunked(rows(), (row) => row);
  }

  /**
   * The range's entries, a window of PAGE positions at a time (one query per window, never the
   * whole range). Windows go by position, not by the last entry read, so that the next queries
   * need not wait for this one: AHEAD of them are out while the caller writes a page, and Postgres
   * reads while the service writes. At most AHEAD + 1 pages are held.
   */
  private async *pages<T>(
    range: ExportRange,
    read: (from: number, to: number) => Promise<T[]>,
  ): AsyncGenerator<T[]> {
    const out: Promise<T[]>[] = [];
    let next = range.from;
    const fetchNext = () => {
      if (next > range.to) return;
      const page = read(next, Math.min(next + PAGE - 1, range.to));
      // Awaited below unless the caller stops first (a client gone): then its failure is moot.
      page.catch(() => {});
      out.push(page);
      next += PAGE;
    };
    for (let i = 0; i < AHEAD; i++) fetchNext();
    for (let page = out.shift(); page; page = out.shift()) {
      const rows = await page;
      fetchNext();
      if (rows.length > 0) yield rows;
    }
  }
}

/**
 * A Postgres data exception (SQLSTATE class 22): here, an event's stored canonical text that was
 * edited behind the triggers into something that is not JSON, which its cast to `jsonb` refuses
 * (`LedgerRepository.readLines`). The window is then read again from the `jsonb` alone.
 */
function isDataException(err: unknown): boolean {
  return sqlState(err)?.startsWith('22') ?? false;
}

/** Joins small pieces into chunks of about CHUNK_CHARS, so the response is not written line by line. */
async function* chunked<T>(items: AsyncIterable<T>, render: (item: T) => string): AsyncGenerator<string> {
  let out = '';
  for await (const item of items) {
    out += render(item);
    if (out.length >= CHUNK_CHARS) {
      yield out;
      out = '';
    }
  }
  if (out) yield out;
}
