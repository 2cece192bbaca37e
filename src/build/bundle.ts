import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build, type Plugin, transform } from 'esbuild';
import { BUNDLE_FILE, CACHE_FILE, WRITE_CODE_CACHE } from '../service-bundle.js';

/**
 * Bundles the compiled service (`<build>/src/start.js`, tsc's output with its decorator metadata)
 * into `<build>/src/bundle/service.cjs`, puts the loader that `npm start` runs beside it as
 * `main.js` (src/service-loader.ts), and has the loader write V8's code cache for the bundle.
 *
 * Why: on a slow two-core machine, loading some 2,100 module files through Node's ESM and CJS
 * loaders is the larger part of a cold start. One file cuts that to a parse of it (see
 * docs/benchmarks.md, "Cold start: bundled"), and the code cache cuts most of the parse and of
 * the compiling that follows ("The code cache (session 13)").
 *
 * Run as `node <build>/src/build/bundle.js`: it bundles the build it belongs to. The bundle sits
 * two levels below the build's root, as the modules it replaces did, so every path they derive
 * from `import.meta.url` (the migrations, the report templates) still resolves.
 */

/**
 * Left as files, loaded from node_modules at run time, because they read files beside their own
 * modules (PGlite its WebAssembly and data, PDFKit its font metrics, the Swagger UI its assets,
 * the DejaVu fonts) or start worker threads from paths (pino's transports).
 */
const KEEP_AS_FILES = ['@electric-sql/pglite', 'pdfkit', 'swagger-ui-dist', 'dejavu-fonts-ttf', 'pino'];

/** `@scope/name/sub/path` → `@scope/name`; `name/sub` → `name`. */
function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return (specifier.startsWith('@') ? parts.slice(0, 2) : parts.slice(0, 1)).join('/');
}

const BUILTINS = new Set(builtinModules);

function installed(pkg: string, fromDir: string): boolean {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'node_modules', pkg, 'package.json'))) return true;
    if (path.dirname(dir) === dir) return false;
  }
}

/**
 * Nest and Fastify `require` some packages only if they are installed (`@nestjs/microservices`,
 * `class-validator`, `@fastify/view`, …), inside a try. Those that are not installed stay
 * run-time requires, which fail as they would unbundled; the build lists them.
 */
function optionalPeers(leftOut: Set<string>): Plugin {
  return {
    name: 'optional-peers',
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, (args) => {
        const pkg = packageName(args.path);
        if (args.path.startsWith('node:') || BUILTINS.has(pkg) || !args.importer) return undefined;
        if (installed(pkg, path.dirname(args.importer))) return undefined;
        leftOut.add(pkg);
        return { path: args.path, external: true };
      });
    },
  };
}

/** esbuild's helper for `keepNames`, as esbuild 0.28 writes it into the bundle's runtime code. */
export const NAME_HELPER =
  'var __name = (target, value) => __defProp(target, "name", { value, configurable: true });';
/**
 * The same helper, defining the name only when the function does not already hold it as a value
 * of its own. Where it skips, `defineProperty` would have changed nothing: it sets the value it
 * already has and leaves the other attributes as they are. A getter is never called.
 */
export const NAME_HELPER_CHECKED = NAME_HELPER.replace(
  '=> __defProp(',
  '=> Object.getOwnPropertyDescriptor(target, "name")?.value === value ? target : __defProp(',
);

/**
 * Rewrites esbuild's `__name` helper in the bundle, so that it defines a function's name
 * only when the function does not already hold it.
 *
 * Why: with `keepNames`, every named function esbuild emits is passed to `__name` where it is
 * created, and the helper calls `Object.defineProperty` each time. Fastify's hook runners declare
 * their `next` and `handleResolve` inside each call, so every request paid several of them:
 * `__name` and the property definitions were 5.7 % of the service's thread answering
 * `/health/live` (docs/benchmarks.md, "The keepNames helper (session 12)"). A declared
 * function already holds its name; one esbuild renamed (to keep two modules' names apart) or an
 * arrow passed to the helper (which JS leaves unnamed there) does not, and gets it as before.
 * The bundle's OpenAPI document is compared with the unbundled service's in
 * test/e2e/process.e2e.spec.ts, which would catch a lost class name.
 *
 * Fails unless the helper is found exactly once, so that an esbuild upgrade that changes it, or a
 * second copy, is looked at rather than silently left as it was.
 */
