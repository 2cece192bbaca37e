import {
  Controller,
  ForbiddenException,
  Get,
  Headers,
  NotAcceptableException,
  Param,
  Query,
  Req,
  Res,
} from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { type AuthenticatedRequest, CurrentPrincipal, type Principal, Roles } from '../auth/principal.js';
import { identifier } from '../rollouts/rollout.plan.js';
import { rolloutIdParam } from '../rollouts/rollouts.dto.js';
import { periodReportFile, type ReportFile, rolloutReportFile, sendReportFile } from './report-files.js';
import { REPORT_FORMATS, type ReportFormat, ReportsService } from './reports.service.js';

const periodQuery = z
  .strictObject({
    from: z.iso.datetime({ offset: true }).optional(),
    to: z.iso.datetime({ offset: true }).optional(),
    product: identifier.optional(),
    environment: identifier.optional(),
    format: z.enum(REPORT_FORMATS).optional(),
    asOf: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  })
  .refine((q) => !q.from || !q.to || Date.parse(q.from) < Date.parse(q.to), {
    message: 'must be after from',
    path: ['to'],
  });

const reportQuery = z.strictObject({
  format: z.enum(REPORT_FORMATS).optional(),
  asOf: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
});

const MEDIA_TYPES: Record<string, ReportFormat> = {
  'application/json': 'json',
  'text/csv': 'csv',
  'text/html': 'html',
  'application/pdf': 'pdf',
};

/**
 * `format` wins; otherwise the most preferred media type of the Accept header that a report comes
 * in (by q, then by order); JSON for no Accept or any wildcard. An Accept that names only other
 * types is a 406 listing the ones on offer.
 */
export function negotiate(format: ReportFormat | undefined, accept: string | undefined): ReportFormat {
  if (format) return format;
  if (!accept?.trim()) return 'json';
  const ranges = accept
    .split(',')
    .map((part, order) => {
      const [type = '', ...params] = part.split(';').map((p) => p.trim().toLowerCase());
      const q = Number(params.find((p) => p.startsWith('q='))?.slice(2) ?? '1');
      return { type, q: Number.isFinite(q) ? q : 0, order };
    })
    .filter((r) => r.q > 0)
    .sort((a, b) => b.q - a.q || a.order - b.order);
  for (const { type } of ranges) {
    const known = MEDIA_TYPES[type];
    if (known) return known;
    if (type === '*/*' || type === 'application/*') return 'json';
    if (type === 'text/*') return 'html';
  }
  throw new NotAcceptableException(
    `reports come as ${Object.keys(MEDIA_TYPES).join(', ')} (or ?format=${REPORT_FORMATS.join('|')})`,
  );
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
      'Compliance over a period: every rollout planned in [from, to), the rate per rule and per product, failures, rollbacks and time to recover, compliance per day. JSON, CSV (one row per rollout), HTML or PDF (with charts of compliance over time and per rule).',
  })
  async compliance(
    @Query({ schema: periodQuery }) query: z.infer<typeof periodQuery>,
    @Headers('accept') accept: string | undefined,
    @CurrentPrincipal() principal: Principal,
    @Req() req: AuthenticatedRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ReportFile['body']> {
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
    return sendReportFile(reply, await periodReportFile(report, format));
  }

  @Get('rollouts/:id')
  @Roles('auditor', 'engineer')
  @ApiOperation({
    summary:
      "A rollout's compliance report: each rule's verdict with its evidence, the step timeline, readbacks before and after, rollbacks, actors. States the ledger position and chain head it was built from. JSON, CSV, HTML or PDF (with the step timeline drawn); JSON and CSV are byte-identical for a given asOf.",
  })
  async rollout(
    @Param('id', { schema: rolloutIdParam }) id: string,
    @Query({ schema: reportQuery }) query: z.infer<typeof reportQuery>,
    @Headers('accept') accept: string | undefined,
    @CurrentPrincipal() principal: Principal,
    @Req() req: AuthenticatedRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ReportFile['body']> {
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
    return sendReportFile(reply, await rolloutReportFile(report, format));
  }
}
