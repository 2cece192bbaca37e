import { createPublicKey } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { EXPORT_FORMAT, type ExportHeader } from './export-format.js';
import type { Checkpoint, LedgerEntry } from './ledger.types.js';
import { keyIdOf } from './signing.js';
import { ChainVerifier } from './verify.js';

/**
 * The offline verifier of an NDJSON ledger export (`upgrade-ledger verify`). It needs no database
 * and no service: only the file and, for authenticity, the public keys obtained some other way.
 * It reads the file line by line (constant memory but for the checkpoints) and checks:
 * the chain link by link from the export's first position, every checkpoint's head and Ed25519
 * signature, that nothing is missing (the range and counts the export states), and optionally
 * that a report's claimed basis (position, chain head) is in the verified chain under a signed
 * checkpoint at or after it.
 */

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface OfflineVerifyOptions {
  file: string;
  /** PEM files of trusted public keys; without any, the export's own key lines are used. */
  publicKeyFiles?: readonly string[];
  /** A report (JSON) whose `basis.position` and `basis.chainHead` must be in the verified chain. */
  reportFile?: string;
  /** Called now and then while reading. */
  onProgress?: (p: { bytesRead: number; totalBytes: number; entries: number }) => void;
}

export type OfflineVerifyOutcome =
  | {
      ok: true;
      from: number;
      to: number;
      entries: number;
      checkpoints: number;
      keyIds: string[];
      /** The last position under a verified signed checkpoint (undefined when none). */
      signedThrough: number | undefined;
      warnings: string[];
    }
  | { ok: false; brokenAt: number; reason: string; warnings: string[] };

/** What the CLI prints for an outcome: `OK: …` or `BROKEN at position P: …`. */
export function describeOutcome(o: OfflineVerifyOutcome): string {
  if (!o.ok) return `BROKEN at position ${o.brokenAt}: ${o.reason}`;
  const range = o.entries === 0 ? 'no positions (an empty range)' : `positions ${o.from}..${o.to}`;
  const signers = o.keyIds.length ? ` signed by ${o.keyIds.join(', ')}` : '';
  let out = `OK: verified ${range}, ${o.checkpoints} checkpoints${signers}`;
  if (o.entries > 0 && (o.signedThrough ?? 0) < o.to) {
    out +=
      o.signedThrough === undefined
        ? ' (no checkpoint in the range: the entries are consistent but not signed)'
        : ` (positions ${o.signedThrough + 1}..${o.to} come after the last checkpoint: consistent, not yet signed)`;
  }
  return out;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

async function readTrustedKeys(files: readonly string[]): Promise<Map<string, string>> {
  const keys = new Map<string, string>();
  for (const file of files) {
    const pem = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new UsageError(`cannot read the public key ${file} (${err.code ?? err.message})`);
    });
    try {
      const key = createPublicKey(pem);
      keys.set(keyIdOf(key), key.export({ type: 'spki', format: 'pem' }).toString());
    } catch {
      throw new UsageError(`${file} does not hold a PEM public key`);
    }
  }
  return keys;
}

