import { Module } from '@nestjs/common';
import { LedgerModule } from '../ledger/ledger.module.js';
import { RolloutsModule } from '../rollouts/rollouts.module.js';
import { SnapshotsModule } from '../snapshots/snapshots.module.js';
import { PlatformTruthController } from './platform-truth.controller.js';
import { PlatformTruthRepository } from './platform-truth.repository.js';
import { PlatformTruthService } from './platform-truth.service.js';
import { VersionTruthModule } from './version-truth.module.js';

/** The four shared-truth surfaces of the service itself. */
@Module({
  imports: [LedgerModule, RolloutsModule, SnapshotsModule, VersionTruthModule],
  controllers: [PlatformTruthController],
  providers: [PlatformTruthService, PlatformTruthRepository],
})
export class PlatformTruthModule {}
