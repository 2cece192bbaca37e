import type { Checkpoint, LedgerEntry, LedgerEntryText } from './ledger.types.js';

/**
 * The NDJSON ledger export (`GET /api/v1/exports/ledger?format=ndjson`), one canonical JSON
 * object a line, in this order:
 *
 * 1. `header`: the range, and the prev hash of its first entry (so a verifier can start mid-chain);
 * 2. `key` lines: every public key that ever signed a checkpoint;
 * 3. `checkpoint` lines: the signed checkpoints at positions within the range, ascending;
 * 4. `entry` lines: every ledger entry of the range, ascending;
 * 5. `end`: how many entries and checkpoints came, so a dropped or truncated line is caught even
 *    past the last checkpoint.
 *
 * Checkpoints come before the entries so that a verifier checks them in one pass as it reads
 * (constant memory but for the checkpoints themselves, one per CHECKPOINT_EVERY entries).
 * The discriminator is `kind`, because an entry's `type` is its event type.
 */
export const EXPORT_FORMAT = 'upgrade-ledger/export/v1';

export interface ExportHeader {
  kind: 'header';
  format: typeof EXPORT_FORMAT;
  /** First and last position of the range; `to` < `from` only for an empty ledger. */
  from: number;
  to: number;
  /** The chain hash before `from` (the genesis hash when `from` is 1). */
  prevHash: string;
  /** The ledger head when the export began. */
  generatedFrom: { position: number; chainHead: string };
}

export interface ExportKey {
  kind: 'key';
  keyId: string;
  algorithm: string;
  publicKeyPem: string;
}

export type ExportCheckpoint = { kind: 'checkpoint' } & Checkpoint;
export type ExportEntry = { kind: 'entry' } & LedgerEntry;

export interface ExportEnd {
  kind: 'end';
  entries: number;
  checkpoints: number;
}

export type ExportLine = ExportHeader | ExportKey | ExportCheckpoint | ExportEntry | ExportEnd;

/** CSV export columns: one row per entry. */
export const EXPORT_CSV_COLUMNS = [
  'position',
  'hash',
  'prev_hash',
  'event_hash',
  'event_prev_hash',
  'stream_id',
  'stream_version',
  'event_id',
  'type',
  'schema_version',
  'recorded_at',
  'data',
  'metadata',
] as const;

// JSON.stringify is exactly RFC 8785's form for strings and integers (the standard defines it so).
const j = JSON.stringify;

/**
 * An entry's export line, `canonicalJson({ kind: 'entry', ...entry })`, joined from the payload's
 * stored canonical text: its keys in RFC 8785's order (all ASCII, so sorted as written), and no
 * walk, parse or copy of the data and metadata. Parsing each payload out of jsonb and
 * canonicalising it again was most of the export's CPU (docs/benchmarks.md, session 16). The unit
 * tests hold it to `canonicalJson` on generated entries.
 */
export function entryLine(e: LedgerEntryText): string {
  return (
    `{"data":${e.dataJcs},"eventHash":${j(e.eventHash)},"eventId":${j(e.eventId)},` +
    `"eventPrevHash":${j(e.eventPrevHash)},"hash":${j(e.hash)},"kind":"entry",` +
    `"metadata":${e.metadataJcs},"position":${j(e.position)},"prevHash":${j(e.prevHash)},` +
    `"recordedAt":${j(e.recordedAt)},"schemaVersion":${j(e.schemaVersion)},` +
    `"streamId":${j(e.streamId)},"streamVersion":${j(e.streamVersion)},"type":${j(e.type)}}`
  );
}
