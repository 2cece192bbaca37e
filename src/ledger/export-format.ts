import type { Checkpoint, LedgerEntry } from './ledger.types.js';

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
