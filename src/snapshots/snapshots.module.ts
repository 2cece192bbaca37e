import { Module } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { EventStoreModule } from '../event-store/event-store.module.js';
import { VersionTruthModule } from '../platform-truth/version-truth.module.js';
import { RolloutsModule } from '../rollouts/rollouts.module.js';
import { DriftRepository } from './drift.repository.js';
import { SnapshotsController } from './snapshots.controller.js';
import { DriftProjector, SnapshotsProjector } from './snapshots.projector.js';
import { SnapshotsRepository } from './snapshots.repository.js';
import { SnapshotsService } from './snapshots.service.js';

/** Shared-truth snapshots of the configured targets, and drift. */
@Module({
  imports: [ScheduleModule.forRoot(), EventStoreModule, RolloutsModule, VersionTruthModule],
  controllers: [SnapshotsController],
  providers: [SnapshotsService, SnapshotsRepository, DriftRepository, SnapshotsProjector, DriftProjector],
  exports: [SnapshotsService, SnapshotsRepository, DriftRepository, SnapshotsProjector, DriftProjector],
})
export class SnapshotsModule {}
