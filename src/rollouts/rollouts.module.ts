import { Module } from '@nestjs/common';
import { EventStoreModule } from '../event-store/event-store.module.js';
import { RolloutSummaryProjector } from './rollout-summary.projector.js';
import { RolloutsController } from './rollouts.controller.js';
import { RolloutsRepository } from './rollouts.repository.js';
import { RolloutsService } from './rollouts.service.js';

@Module({
  imports: [EventStoreModule],
  controllers: [RolloutsController],
  providers: [RolloutsService, RolloutsRepository, RolloutSummaryProjector],
  exports: [RolloutsService, RolloutsRepository, RolloutSummaryProjector],
})
export class RolloutsModule {}
