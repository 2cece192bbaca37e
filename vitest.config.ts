import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

// Tiers by suffix: *.spec.ts is pure, *.int.spec.ts talks to a real database, *.e2e.spec.ts
// drives the whole app over HTTP, *.browser.spec.ts drives it from headless Chromium, and
// *.fault.spec.ts (npm run test:faults, run by CI after npm test) kills and restores the built
// service. The database tiers run on embedded PGlite, or on the Postgres named by DATABASE_URL.
const swcPlugin = swc.vite({ module: { type: 'es6' } });

// Each tier's results also go to test-output/ as JSON, so .ci/run can print one closing count.
const backend = process.env.DATABASE_URL ? 'postgres' : 'pglite';
const runName = (process.env.npm_lifecycle_event ?? 'vitest').replace(/[^\w-]/g, '-');

export default defineConfig({
  plugins: [swcPlugin],
  test: {
    reporters: ['default', 'json'],
    outputFile: { json: `test-output/${runName}-${backend}.json` },
    projects: [
      {
        plugins: [swcPlugin],
        test: {
          name: 'unit',
          include: ['test/unit/**/*.spec.ts'],
          testTimeout: 30_000,
        },
      },
      {
        plugins: [swcPlugin],
        test: {
          name: 'int',
          include: ['test/integration/**/*.int.spec.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        plugins: [swcPlugin],
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.e2e.spec.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        plugins: [swcPlugin],
        test: {
          name: 'browser',
          include: ['test/browser/**/*.browser.spec.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // One Chromium at a time is plenty on a two-core machine.
          fileParallelism: false,
        },
      },
      {
        plugins: [swcPlugin],
        test: {
          name: 'faults',
          include: ['test/faults/**/*.fault.spec.ts'],
          globalSetup: ['test/faults/global-setup.ts'],
          testTimeout: 300_000,
          hookTimeout: 180_000,
          // Each file runs the real server under load: one at a time on a two-core machine.
          fileParallelism: false,
        },
      },
    ],
  },
});
