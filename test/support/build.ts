import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Builds the server with the project's own compiler settings (tsconfig.build.json, as `nest build`
 * does) into `test-output/<label>-<pid>-<random>`, so that tests which start the real process never
 * run from the shared dist/, which anyone may be rebuilding meanwhile. Returns the directory; the
 * caller removes it. Only emits: the checks are the typecheck's job. Then bundles it as `npm run
 * build` does (src/build/bundle.ts), so that `serviceEntry(dir)` is the file production runs;
 * `bundle: false` for a test that only runs the CLI.
 */
export async function buildServer(label: string, { bundle = true } = {}): Promise<string> {
  const dir = path.join(ROOT, 'test-output', `${label}-${process.pid}-${randomBytes(4).toString('hex')}`);
  await promisify(execFile)(
    process.execPath,
    [
      path.join(ROOT, 'node_modules/typescript/bin/tsc'),
      '-p',
      path.join(ROOT, 'tsconfig.build.json'),
      '--noCheck',
      '--outDir',
      dir,
    ],
    { cwd: ROOT },
  );
  if (bundle) {
    // Without the runner's NODE_OPTIONS: the bundle's code cache is made with the build's V8 flags,
    // and the tests start the service without them.
    const { NODE_OPTIONS: _, ...env } = process.env;
    await promisify(execFile)(process.execPath, [path.join(dir, 'src/build/bundle.js')], { cwd: ROOT, env });
  }
  return dir;
}

/** The service as `npm start` runs it: the bundle of the build in `dir`. */
export const serviceEntry = (dir: string) => path.join(dir, 'src/bundle/main.js');

/** The same build's modules, unbundled (`dir/src/main.js`). */
export const unbundledEntry = (dir: string) => path.join(dir, 'src/main.js');
