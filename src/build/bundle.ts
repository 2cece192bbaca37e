import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

/**
 * Bundles the compiled service (`<build>/src/main.js`, tsc's output with its decorator metadata)
 * into `<build>/src/bundle/main.js` and the chunks beside it, which is what `npm start` runs.
 *
 * Why: on a slow two-core machine, loading some 2,100 module files through Node's ESM and CJS
 * loaders is the larger part of a cold start. A few files cut that to a parse of them (see
 * docs/benchmarks.md, "Cold start: bundled").
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

export async function bundleService(
  buildRoot: string,
): Promise<{ outfile: string; files: number; bytes: number; leftOut: string[] }> {
  const entry = path.join(buildRoot, 'src/main.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`nest build\` first`);
  const outdir = path.join(buildRoot, 'src/bundle');
  const outfile = path.join(outdir, 'main.js');
  const leftOut = new Set<string>();
  rmSync(outdir, { recursive: true, force: true });
  await build({
    entryPoints: { main: entry },
    outdir,
    // What the service imports on demand (the PDF renderer and PDFKit behind it) stays a chunk of
    // its own, loaded on demand as unbundled: in one file, PDFKit's import was hoisted to the top
    // and loaded at every start (110 ms of the median).
    splitting: true,
    // Beside main.js, never deeper: paths derived from import.meta.url count the levels.
    chunkNames: '[name]-[hash]',
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20.19',
    // Nest names providers and Swagger names schemas after their classes: keep every name.
    keepNames: true,
    sourcemap: 'linked',
    external: KEEP_AS_FILES.flatMap((p) => [p, `${p}/*`]),
    plugins: [optionalPeers(leftOut)],
    // The CommonJS packages inside call `require`, which an ES module does not have.
    banner: {
      js: "import { createRequire as __bundleRequire } from 'node:module';\nconst require = __bundleRequire(import.meta.url);",
    },
    logLevel: 'warning',
  });
  const files = readdirSync(outdir).filter((f) => f.endsWith('.js'));
  const bytes = files.reduce((sum, f) => sum + statSync(path.join(outdir, f)).size, 0);
  return { outfile, files: files.length, bytes, leftOut: [...leftOut].sort() };
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
