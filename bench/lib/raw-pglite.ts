/**
 * The cold-start baseline, as a process of its own: Node, PGlite opening `<dataDir>/pgdata`,
 * `select 1`, then one line with the resident set; then it closes the database and exits.
 *
 * It imports nothing else. Until session 12 the baseline ran as `bench/index.js _pglite`, which
 * first loaded every bench and the service's modules they use: about 1.1 s more on a slow
 * machine, so the service looked nearer to bare PGlite than it was (docs/benchmarks.md).
 *
 * `node dist-bench/bench/lib/raw-pglite.js <dataDir>`
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: raw-pglite.js <dataDir>');
  process.exit(2);
}
const db = await PGlite.create(path.join(dir, 'pgdata'));
await db.query('select 1');
const rss = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
console.log(JSON.stringify({ rssMb: Number(rss?.[1] ?? 0) / 1024 }));
await db.close();
