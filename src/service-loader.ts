import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { Script } from 'node:vm';
import { BUNDLE_FILE, CACHE_FILE, WRITE_CODE_CACHE } from './service-bundle.js';

/**
 * What `npm start` runs: the build bundles this module into `<build>/src/bundle/main.js`, beside
 * the service's bundle (`service.cjs`, the bundle of start.ts) and the code cache the build made
 * for it (`service.cjs.cache`). It compiles the bundle with that cache and starts the service.
 *
 * Why: on a slow two-core machine, V8 compiling the service's JavaScript was about a third of a
 * second of the main thread's start, all of it before the server could listen: the bundle's parse,
 * then each module's function compiled as it first ran. With the cache, V8 deserialises the code
 * it compiled when the build started the service once (docs/benchmarks.md, "The code cache
 * (session 13)" and "The code cache after a start (session 14)"). Node 20 offers no cache for ES
 * modules (`module.enableCompileCache` came in 22), hence a CommonJS bundle compiled here by
 * `vm.Script`, which takes one.
 *
 * The cache is only a shortcut, used when it is this bundle's: it starts with the SHA-256 of the
 * bundle it was made for (V8 itself compares only the source's length), and V8 refuses it when
 * another V8 or other V8 flags made it. Otherwise, or when there is none, the loader compiles the
 * source as usual, and warns, since the start is then slower. The build writes it with the build's
 * NODE_OPTIONS, so flags given there (`--max-old-space-size`, say) must be the same at both.
 *
 * With `--enable-source-maps`, the bundle is loaded by Node's own CommonJS loader instead, without
 * the cache: Node maps stack traces only for what its loaders compiled.
 */

/** What the bundle of start.ts exports. */
interface Service {
  start(): Promise<void>;
  setModuleImporter(importer: (url: string) => Promise<unknown>): void;
}

/** The cache file: the bundle's SHA-256, then V8's data. */
const HASH_BYTES = 32;

const warn = (message: string) =>
  process.emitWarning(`${BUNDLE_FILE}: ${message}`, { code: 'UPGRADE_LEDGER_CODE_CACHE' });

/** V8's data from the cache file, if the file is there and was made for `source`. */
function readCache(file: string, sourceHash: Buffer): Buffer | undefined {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch {
    warn(
      `no code cache beside it (${CACHE_FILE}), which the build writes; the start compiles without it and is slower: run \`npm run build\``,
    );
    return undefined;
  }
  if (bytes.length > HASH_BYTES && bytes.subarray(0, HASH_BYTES).equals(sourceHash))
    return bytes.subarray(HASH_BYTES);
  warn(
    `the code cache beside it (${CACHE_FILE}) was made for another ${BUNDLE_FILE}; the start compiles without it and is slower: run \`npm run build\``,
  );
  return undefined;
}

/** Compiles and runs the bundle as Node runs a CommonJS module, with V8's cached data if given. */
function load(
  bundle: string,
  source: string,
  cachedData: Buffer | undefined,
): { script: Script; service: Service } {
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: bundle,
    cachedData,
  });
  if (cachedData && script.cachedDataRejected)
    warn(
      'V8 rejected the code cache the build made for it: the build ran another Node, or other V8 flags ' +
        '(on the command line or in NODE_OPTIONS, --max-old-space-size among them). The start compiles ' +
        'without it and is slower; build with the Node and NODE_OPTIONS you run with.',
    );
  const module = { exports: {} as Service };
  script.runInThisContext()(module.exports, createRequire(bundle), module, bundle, path.dirname(bundle));
  // `import()` inside the script has no loader in Node 20 (see src/common/module-import.ts): the
  // bundle imports through this module's.
  module.exports.setModuleImporter((url) => import(url));
  return { script, service: module.exports };
}

const here = path.dirname(fileURLToPath(import.meta.url));
const bundle = path.join(here, BUNDLE_FILE);
const cacheFile = path.join(here, CACHE_FILE);

if (process.argv[2] === WRITE_CODE_CACHE) {
  // A whole start, as `npm start` makes one but on the throwaway database the build set in the
  // environment: V8's cache then holds the code of every function of the bundle that a start runs
  // (Nest's providers and routes, Fastify's set-up among them), not only the modules' top levels.
  // The packages left in node_modules (PGlite, pino) are not in the bundle and not cached.
  //
  // Without bytecode flushing while it runs: over a start's garbage collections, V8 drops the
  // bytecode of functions that ran once and not since (each module's top level among them), and a
  // cache taken after it lacks them: measured, such a cache made a start slower than a cache of the
  // loaded modules alone. Flushing is on again before the cache is taken, so that it carries V8's
  // usual flags: V8 refuses a cache made under other flags, and the process test checks that the
  // start takes it.
  setFlagsFromString('--no-flush-bytecode');
  const source = readFileSync(bundle, 'utf8');
  const { script, service } = load(bundle, source, undefined);
  await service.start();
  setFlagsFromString('--flush-bytecode');
  const temporary = `${cacheFile}.${process.pid}.tmp`;
  writeFileSync(temporary, Buffer.concat([sha256(source), script.createCachedData()]));
  renameSync(temporary, cacheFile);
  // Done: the database is the build's to delete, and the service's timers need not wind down.
  process.exit(0);
} else if (process.sourceMapsEnabled) {
  void (createRequire(import.meta.url)(bundle) as Service).start();
} else {
  const source = readFileSync(bundle, 'utf8');
  void load(bundle, source, readCache(cacheFile, sha256(source))).service.start();
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
