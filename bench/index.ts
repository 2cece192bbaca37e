import 'reflect-metadata';
import { appendAb } from './append-ab.js';
import { appendBatch } from './append-batch.js';
import { appendSingle } from './append-single.js';
import { coldStart } from './cold-start.js';
import { compression } from './compression.js';
import { parseArgs } from './lib/args.js';
import { emmettAppends } from './lib/emmett.js';
import { rawExport, rawReport } from './lib/raw-readers.js';
import { storeAppends } from './lib/store-appends.js';
import { query } from './query.js';
import { reportExport } from './report-export.js';
import { sequencer } from './sequencer.js';
import { sequencerScale } from './sequencer-scale.js';
import { soak } from './soak.js';

const SCRIPTS: Record<string, (args: Map<string, string>) => Promise<void>> = {
  'report-export': reportExport,
  'append-single': appendSingle,
  'append-ab': appendAb,
  'append-batch': appendBatch,
  sequencer,
  'sequencer-scale': sequencerScale,
  'cold-start': coldStart,
  compression,
  soak,
  query,
};

/** Internal: raw baselines run as child processes by the scripts. */
const INTERNAL: Record<string, (db: string, ...numbers: number[]) => Promise<unknown>> = {
  '_raw-report': rawReport,
  '_raw-export': rawExport,
  _emmett: (db, concurrency = 16, seconds = 10, batch = 1, poolMax = 20) =>
    emmettAppends(db, concurrency, seconds, batch, poolMax),
  _store: (db, concurrency = 16, seconds = 10, batch = 1, poolMax = 20, acks = 0) =>
    storeAppends(db, concurrency, seconds, batch, poolMax, acks),
};

async function main(): Promise<void> {
  const [name, ...rest] = process.argv.slice(2);
  const internal = name ? INTERNAL[name] : undefined;
  if (internal) {
    console.log(JSON.stringify(await internal(rest[0] ?? '', ...rest.slice(1).map(Number))));
    return;
  }
  const script = name ? SCRIPTS[name] : undefined;
  if (!script) {
    console.error(
      `usage: npm run bench -- <name> [options]\n${name ? `unknown benchmark "${name}". ` : ''}benchmarks: ${Object.keys(SCRIPTS).join(', ')}`,
    );
    process.exit(2);
  }
  await script(parseArgs(rest));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
