import { Module } from '@nestjs/common';
import { EventStoreModule } from '../event-store/event-store.module.js';
import { LedgerModule } from '../ledger/ledger.module.js';
import { ExportsController } from './exports.controller.js';
import { LedgerExporter } from './ledger-export.js';
import { ReportsController } from './reports.controller.js';
import { ReportsRepository } from './reports.repository.js';
import { ReportsService } from './reports.service.js';

@Module({
  imports: [EventStoreModule, LedgerModule],
  controllers: [ReportsController, ExportsController],
  providers: [ReportsService, ReportsRepository, LedgerExporter],
  exports: [ReportsService],
})
export class ReportingModule {}
