import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module.js';
import { EventStoreModule } from '../event-store/event-store.module.js';
import { LedgerModule } from '../ledger/ledger.module.js';
import { ReportingModule } from '../reporting/reporting.module.js';
import { RolloutsModule } from '../rollouts/rollouts.module.js';
import { SnapshotsModule } from '../snapshots/snapshots.module.js';
import { ConsoleController } from './console.controller.js';
import { ConsoleService } from './console.service.js';

/** The auditor console at /console. */
@Module({
  imports: [AuthModule, EventStoreModule, LedgerModule, ReportingModule, RolloutsModule, SnapshotsModule],
  controllers: [ConsoleController],
  providers: [ConsoleService],
})
export class ConsoleModule {}