async function readReportBasis(file: string): Promise<{ position: number; chainHead: string }> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot read the report ${file} (${err.code ?? err.message})`);
  });
  let report: unknown;
  try {
    report = JSON.parse(text);
  } catch {
    throw new UsageError(`the report ${file} is not JSON`);
  }
  const basis = isRecord(report) ? report.basis : undefined;
  if (!isRecord(basis) || !Number.isSafeInteger(basis.position) || typeof basis.chainHead !== 'string') {
    throw new UsageError(`the report ${file} has no basis { position, chainHead }`);
  }
  return { position: basis.position as number, chainHead: basis.chainHead };
}

/**
 * Verifies an export file. Throws UsageError for unreadable input (not a verdict on the ledger);
 * otherwise returns the verdict, naming the first broken position.
 */
export async function verifyExportFile(opts: OfflineVerifyOptions): Promise<OfflineVerifyOutcome> {
  const totalBytes = await stat(opts.file).then(
    (s) => s.size,
    (err: NodeJS.ErrnoException) => {
      throw new UsageError(`cannot read ${opts.file} (${err.code ?? err.message})`);
    },
  );
  const trusted = opts.publicKeyFiles?.length ? await readTrustedKeys(opts.publicKeyFiles) : undefined;
  const basis = opts.reportFile ? await readReportBasis(opts.reportFile) : undefined;
  const warnings: string[] = [];

  const stream = createReadStream(opts.file, { encoding: 'utf8' });
  const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  let header: ExportHeader | undefined;
  const exportKeys = new Map<string, string>();
  const checkpoints: Checkpoint[] = [];
  let verifier: ChainVerifier | undefined;
  let entries = 0;
  let ended: { entries: number; checkpoints: number } | undefined;
  let basisHash: string | undefined;
  let lineNo = 0;
  const nextPosition = () => (verifier ? verifier.verifiedThrough + 1 : (header?.from ?? 1));
  const broken = (reason: string, at = nextPosition()): OfflineVerifyOutcome => ({
    ok: false,
    brokenAt: at,
    reason,
    warnings,
  });

  try {
    for await (const line of lines) {
      lineNo++;
      if (lineNo % 1000 === 0) opts.onProgress?.({ bytesRead: stream.bytesRead, totalBytes, entries });
      if (line.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        return broken(`line ${lineNo} is not valid JSON`);
      }
      if (!isRecord(value)) return broken(`line ${lineNo} is not a JSON object`);
      if (ended) return broken(`line ${lineNo} comes after the end line`);
      if (!header) {
        if (value.kind !== 'header' || value.format !== EXPORT_FORMAT) {
          throw new UsageError(
            `${opts.file} is not an ${EXPORT_FORMAT} export (its first line is no header)`,
          );
        }
        header = value as unknown as ExportHeader;
        if (!Number.isSafeInteger(header.from) || header.from < 1 || !Number.isSafeInteger(header.to)) {
          throw new UsageError(`${opts.file} has a header without a valid range`);
        }
        continue;
      }
      switch (value.kind) {
        case 'key': {
          if (verifier) return broken(`line ${lineNo}: a key after the entries began`);
          exportKeys.set(String(value.keyId), String(value.publicKeyPem));
          break;
        }
        case 'checkpoint': {
          if (verifier) return broken(`line ${lineNo}: a checkpoint after the entries began`);
          const { kind: _, ...c } = value;
          checkpoints.push(c as unknown as Checkpoint);
          break;
        }
        case 'entry': {
          if (!verifier) {
            if (!trusted) {
              warnings.push(
                'no --public-key given: the keys came from the export itself, so this proves the export is intact, not that the service signed it',
              );
            }
            verifier = new ChainVerifier(
              checkpoints.filter((c) => c.position >= header!.from),
              trusted ?? exportKeys,
              { position: header.from, prevHash: header.prevHash },
            );
          }
          const { kind: _, ...entry } = value;
          let pushed: boolean;
          try {
            pushed = verifier.push(entry as unknown as LedgerEntry);
          } catch {
            return broken(`line ${lineNo} is not a well-formed entry`);
          }
          if (!pushed) {
            const r = verifier.result();
            return r.ok ? broken('unexpected verifier state') : broken(r.reason, r.brokenAt);
          }
          entries++;
          if (basis && (entry as { position?: unknown }).position === basis.position) {
            basisHash = String(entry.hash);
          }
          break;
        }
        case 'end': {
          ended = { entries: Number(value.entries), checkpoints: Number(value.checkpoints) };
          break;
        }
        default:
          return broken(`line ${lineNo} is of an unknown kind ${JSON.stringify(value.kind)}`);
      }
    }
  } finally {
    lines.close();
    stream.destroy();
  }
  opts.onProgress?.({ bytesRead: totalBytes, totalBytes, entries });

  if (!header) throw new UsageError(`${opts.file} is empty`);
  verifier ??= new ChainVerifier(checkpoints, trusted ?? exportKeys, {
    position: header.from,
    prevHash: header.prevHash,
  });
  const result = verifier.result();
  if (!result.ok) return broken(result.reason, result.brokenAt);
  if (result.verifiedThrough < header.to) {
    return broken(
      `the export states entries through ${header.to}, but they end at ${result.verifiedThrough}`,
    );
  }
  if (!ended) return broken('the export has no end line: it was cut short');
  if (ended.entries !== entries) {
    return broken(`the end line counts ${ended.entries} entries, but ${entries} were read`);
  }
  if (ended.checkpoints !== checkpoints.length) {
    return broken(
      `the end line counts ${ended.checkpoints} checkpoints, but ${checkpoints.length} were read: one was removed or added`,
    );
  }
  const verified = checkpoints.filter((c) => c.position >= header!.from && c.position <= header!.to);
  const signedThrough = verified.at(-1)?.position;

  if (basis) {
    if (basis.position < header.from || basis.position > header.to) {
      return broken(
        `the report was built at position ${basis.position}, outside this export (${header.from}..${header.to})`,
        basis.position,
      );
    }
    if (basisHash !== basis.chainHead) {
      return broken(
        `the report claims chain head ${basis.chainHead}, but the verified ledger has ${basisHash}`,
        basis.position,
      );
    }
    if (signedThrough === undefined || signedThrough < basis.position) {
      return broken(
        `no signed checkpoint at or after the report's position ${basis.position} in this export: export a range reaching a later checkpoint`,
        basis.position,
      );
    }
  }

  return {
    ok: true,
    from: header.from,
    to: result.verifiedThrough,
    entries,
    checkpoints: verified.length,
    keyIds: [...new Set(verified.map((c) => c.keyId))].sort(),
    signedThrough,
    warnings,
  };
}
