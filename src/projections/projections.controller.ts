import { Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { Roles } from '../auth/principal.js';
import { ProjectionsService } from './projections.service.js';

const projectionName = z.string().regex(/^[a-z][a-z0-9-]{0,49}$/, 'must be a projection name');

@ApiTags('operations')
@ApiBearerAuth()
@Roles('admin')
@Controller('api/v1/admin/projections')
export class ProjectionsController {
  constructor(private readonly projections: ProjectionsService) {}

  @Get()
  @ApiOperation({ summary: 'Each projection version: position, lag behind the ledger, whether it is served' })
  async status() {
    return { projections: await this.projections.status() };
  }

  @Post(':name/rebuild')
  @HttpCode(202)
  @ApiOperation({ summary: 'Build the next version beside the served one; it is swapped in when caught up' })
  rebuild(@Param('name', { schema: projectionName }) name: string) {
    return this.projections.rebuild(name);
  }
}
