import { Module } from '@nestjs/common';
import { VersionTruthProjector } from './version-truth.projector.js';
import { VersionTruthRepository } from './version-truth.repository.js';

/** The ledger's version truth (read model and projector), shared by snapshots and the surfaces. */
@Module({
  providers: [VersionTruthRepository, VersionTruthProjector],
  exports: [VersionTruthRepository, VersionTruthProjector],
})
export class VersionTruthModule {}
