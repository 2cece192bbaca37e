import 'reflect-metadata';
import { createPinoLogger } from './common/logger.js';
import { ConfigError, loadConfig } from './config/config.js';
import { preopenPGlite } from './database/preopen.js';

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`upgrade-ledger: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createPinoLogger(config.logLevel);
  // The embedded database opens while the application's modules load (see preopen.ts): the
  // modules are imported only now, after it has started.
  if (config.database.kind === 'pglite') preopenPGlite(config.database.dataDir);
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

void main();