export function rewriteNameHelper(text: string): string {
  const found = text.split(NAME_HELPER).length - 1;
  if (found !== 1)
    throw new Error(
      found === 0
        ? "bundle: esbuild's __name helper was not found: esbuild changed it; update NAME_HELPER " +
            'in src/build/bundle.ts after checking the new one'
        : `bundle: esbuild's __name helper was found ${found} times, not once: rewriting one would ` +
            'leave the others',
    );
  return text.replace(NAME_HELPER, NAME_HELPER_CHECKED);
}

/**
 * The bundle's text with every character outside ASCII replaced by one ASCII character (its
 * letter, for a letter with a mark; a line feed, for the line separators U+2028 and U+2029, which
 * JavaScript and source maps count as line ends; `?` for anything else), after checking that
 * those characters are all in comments: esbuild's `charset: 'ascii'` escapes them everywhere
 * else, but copies comments (the packages' JSDoc) as they are, and a tagged template's text, which
 * it must keep as written.
 *
 * Why: Node reads an ASCII file into a one-byte string, and anything else into a two-byte one.
 * Forty-odd such characters made the start read the bundle's 6.4 MB in 62-84 ms instead of about
 * 10, and hold 12.8 MB of source instead of 6.4 (docs/benchmarks.md, session 15). One UTF-16
 * unit becomes one ASCII character, so every line and column of the source map holds.
 *
 * The check: esbuild, minifying both texts without their comments, must print the same program.
 * Throws if not, showing where they differ. Our own templates write `\u00b7` and the like for
 * this reason. What it cannot see is code that reads its own comments (`Function#toString`).
 */
export async function asciiComments(text: string): Promise<string> {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the range is the point
  const ascii = text.replace(/[^\u0000-\u007f]/g, (unit) => {
    if (unit === '\u2028' || unit === '\u2029') return '\n';
    // A letter with a mark keeps its letter ("é" reads "e").
    const base = unit.normalize('NFD')[0] as string;
    return base < '\u0080' ? base : '?';
  });
  if (ascii === text) return text;
  const minified = (code: string) =>
    transform(code, {
      minify: true,
      legalComments: 'none',
      format: 'cjs',
      platform: 'node',
      target: 'node20.19',
      keepNames: true,
    });
  const before = (await minified(text)).code;
  // The ASCII text may not even parse (a character replaced in a name): esbuild's error says where.
  const after = await minified(ascii).then(
    (r) => ({ code: r.code, error: undefined }),
    (err: unknown) => ({ code: undefined, error: err instanceof Error ? err.message : String(err) }),
  );
  if (after.code !== before) {
    let where: string;
    if (after.code === undefined) {
      where = `the replaced text does not parse: ${after.error?.split('\n')[0]}`;
    } else {
      let at = 0;
      while (at < before.length && before[at] === after.code[at]) at++;
      where = `near ${JSON.stringify(before.slice(Math.max(0, at - 60), at + 20))} once minified`;
    }
    throw new Error(
      `bundle: a character outside ASCII is not in a comment (${where}); escape it in the source it ` +
        'comes from (a tagged template keeps its text as written, so esbuild cannot)',
    );
  }
  return ascii;
}

export async function bundleService(
  buildRoot: string,
): Promise<{ outfile: string; files: number; bytes: number; leftOut: string[] }> {
  const entry = path.join(buildRoot, 'src/start.js');
  const loader = path.join(buildRoot, 'src/service-loader.js');
  for (const file of [entry, loader])
    if (!existsSync(file)) throw new Error(`${file} is missing: run \`nest build\` first`);
  // Two levels below the build's root, as the modules it replaces: paths derived from
  // import.meta.url count the levels.
  const outdir = path.join(buildRoot, 'src/bundle');
  const outfile = path.join(outdir, 'main.js');
  const bundleFile = path.join(outdir, BUNDLE_FILE);
  const leftOut = new Set<string>();
  rmSync(outdir, { recursive: true, force: true });
  // The service, as one CommonJS file: service-loader.ts compiles it with a code cache, which
  // Node 20 offers for scripts and not for ES modules. What the service imports on demand (the
  // PDF renderer, PDFKit behind it, the Swagger UI's static files) is still evaluated on demand:
  // esbuild wraps a module reached only by import() in a function run at the first import.
  await build({
    entryPoints: [entry],
    outfile: bundleFile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20.19',
    // Nest names providers and Swagger names schemas after their classes: keep every name.
    keepNames: true,
    // esbuild's default, written out: asciiComments relies on it.
    charset: 'ascii',
    // The packages' licence notices, verbatim in service.cjs.LEGAL.txt (asciiComments would
    // change their letters outside ASCII in the bundle).
    legalComments: 'linked',
    sourcemap: 'linked',
    external: KEEP_AS_FILES.flatMap((p) => [p, `${p}/*`]),
    plugins: [optionalPeers(leftOut)],
    // A CommonJS file has no import.meta: the modules that find files from their own URL (the
    // migrations, the report templates) get the bundle's, as they did when it was an ES module.
    define: { 'import.meta.url': '__bundleUrl' },
    // Strict, as ES modules are: the directive must come first, before the banner's statement
    // (esbuild's own "use strict" follows the banner, where it does nothing).
    banner: { js: '"use strict";\nvar __bundleUrl = require("node:url").pathToFileURL(__filename).href;' },
    logLevel: 'warning',
  });
  const bundled = rewriteNameHelper(readFileSync(bundleFile, 'utf8'));
  let text = bundled;
  try {
    text = await asciiComments(bundled);
  } catch (err) {
    // Only slower to start, not wrong: a package's tagged template, say, after an upgrade. Our
    // own code is held to ASCII by the process test.
    console.warn(`${(err as Error).message}\nThe bundle is written as it is, and starts more slowly.`);
  }
  writeFileSync(bundleFile, text);
  // The loader, on its own: it imports only Node's modules.
  await build({
    entryPoints: [loader],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20.19',
    sourcemap: 'linked',
    logLevel: 'warning',
  });
  await writeCodeCache(outfile);
  const files = readdirSync(outdir).filter((f) => !f.endsWith('.map'));
  const bytes = files.reduce((sum, f) => sum + statSync(path.join(outdir, f)).size, 0);
  return { outfile, files: files.length, bytes, leftOut: [...leftOut].sort() };
}

