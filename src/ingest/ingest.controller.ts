import {
  BadRequestException,
  Body,
  Controller,
  Get,
  HttpCode,
  Param,
  Post,
  Query,
  Req,
} from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiConsumes, ApiOperation, ApiTags } from '@nestjs/swagger';
import { type AuthenticatedRequest, CurrentPrincipal, type Principal, Roles } from '../auth/principal.js';
import { BATCH_TYPE, readCloudEvents, STRUCTURED_TYPE } from './cdevents/cloudevent.js';
import {
  type AttachBody,
  attachBody,
  type UnattributedQuery,
  unattributedIdParam,
  unattributedQuery,
} from './ingest.dto.js';
import { IngestService } from './ingest.service.js';

/** CDEvents over CloudEvents from delivery tools, and the events that matched no rollout. */
@ApiTags('ingest')
@ApiBearerAuth()
@Controller('api/v1/ingest')
export class IngestController {
  constructor(private readonly ingest: IngestService) {}

  @Post('cloudevents')
  @HttpCode(202)
  @Roles('ingest')
  @ApiConsumes('application/json', STRUCTURED_TYPE, BATCH_TYPE)
  @ApiBody({
    description:
      'Binary mode: the CDEvent, with the CloudEvent attributes as ce-* headers (ce-rolloutid names the ' +
      'rollout). Structured mode: the CloudEvent as JSON. Batch mode: a JSON array of CloudEvents. See docs/ingest.md.',
  })
  @ApiOperation({
    summary:
      'Record CDEvents sent as CloudEvents 1.0 (binary, structured or batch mode); 202 with what each recorded',
  })
  async receive(@Req() req: AuthenticatedRequest, @CurrentPrincipal() principal: Principal) {
    const read = readCloudEvents({ headers: req.headers, body: req.body });
    if (!read.ok) throw new BadRequestException(read.issues.map((i) => `${i.field}: ${i.message}`));
    const events = await this.ingest.ingest(read.events, { principal, requestId: String(req.id) });
    return { events };
  }

  @Get('unattributed')
  @ApiOperation({ summary: 'CloudEvents that matched no rollout, oldest first, with any attachment' })
  unattributed(@Query({ schema: unattributedQuery }) query: UnattributedQuery) {
    return this.ingest.unattributed(query);
  }

  @Post('unattributed/:id/attach')
  @HttpCode(200)
  @Roles('engineer')
  @ApiOperation({
    summary: "Attach an unattributed CloudEvent to a rollout: its fact goes on the rollout's record",
  })
  attach(
    @Param('id', { schema: unattributedIdParam }) id: string,
    @Body({ schema: attachBody }) body: AttachBody,
    @Req() req: AuthenticatedRequest,
    @CurrentPrincipal() principal: Principal,
  ) {
    return this.ingest.attach(id, body.rolloutId, body.note, { principal, requestId: String(req.id) });
  }
}
