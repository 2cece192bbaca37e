#!/usr/bin/env node
import 'reflect-metadata';
import { ConfigError, loadConfig } from './config/config.js';
import { openDatabase } from './database/database.js';
import { migrateToLatest } from './database/migrator.js';
import { LedgerRepository } from './ledger/ledger.repository.js';
import { describeOutcome, UsageError, verifyExportFile } from './ledger/offline-verify.js';

const USAGE = `usage: upgrade-ledger <command>

commands:
  migrate                 apply pending database migrations, then exit
  rebase-after-restore    after a logical restore (pg_dump) into a new cluster: sequence every
                          restored event and rebase stored transaction ids (service stopped)
  verify <export.ndjson> [--public-key <pem>]... [--report <report.json>]
                          check a ledger export offline (no database): the hash chain, every
                          checkpoint signature, and that a report's basis is in the signed chain.
                          Exit 0 when intact, 1 naming the first broken position, 2 on bad usage

The database is DATABASE_URL when set, otherwise the embedded one in DATA_DIR (./data).`;

/** `verify`: parses its arguments, runs the offline verifier, prints the verdict. */
async function verifyCommand(args: string[]): Promise<number> {
  const keys: string[] = [];
  let report: string | undefined;
  let file: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const [flag, inline] = arg.startsWith('--') ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    if (flag === '--public-key' || flag === '--report') {
      const value = inline ?? args[++i];
      if (!value) throw new UsageError(`${flag} needs a file`);
      if (flag === '--public-key') keys.push(value);
      else report = value;
    } else if (arg.startsWith('-')) {
      throw new UsageError(`unknown option ${arg}`);
    } else if (file === undefined) {
      file = arg;
    } else {
      throw new UsageError(`one export file at a time (got ${file} and ${arg})`);
    }
  }
  if (!file) throw new UsageError('verify needs an export file');
  const bar = process.stderr.isTTY ? progressBar() : undefined;
  const outcome = await verifyExportFile({
    file,
    publicKeyFiles: keys,
    ...(report ? { reportFile: report } : {}),
    ...(bar ? { onProgress: bar.update } : {}),
  }).finally(() => bar?.done());
  for (const warning of outcome.warnings) process.stderr.write(`warning: ${warning}\n`);
  process.stdout.write(`${describeOutcome(outcome)}\n`);
  return outcome.ok ? 0 : 1;
}

/** `[#####.....] 45% 123,456 entries` on one terminal line, redrawn at most ten times a second. */
function progressBar() {
  let last = 0;
  let drawn = false;
  return {
    update({ bytesRead, totalBytes, entries }: { bytesRead: number; totalBytes: number; entries: number }) {
      const now = Date.now();
      if (now - last < 100 && bytesRead < totalBytes) return;
      last = now;
      const ratio = totalBytes > 0 ? Math.min(1, bytesRead / totalBytes) : 1;
      const filled = Math.round(ratio * 30);
      process.stderr.write(
        `\r[${'#'.repeat(filled)}${'.'.repeat(30 - filled)}] ${Math.floor(ratio * 100)}% ${entries.toLocaleString('en-US')} entries`,
      );
      drawn = true;
    },
    done() {
      if (drawn) process.stderr.write('\n');
    },
  };
}

async function run(command: string | undefined, args: string[]): Promise<number> {
  if (!command || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return command ? 0 : 2;
  }
  // Offline: neither the configuration nor the database is needed, or opened.
  if (command === 'verify') return verifyCommand(args);
  const config = loadConfig();
  const handle = await openDatabase(config);
  try {
    switch (command) {
      case 'migrate': {
        const applied = await migrateToLatest(handle.db);
        process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'schema up to date\n');
        return 0;
      }
      case 'rebase-after-restore': {
        await migrateToLatest(handle.db);
        const repo = new LedgerRepository(handle);
        const { maxStored, next } = await repo.transactionIdHorizon();
        if (maxStored < next) {
          process.stdout.write('transaction ids are consistent: nothing to do\n');
          return 0;
        }
        const { sequenced, rebased } = await repo.rebaseAfterRestore(config.sequencer.batchSize);
        process.stdout.write(`sequenced ${sequenced} restored events; rebased ${rebased} transaction ids\n`);
        return 0;
      }
      default:
        process.stderr.write(`unknown command: ${command}\n\n${USAGE}\n`);
        return 2;
    }
  } finally {
    await handle.close();
  }
}

run(process.argv[2], process.argv.slice(3)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`upgrade-ledger: ${err.message}\n\n${USAGE}\n`);
      process.exit(2);
    }
    process.stderr.write(
      `upgrade-ledger: ${err instanceof ConfigError ? err.message : err instanceof Error ? err.message : String(err)}\n`,
    );
    process.exit(1);
  },
);