/** Where the build's own start keeps its database, inside the bundle's directory: see writeCodeCache. */
const BUILD_DATA_DIR = '.code-cache-db';

/** How long the build's own start may take before it is killed and the build fails. */
const BUILD_START_TIMEOUT_MS = 120_000;

/**
 * Runs the bundled loader (`main`) as `npm start` would, with the same Node, but asked to start the
 * service once and write V8's code cache for the bundle instead of serving. The start is a whole
 * one (the database migrated, Nest's providers made, the routes registered, the port bound), so the
 * cache holds the code the bundle runs in a start and not only its modules' top levels
 * (docs/benchmarks.md, "The code cache after a start (session 14)": 20-38 ms off a start on a fast
 * machine).
 *
 * It starts on a new embedded database in the bundle's directory, deleted after (and by the next
 * build, which empties that directory first, should this one be killed), on a port the OS picks,
 * and with none of this process's configuration: a DATABASE_URL, targets to snapshot or a key file
 * set where the build runs are never touched. A random ADMIN_TOKEN spares it making and printing a
 * first admin key, which a failed build would show. It keeps NODE_OPTIONS, which is how V8 flags
 * that a deployment sets there reach the cache (V8 rejects a cache made with other flags).
 */
async function writeCodeCache(main: string): Promise<void> {
  const dataDir = path.join(path.dirname(main), BUILD_DATA_DIR);
  const env: NodeJS.ProcessEnv = {
    DATA_DIR: dataDir,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    ADMIN_TOKEN: randomBytes(24).toString('base64url'),
  };
  if (process.env.NODE_OPTIONS) env.NODE_OPTIONS = process.env.NODE_OPTIONS;
  try {
    await promisify(execFile)(process.execPath, [main, WRITE_CODE_CACHE], {
      env,
      maxBuffer: 1 << 20,
      timeout: BUILD_START_TIMEOUT_MS,
      // The start is throwaway: a hung one must not outlive the build.
      killSignal: 'SIGKILL',
    });
  } catch (err) {
    const { stderr, stdout, killed, signal, code } = err as {
      stderr?: string;
      stdout?: string;
      killed?: boolean;
      signal?: string | null;
      code?: number | string | null;
    };
    const how = killed
      ? `timed out after ${BUILD_START_TIMEOUT_MS / 1000} s`
      : signal
        ? `was killed by ${signal}`
        : `exited with ${code}`;
    throw new Error(
      `bundle: writing the code cache failed: the service's start ${how}\n${[stderr, stdout].filter(Boolean).join('\n')}`,
    );
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
  if (!existsSync(path.join(path.dirname(main), CACHE_FILE)))
    throw new Error('bundle: the loader exited without writing the code cache');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const started = performance.now();
  const { outfile, files, bytes, leftOut } = await bundleService(root);
  process.stdout.write(
    `bundled ${path.relative(process.cwd(), outfile)} (${files} files, ${(bytes / 1e6).toFixed(1)} MB) in ` +
      `${Math.round(performance.now() - started)} ms; optional packages not installed, left out: ` +
      `${leftOut.join(', ') || 'none'}\n`,
  );
}
