import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
import { BUNDLE_FILE, CACHE_FILE, WRITE_CODE_CACHE } from './service-bundle.js';

/**
 * What `npm start` runs: the build copies this module to `<build>/src/bundle/main.js`, beside the
 * service's bundle (`service.cjs`, the bundle of start.ts) and the code cache the build made for it
 * (`service.cjs.cache`). It compiles the bundle with that cache and starts the service.
 *
 * Why: on a slow two-core machine, V8 compiling the service's JavaScript was about a third of a
 * second of the main thread's start, all of it before the server could listen: the bundle's parse,
 * then each module's function compiled as it first ran. With the cache, V8 deserialises the code
 * it compiled when the build loaded the same modules (docs/benchmarks.md, "The code cache
 * (session 13)"). Node 20 offers no cache for ES modules (`module.enableCompileCache` came in 22),
 * hence a CommonJS bundle compiled here by `vm.Script`, which takes one.
 *
 * The cache is only a shortcut: V8 checks that it was made by the same V8, with the same flags,
 * for the same source, and compiles the source as usual when it was not (a warning says so, since
 * the start is then slower), or when there is none (a warning too). The build writes it with its own NODE_OPTIONS,
 * so a service run with flags in NODE_OPTIONS (`--max-old-space-size`, say) is built with them.
 */
/** What the bundle of start.ts exports. */
interface Service {
  start(): Promise<void>;
  loadServiceModules(): Promise<void>;
  setModuleImporter(importer: (url: string) => Promise<unknown>): void;
}

/** Compiles and runs the bundle as Node runs a CommonJS module, with the cache when there is one. */
function load(bundle: string, cachedData: Buffer | undefined): { script: Script; service: Service } {
  const script = new Script(
    `(function (exports, require, module, __filename, __dirname) {${readFileSync(bundle, 'utf8')}\n})`,
    {
      filename: bundle,
      cachedData,
    },
  );
  if (!cachedData && process.argv[2] !== WRITE_CODE_CACHE)
    process.emitWarning(
      `${path.basename(bundle)}: no code cache beside it (${CACHE_FILE}), which the build writes; ` +
        'the start compiles without it and is slower: run `npm run build`',
      { code: 'UPGRADE_LEDGER_CODE_CACHE' },
    );
  else if (cachedData && script.cachedDataRejected)
    process.emitWarning(
      `${path.basename(bundle)}: V8 rejected the code cache the build made for it: the build ran another ` +
        'Node, or other V8 flags (on the command line or in NODE_OPTIONS, --max-old-space-size among ' +
        'them). The start compiles without it and is slower; build with the Node and flags you run with.',
      { code: 'UPGRADE_LEDGER_CODE_CACHE' },
    );
  const module = { exports: {} as Service };
  script.runInThisContext()(module.exports, createRequire(bundle), module, bundle, path.dirname(bundle));
  // `import()` inside the script has no loader in Node 20 (see src/common/module-import.ts): the
  // bundle imports through this module's.
  module.exports.setModuleImporter((url) => import(url));
  return { script, service: module.exports };
}

function readCache(file: string): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch {
    return undefined;
  }
}

const here = path.dirname(fileURLToPath(import.meta.url));
const bundle = path.join(here, BUNDLE_FILE);
const cacheFile = path.join(here, CACHE_FILE);

if (process.argv[2] === WRITE_CODE_CACHE) {
  // Every module the start loads, loaded and run as at a start: V8's cache then holds their code.
  const { script, service } = load(bundle, undefined);
  await service.loadServiceModules();
  const temporary = `${cacheFile}.${process.pid}.tmp`;
  writeFileSync(temporary, script.createCachedData());
  renameSync(temporary, cacheFile);
} else {
  void load(bundle, readCache(cacheFile)).service.start();
}
