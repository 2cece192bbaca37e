import { type DynamicModule, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { AuthGuard } from './auth/auth.guard.js';
import { AuthModule } from './auth/auth.module.js';
import type { AppConfig } from './config/config.js';
import { ConfigModule } from './config/config.module.js';
import { ConsoleModule } from './console/console.module.js';
import type { DatabaseHandle } from './database/database.js';
import { DatabaseModule } from './database/database.module.js';
import { EventStoreModule } from './event-store/event-store.module.js';
import { HealthModule } from './health/health.module.js';
import { IngestModule } from './ingest/ingest.module.js';
import { LedgerModule } from './ledger/ledger.module.js';
import { MetricsModule } from './metrics/metrics.module.js';
import { PlatformTruthModule } from './platform-truth/platform-truth.module.js';
import { ProjectionStoreModule, ProjectionsModule } from './projections/projections.module.js';
import { ReportingModule } from './reporting/reporting.module.js';
import { RolloutsModule } from './rollouts/rollouts.module.js';
import { SnapshotsModule } from './snapshots/snapshots.module.js';

export interface AppOptions {
  config: AppConfig;
  /** An already-open database (tests); otherwise the configured one is opened. */
  database?: DatabaseHandle;
}

@Module({})
export class AppModule {
  static forRoot({ config, database }: AppOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        DatabaseModule.forRoot(database),
        MetricsModule,
        AuthModule,
        EventStoreModule,
        LedgerModule,
        ProjectionStoreModule,
        RolloutsModule,
        IngestModule,
        ProjectionsModule,
        ReportingModule,
        SnapshotsModule,
        PlatformTruthModule,
        HealthModule,
        ConsoleModule,
      ],
      providers: [{ provide: APP_GUARD, useClass: AuthGuard }],
    };
  }
}
