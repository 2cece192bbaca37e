import { existsSync } from 'node:fs';
import path from 'node:path';
import { holdingEventLoop } from './common/event-loop.js';
import { setModuleImporter } from './common/module-import.js';
import { discardPreopened, pgliteDir, preopenPGlite } from './database/preopen.js';

/**
 * The data directory the configuration will name, read ahead of it from the environment as
 * config.ts reads it (an empty value is unset), when it already holds a database: reopening
 * starts before even the configuration's modules load. A new directory waits for a valid
 * configuration, so that a bad one never leaves a half-created database behind.
 */
function existingDataDir(): string | undefined {
  if (process.env.DATABASE_URL) return undefined;
  const dataDir = process.env.DATA_DIR || './data';
  return existsSync(path.join(pgliteDir(dataDir), 'PG_VERSION')) ? dataDir : undefined;
}

// The bundle's loader sets how the migrations are imported (see module-import.ts).
export { setModuleImporter };

async function main(): Promise<void> {
  // The embedded database opens while the application's modules load (see preopen.ts): every
  // other module is imported only after it has started.
  const early = existingDataDir();
  if (early) preopenPGlite(early);
  const [, { createPinoLogger }, { ConfigError, loadConfig }] = await Promise.all([
    import('reflect-metadata'),
    import('./common/logger.js'),
    import('./config/config.js'),
  ]);
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`upgrade-ledger: ${err.message}\n`);
      // Let an embedded database opened ahead finish opening and close it, before exiting.
      if (early) await discardPreopened(early);
      process.exit(2);
    }
    throw err;
  }
  const logger = createPinoLogger(config.logLevel);
  if (config.database.kind === 'pglite') preopenPGlite(config.database.dataDir);
  // The application itself, imported once the configuration is known to be valid.
  const [{ createApp }, { RestoredDatabaseError }] = await Promise.all([
    import('./app.js'),
    import('./ledger/sequencer.service.js'),
  ]);
  try {
    const app = await createApp({ config, logger });
    // SIGTERM/SIGINT: stop taking requests, let in-flight ones finish, then close the database.
    app.enableShutdownHooks(['SIGTERM', 'SIGINT']);
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        // If draining hangs (a client that never finishes), exit anyway after the grace period.
        setTimeout(() => {
          logger.warn({ signal }, 'shutdown grace period over: exiting');
          process.exit(1);
        }, config.shutdownTimeoutMs).unref();
      });
    }
    await app.listen({ port: config.port, host: config.host });
    // The port really bound (PORT=0 asks the OS for a free one).
    const address = app.getHttpServer().address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    logger.info(
      { port, host: config.host, database: config.database.kind },
      `upgrade-ledger listening on http://${config.host}:${port}`,
    );
  } catch (err) {
    if (err instanceof RestoredDatabaseError) {
      process.stderr.write(`upgrade-ledger: refusing to start.\n${err.message}\n`);
      process.exit(3);
    }
    logger.fatal({ err }, 'upgrade-ledger failed to start');
    process.exit(1);
  }
}

/**
 * Starts the service: reads the configuration, opens the database, listens. With the event loop
 * held open until it listens (see event-loop.ts): the start must not wait for V8's background
 * compiles.
 */
export const start = (): Promise<void> => holdingEventLoop(main);
