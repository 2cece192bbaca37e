import { Global, Module } from '@nestjs/common';
import { LedgerModule } from '../ledger/ledger.module.js';
import { RolloutSummaryProjector } from '../rollouts/rollout-summary.projector.js';
import { RolloutsModule } from '../rollouts/rollouts.module.js';
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
  imports: [LedgerModule, RolloutsModule],
  controllers: [ProjectionsController],
  providers: [
    ProjectionsService,
    {
      provide: PROJECTORS,
      inject: [RolloutSummaryProjector],
      useFactory: (...projectors: unknown[]) => projectors,
    },
  ],
  exports: [ProjectionsService],
})
export class ProjectionsModule {}
