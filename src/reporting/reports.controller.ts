import { Controller, ForbiddenException, Get, Headers, Param, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { type AuthenticatedRequest, CurrentPrincipal, type Principal, Roles } from '../auth/principal.js';
import { canonicalJson } from '../ledger/hashing.js';
import { identifier } from '../rollouts/rollout.plan.js';
import { rolloutIdParam } from '../rollouts/rollouts.dto.js';
import { type ReportFormat, ReportsService } from './reports.service.js';
import { periodReportCsv, rolloutReportCsv } from './rollout-report.csv.js';

const periodQuery = z
  .strictObject({
    from: z.iso.datetime({ offset: true }).optional(),
    to: z.iso.datetime({ offset: true }).optional(),
    product: identifier.optional(),
    environment: identifier.optional(),
    format: z.enum(['json', 'csv']).optional(),
    asOf: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  })
  .refine((q) => !q.from || !q.to || Date.parse(q.from) < Date.parse(q.to), {
    message: 'must be after from',
    path: ['to'],
  });

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

  @Get('compliance')
  @Roles('auditor')
  @ApiOperation({
    summary:
      'Compliance over a period: every rollout planned in [from, to), the rate per rule and per product, failures, rollbacks and time to recover, compliance per day. JSON or CSV (one row per rollout).',
  })
  async compliance(
    @Query({ schema: periodQuery }) query: z.infer<typeof periodQuery>,
    @Headers('accept') accept: string | undefined,
    @CurrentPrincipal() principal: Principal,
    @Req() req: AuthenticatedRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<string> {
    const format = negotiate(query.format, accept);
    const filter = {
      from: query.from ? new Date(query.from).toISOString() : null,
      to: query.to ? new Date(query.to).toISOString() : null,
      product: query.product ?? null,
      environment: query.environment ?? null,
    };
    const report = await this.reports.periodReport(filter, query.asOf);
    await this.reports.recordDownload(principal, String(req.id), {
      kind: 'compliance',
      filter,
      format,
      position: report.basis.position,
      chainHead: report.basis.chainHead,
    });
    this.headers(reply, report.basis);
    if (format === 'csv') {
      void reply
        .header('Content-Type', 'text/csv; charset=utf-8; header=present')
        .header('Content-Disposition', `attachment; filename="compliance-at-${report.basis.position}.csv"`);
      return periodReportCsv(report);
    }
    void reply.header('Content-Type', 'application/json; charset=utf-8');
    return canonicalJson(report);
  }

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
    this.headers(reply, report.basis);
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

  /** The generation time travels here, never in the body, so the body stays deterministic. */
  private headers(reply: FastifyReply, basis: { position: number; chainHead: string }): void {
    void reply
      .header('X-Generated-At', new Date().toISOString())
      .header('X-Ledger-Position', String(basis.position))
      .header('X-Chain-Head', basis.chainHead)
      .header('Cache-Control', 'no-store');
  }
}
