import { Controller, ForbiddenException, Get, Headers, Param, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { type AuthenticatedRequest, CurrentPrincipal, type Principal, Roles } from '../auth/principal.js';
import { canonicalJson } from '../ledger/hashing.js';
import { rolloutIdParam } from '../rollouts/rollouts.dto.js';
import { type ReportFormat, ReportsService } from './reports.service.js';
import { rolloutReportCsv } from './rollout-report.csv.js';

const reportQuery = z.strictObject({
  format: z.enum(['json', 'csv']).optional(),
  asOf: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
});

/** `format` wins; otherwise the Accept header; JSON by default. */
function negotiate(format: ReportFormat | undefined, accept: string | undefined): ReportFormat {
  if (format) return format;
  return accept && /\btext\/csv\b/.test(accept) && !/application\/json/.test(accept) ? 'csv' : 'json';
}

@ApiTags('reports')
@ApiBearerAuth()
@Controller('api/v1/reports')
export class ReportsController {
  constructor(private readonly reports: ReportsService) {}

  @Get('rollouts/:id')
  @Roles('auditor', 'engineer')
  @ApiOperation({
    summary:
      "A rollout's compliance report: each rule's verdict with its evidence, the step timeline, readbacks before and after, rollbacks, actors. States the ledger position and chain head it was built from. JSON or CSV; byte-identical for a given asOf.",
  })
  async rollout(
    @Param('id', { schema: rolloutIdParam }) id: string,
    @Query({ schema: reportQuery }) query: z.infer<typeof reportQuery>,
    @Headers('accept') accept: string | undefined,
    @CurrentPrincipal() principal: Principal,
    @Req() req: AuthenticatedRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<string> {
    if (principal.role === 'engineer' && (await this.reports.creatorOf(id)) !== principal.id) {
      throw new ForbiddenException('an engineer key may read the reports of the rollouts it recorded only');
    }
    const format = negotiate(query.format, accept);
    const report = await this.reports.rolloutReport(id, query.asOf);
    await this.reports.recordDownload(principal, String(req.id), {
      kind: 'rollout',
      rolloutId: id,
      format,
      position: report.basis.position,
      chainHead: report.basis.chainHead,
    });
    void reply
      .header('X-Generated-At', new Date().toISOString())
      .header('X-Ledger-Position', String(report.basis.position))
      .header('X-Chain-Head', report.basis.chainHead)
      .header('Cache-Control', 'no-store');
    if (format === 'csv') {
      void reply
        .header('Content-Type', 'text/csv; charset=utf-8; header=present')
        .header(
          'Content-Disposition',
          `attachment; filename="rollout-${id}-at-${report.basis.position}.csv"`,
        );
      return rolloutReportCsv(report);
    }
    void reply.header('Content-Type', 'application/json; charset=utf-8');
    // Canonical JSON: the same report is the same bytes, whenever and wherever it is generated.
    return canonicalJson(report);
  }
}
