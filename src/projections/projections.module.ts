import { Global, Module } from '@nestjs/common';
import { LedgerModule } from '../ledger/ledger.module.js';
import { VersionTruthModule } from '../platform-truth/version-truth.module.js';
import { VersionTruthProjector } from '../platform-truth/version-truth.projector.js';
import { RolloutSummaryProjector } from '../rollouts/rollout-summary.projector.js';
import { RolloutsModule } from '../rollouts/rollouts.module.js';
import { SnapshotsModule } from '../snapshots/snapshots.module.js';
import { DriftProjector, SnapshotsProjector } from '../snapshots/snapshots.projector.js';
import { PROJECTORS } from './projection.types.js';
import { ProjectionsController } from './projections.controller.js';
import { ProjectionsRepository } from './projections.repository.js';
import { ProjectionsService } from './projections.service.js';

/** Checkpoint storage, shared by every module that owns a read model. */
@Global()
@Module({ providers: [ProjectionsRepository], exports: [ProjectionsRepository] })
export class ProjectionStoreModule {}

/** The runner of every projector. */
@Module({
  imports: [LedgerModule, RolloutsModule, SnapshotsModule, VersionTruthModule],
  controllers: [ProjectionsController],
  providers: [
    ProjectionsService,
    {
      provide: PROJECTORS,
      inject: [RolloutSummaryProjector, SnapshotsProjector, DriftProjector, VersionTruthProjector],
      useFactory: (...projectors: unknown[]) => projectors,
    },
  ],
  exports: [ProjectionsService],
})
export class ProjectionsModule {}
