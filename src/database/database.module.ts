import {
  type DynamicModule,
  Global,
  Inject,
  Logger,
  Module,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { type DatabaseHandle, openDatabase } from './database.js';
import { migrateToLatest } from './migrator.js';

export const DATABASE = Symbol('DATABASE');

/** Applies pending migrations; logs what it did. */
export async function migrateHandle(handle: DatabaseHandle, where: string): Promise<void> {
  const applied = await migrateToLatest(handle.db);
  new Logger('Database').log(
    `${where}: ${applied.length ? `applied ${applied.join(', ')}` : 'schema up to date'}`,
  );
}

/** Opens the configured database and applies pending migrations before anything else starts. */
export async function openMigratedDatabase(config: AppConfig): Promise<DatabaseHandle> {
  const handle = await openDatabase(config);
  try {
    await migrateHandle(
      handle,
      handle.kind === 'postgres' ? 'Postgres' : `embedded PGlite in ${config.dataDir}`,
    );
  } catch (err) {
    await handle.close().catch(() => {});
    throw err;
  }
  return handle;
}

@Global()
@Module({})
export class DatabaseModule implements OnApplicationShutdown {
  constructor(@Inject(DATABASE) private readonly handle: DatabaseHandle) {}

  /** With `handle`, uses that database (tests give each file its own) and migrates it. */
  static forRoot(handle?: DatabaseHandle): DynamicModule {
    return {
      module: DatabaseModule,
      providers: [
        {
          provide: DATABASE,
          inject: [APP_CONFIG],
          useFactory: async (config: AppConfig) => {
            if (!handle) return openMigratedDatabase(config);
            await migrateHandle(handle, 'given database');
            return handle;
          },
        },
      ],
      exports: [DATABASE],
    };
  }

  // Runs after Nest has closed the HTTP server, so in-flight requests finish first.
  async onApplicationShutdown(): Promise<void> {
    await this.handle.close();
  }
}
