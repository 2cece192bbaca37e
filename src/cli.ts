#!/usr/bin/env node
import 'reflect-metadata';
import { ConfigError, loadConfig } from './config/config.js';
import { openDatabase } from './database/database.js';
import { migrateToLatest } from './database/migrator.js';
import { LedgerRepository } from './ledger/ledger.repository.js';

const USAGE = `usage: upgrade-ledger <command>

commands:
  migrate                 apply pending database migrations, then exit
  rebase-after-restore    after a logical restore (pg_dump) into a new cluster: sequence every
                          restored event and rebase stored transaction ids (service stopped)

The database is DATABASE_URL when set, otherwise the embedded one in DATA_DIR (./data).`;

async function run(command: string | undefined): Promise<number> {
  if (!command || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return command ? 0 : 2;
  }
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

run(process.argv[2]).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `upgrade-ledger: ${err instanceof ConfigError ? err.message : err instanceof Error ? err.message : String(err)}\n`,
    );
    process.exit(1);
  },
);
