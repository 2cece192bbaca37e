import { Injectable } from '@nestjs/common';
import { InvalidInput } from '../common/errors.js';
import { EXPORT_CSV_COLUMNS, EXPORT_FORMAT, type ExportHeader, entryLine } from '../ledger/export-format.js';
import { canonicalJson } from '../ledger/hashing.js';
import { LedgerRepository } from '../ledger/ledger.repository.js';
import type { LedgerEntryText } from '../ledger/ledger.types.js';
import { csvLine } from './csv.js';

export type ExportFormat = 'ndjson' | 'csv';

/** Entries read per query: memory stays bounded by one page, whatever the range. */
const PAGE = 1000;
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
    for await (const page of this.pages(range)) {
      for (const e of page) {
        entries++;
        yield entryLine(e);
      }
    }
    yield canonicalJson({ kind: 'end', entries, checkpoints });
  }

  async *csv(range: ExportRange): AsyncGenerator<string> {
    const self = this;
    async function* rows(): AsyncGenerator<string> {
      yield csvLine([...EXPORT_CSV_COLUMNS]);
      for await (const page of self.pages(range)) {
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
   * The range's entries, a page at a time (one query per page, never the whole range). The next
   * page's query goes out before this one is handed on, so that Postgres reads it while the
   * caller writes this one: two pages in memory at most.
   */
  private async *pages(range: ExportRange): AsyncGenerator<LedgerEntryText[]> {
    const fetch = (after: number) => {
      const page = this.ledger.readText(after, Math.min(PAGE, range.to - after));
      // Awaited below unless the caller stops first (a client gone): then its failure is moot.
      page.catch(() => {});
      return page;
    };
    let next = range.from - 1 < range.to ? fetch(range.from - 1) : undefined;
    while (next) {
      const page = (await next).filter((e) => e.position <= range.to);
      const last = page.at(-1);
      if (!last) return;
      next = last.position < range.to ? fetch(last.position) : undefined;
      yield page;
    }
  }
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
