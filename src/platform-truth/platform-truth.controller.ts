import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { PlatformTruthService } from './platform-truth.service.js';

/**
 * The service's own shared-truth and readiness surfaces (the same four a platform serves), each
 * `{ ready, reasons, … }`. Always 200: `ready` is the verdict, the reasons say why.
 */
@ApiTags('platform-truth')
@ApiBearerAuth()
@Controller('api/v1')
export class PlatformTruthController {
  constructor(private readonly truth: PlatformTruthService) {}

  @Get('platform/version-truth')
  @ApiOperation({
    summary: 'Per product and environment, the version last verified by a completed rollout, and where',
  })
  versionTruth() {
    return this.truth.versionTruth();
  }

  @Get('contracts/drift')
  @ApiOperation({ summary: "Open drift between the ledger's truth and the latest snapshots" })
  contractsDrift() {
    return this.truth.contractsDrift();
  }

  @Get('observability/readiness')
  @ApiOperation({ summary: 'Database, sequencer and projection lag, snapshot freshness per target' })
  observability() {
    return this.truth.observabilityReadiness();
  }

  @Get('recovery/readiness')
  @ApiOperation({
    summary:
      'The ledger verifies to its head, the latest checkpoint is signed and fresh, in-flight rollouts declare a rollback boundary',
  })
  recovery() {
    return this.truth.recoveryReadiness();
  }
}
