import { Readable } from 'node:stream';
import { Controller, Get, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { type AuthenticatedRequest, CurrentPrincipal, type Principal, Roles } from '../auth/principal.js';
import { LedgerExporter } from './ledger-export.js';
import { ReportsService } from './reports.service.js';

const position = z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

const exportQuery = z.strictObject({
  from: position.optional().describe('First ledger position (default 1)'),
  to: position.optional().describe('Last ledger position (default and at most: the head now)'),
  format: z.enum(['ndjson', 'csv']).default('ndjson'),
});

@ApiTags('exports')
@ApiBearerAuth()
@Controller('api/v1/exports')
export class ExportsController {
  constructor(
    private readonly exporter: LedgerExporter,
    private readonly reports: ReportsService,
  ) {}

  @Get('ledger')
  @Roles('auditor')
  @ApiOperation({
    summary:
      'A range of the ledger, streamed: NDJSON with every entry and its hashes, the signed checkpoints of the range and the public keys (verify it offline with `npx upgrade-ledger verify`), or CSV with one row per entry. Constant memory at any size.',
  })
  async ledger(
    @Query({ schema: exportQuery }) query: z.infer<typeof exportQuery>,
    @CurrentPrincipal() principal: Principal,
    @Req() req: AuthenticatedRequest,
    @Res() reply: FastifyReply,
  ): Promise<FastifyReply> {
    const range = await this.exporter.range(query.from, query.to);
    await this.reports.recordDownload(principal, String(req.id), {
      kind: 'ledger-export',
      format: query.format,
      from: range.from,
      to: range.to,
      position: range.head.position,
      chainHead: range.head.hash,
    });
    const name = `ledger-${range.from}-${range.to}`;
    void reply
      .header('X-Generated-At', new Date().toISOString())
      .header('X-Ledger-Position', String(range.head.position))
      .header('X-Chain-Head', range.head.hash)
      .header('Cache-Control', 'no-store');
    if (query.format === 'csv') {
      void reply
        .header('Content-Type', 'text/csv; charset=utf-8; header=present')
        .header('Content-Disposition', `attachment; filename="${name}.csv"`);
      return reply.send(Readable.from(this.exporter.csv(range)));
    }
    void reply
      .header('Content-Type', 'application/x-ndjson; charset=utf-8')
      .header('Content-Disposition', `attachment; filename="${name}.ndjson"`);
    return reply.send(Readable.from(this.exporter.ndjson(range)));
  }
}
