#!/usr/bin/env node
import 'reflect-metadata';
import { ConfigError, loadConfig } from './config/config.js';
import { openDatabase } from './database/database.js';
import { migrateToLatest } from './database/migrator.js';
import { LedgerRepository } from './ledger/ledger.repository.js';
import { describeOutcome, UsageError, verifyExportFile } from './ledger/offline-verify.js';
import { PartitioningRefused, partitionLedger } from './ledger/partitioning.js';
import { TransferRefused, transferEmbeddedToPostgres } from './ledger/transfer.js';

const USAGE = `usage: upgrade-ledger <command>

commands:
  migrate                 apply pending database migrations, then exit
  rebase-after-restore    after a logical restore (pg_dump) into a new cluster: sequence every
                          restored event and rebase stored transaction ids (service stopped)
  partition-ledger --size <positions> [--ahead <partitions>]
                          (Postgres) turn the ledger table into range partitions of <positions>
                          each, the first once with the service stopped; run again (cron) to keep
                          <ahead> (default 2) empty partitions ahead of the head
  verify <export.ndjson> [--public-key <pem>]... [--report <report.json>]
                          check a ledger export offline (no database): the hash chain, every
                          checkpoint signature, and that a report's basis is in the signed chain.
                          Exit 0 when intact, 1 naming the first broken position, 2 on bad usage
  transfer --from-data-dir <DATA_DIR> --to <postgres url>
                          move from the embedded database to Postgres (service stopped): copy the
                          ledger, keys, API keys and snapshot claims into an empty database, then
                          verify it there. Exit 0 when the target verifies and matches the source,
                          1 on a mismatch or a refusal (target not empty: nothing is written)

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

/** `transfer`: embedded (PGlite) → Postgres, then the target's verdict on stdout. */
async function transferCommand(args: string[]): Promise<number> {
  let from: string | undefined;
  let to: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const [flag, inline] = arg.startsWith('--') ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    if (flag === '--from-data-dir' || flag === '--to') {
      const value = inline ?? args[++i];
      if (!value) throw new UsageError(`${flag} needs a value`);
      if (flag === '--to') to = value;
      else from = value;
    } else {
      throw new UsageError(`transfer: unexpected argument ${arg}`);
    }
  }
  if (!from || !to) throw new UsageError('transfer needs --from-data-dir <DATA_DIR> and --to <postgres url>');
  if (!/^postgres(ql)?:\/\//.test(to)) throw new UsageError('--to must be a postgres:// connection string');
  let result: Awaited<ReturnType<typeof transferEmbeddedToPostgres>>;
  try {
    result = await transferEmbeddedToPostgres({
      fromDataDir: from,
      to,
      progress: (line) => process.stderr.write(`transfer: ${line}\n`),
    });
  } catch (err) {
    if (err instanceof TransferRefused) {
      process.stderr.write(`upgrade-ledger: transfer refused: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  const counts = Object.entries(result.copied)
    .map(([table, n]) => `${table} ${n}`)
    .join(', ');
  process.stdout.write(`copied: ${counts}\n`);
  if (result.sequenced) process.stdout.write(`sequenced ${result.sequenced} events the source had not\n`);
  process.stdout.write(`head: ${result.head.position} ${result.head.hash}\n`);
  const v = result.verify;
  process.stdout.write(
    v.ok
      ? `verify: OK, positions 1..${v.verifiedThrough}, ${v.checkpointsVerified} checkpoints\n`
      : `verify: BROKEN at position ${v.brokenAt}: ${v.reason}\n`,
  );
  for (const m of result.mismatches) process.stdout.write(`mismatch: ${m}\n`);
  return result.ok ? 0 : 1;
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
  // Names both databases on the command line; the environment's are not used.
  if (command === 'transfer') return transferCommand(args);
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
      case 'partition-ledger': {
        if (handle.kind !== 'postgres') {
          process.stderr.write('upgrade-ledger: partition-ledger is for Postgres (set DATABASE_URL)\n');
          return 2;
        }
        const opts = { size: Number.NaN, ahead: 2 };
        for (let i = 0; i < args.length; i++) {
          const [flag, inline] = (args[i] as string).split(/=(.*)/s, 2);
          const value = inline ?? args[++i];
          if ((flag !== '--size' && flag !== '--ahead') || !value || !/^\d+$/.test(value)) {
            throw new UsageError(`partition-ledger: bad argument ${args[i - (inline ? 0 : 1)] ?? flag}`);
          }
          opts[flag === '--size' ? 'size' : 'ahead'] = Number(value);
        }
        if (Number.isNaN(opts.size)) throw new UsageError('partition-ledger needs --size <positions>');
        try {
          const out = await partitionLedger(handle.db, opts);
          process.stdout.write(
            `${out.converted ? 'converted the ledger to range partitions' : 'the ledger is partitioned'}; ` +
              `head ${out.head}; created ${out.created.length ? out.created.join(', ') : 'nothing'}\n`,
          );
          for (const p of out.partitions)
            process.stdout.write(`  ${p.name}: positions ${p.from}..${p.to - 1}\n`);
          return 0;
        } catch (err) {
          if (err instanceof PartitioningRefused) throw new UsageError(err.message);
          throw err;
        }
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
