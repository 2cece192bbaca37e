import {
  Body,
  Controller,
  ForbiddenException,
  Get,
  Header,
  Param,
  Post,
  Query,
  Req,
  Res,
  UseFilters,
} from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ApiKeysService } from '../auth/api-keys.service.js';
import { type AuthenticatedRequest, CurrentPrincipal, type Principal, Roles } from '../auth/principal.js';
import { Public } from '../auth/public.decorator.js';
import { RULE_IDS } from '../compliance/rule.js';
import {
  periodReportFile,
  type ReportFile,
  rolloutReportFile,
  sendReportFile,
} from '../reporting/report-files.js';
import { REPORT_FORMATS } from '../reporting/reports.service.js';
import { identifier } from '../rollouts/rollout.plan.js';
import { rolloutIdParam, STATUSES } from '../rollouts/rollouts.dto.js';
import { ConsoleExceptionFilter } from './console.filter.js';
import { ConsoleService } from './console.service.js';
import {
  compliancePage,
  driftPage,
  integrityPage,
  type PeriodFilterForm,
  rolloutPage,
  rolloutsPage,
  signInPage,
  VERDICT_FILTERS,
} from './pages.js';
import { CONSOLE_COOKIE, CONSOLE_ROLES, safeNext, sessionCookie } from './session.js';

/** An empty form field is no filter. */
const blank = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (v === '' ? undefined : v), schema.optional());
const date = z.iso.date();

const rolloutsQuery = z.strictObject({
  from: blank(date),
  to: blank(date),
  product: blank(identifier),
  environment: blank(identifier),
  status: blank(z.enum(STATUSES)),
  verdict: blank(z.enum(Object.keys(VERDICT_FILTERS) as [keyof typeof VERDICT_FILTERS])),
  rule: blank(z.enum(RULE_IDS)),
  cursor: blank(z.string().max(200)),
});

const periodQuery = z.strictObject({
  from: blank(date),
  to: blank(date),
  product: blank(identifier),
  environment: blank(identifier),
  asOf: blank(z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER)),
});

const signInBody = z.object({ key: z.string().min(1).max(512), next: z.string().max(2000).optional() });
const formatParam = z.enum(REPORT_FORMATS);
const asOfQuery = z.strictObject({
  asOf: blank(z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER)),
});

/**
 * A form POST from another site is refused, so no other page can sign a visitor in (or out) or
 * run anything behind their back. Browsers say where a request comes from: `Sec-Fetch-Site`
 * (every current browser), else `Origin` (which is "null" under our no-referrer policy, and then
 * proves nothing). Clients that send neither are not browsers, and SameSite=Strict already keeps
 * the cookie from cross-site requests.
 */
function assertSameOrigin(request: FastifyRequest): void {
  const site = request.headers['sec-fetch-site'];
  const origin = request.headers.origin;
  const foreign =
    site !== undefined
      ? site !== 'same-origin'
      : origin !== undefined && origin !== `${request.protocol}://${request.host}`;
  if (foreign) throw new ForbiddenException('this form may only be sent from the console itself');
}

const periodFilter = (form: PeriodFilterForm) => ({
  from: form.from ? `${form.from}T00:00:00.000Z` : null,
  to: form.to ? new Date(Date.parse(`${form.to}T00:00:00.000Z`) + 86_400_000).toISOString() : null,
  product: form.product ?? null,
  environment: form.environment ?? null,
});

/**
 * The auditor console: server-rendered pages behind the same keys as the API. Signing in puts
 * the key in an HttpOnly, SameSite=Strict session cookie that counts on /console only.
 * Everything works without JavaScript; the pages carry none.
 */
@ApiExcludeController()
@Controller('console')
@Roles(...CONSOLE_ROLES)
@UseFilters(ConsoleExceptionFilter)
export class ConsoleController {
  constructor(
    private readonly console: ConsoleService,
    private readonly keys: ApiKeysService,
  ) {}

  @Get()
  home(@Res() reply: FastifyReply): void {
    void reply.status(303).header('Location', '/console/rollouts').send();
  }

  @Public()
  @Get('sign-in')
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Cache-Control', 'no-store')
  signInForm(@Query('next') next: unknown): string {
    return signInPage(safeNext(next));
  }

  @Public()
  @Post('sign-in')
  async signIn(
    @Body({ schema: signInBody }) body: z.infer<typeof signInBody>,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    assertSameOrigin(request);
    const next = safeNext(body.next);
    const principal = await this.keys.authenticate(body.key.trim());
    const refuse = (status: number, message: string) =>
      void reply
        .status(status)
        .header('Content-Type', 'text/html; charset=utf-8')
        .send(signInPage(next, message));
    if (!principal) return refuse(401, 'That key is not valid: it is unknown, revoked or expired.');
    if (!CONSOLE_ROLES.includes(principal.role)) {
      return refuse(403, `The console is for auditors and admins; this key has the role ${principal.role}.`);
    }
    void reply
      .setCookie(CONSOLE_COOKIE, body.key.trim(), sessionCookie(request))
      .status(303)
      .header('Location', next)
      .send();
  }

  @Public()
  @Post('sign-out')
  signOut(@Req() request: FastifyRequest, @Res() reply: FastifyReply): void {
    assertSameOrigin(request);
    void reply
      .clearCookie(CONSOLE_COOKIE, sessionCookie(request))
      .status(303)
      .header('Location', '/console/sign-in')
      .send();
  }

  @Get('rollouts')
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Cache-Control', 'no-store')
  async rollouts(
    @Query({ schema: rolloutsQuery }) query: z.infer<typeof rolloutsQuery>,
    @CurrentPrincipal() principal: Principal,
  ): Promise<string> {
    const { cursor, ...filter } = query;
    const page = await this.console.listRollouts(filter, cursor);
    return rolloutsPage(principal, filter, page.rows, page.next, page.scannedOut);
  }

  @Get('rollouts/:id')
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Cache-Control', 'no-store')
  async rollout(
    @Param('id', { schema: rolloutIdParam }) id: string,
    @CurrentPrincipal() principal: Principal,
  ): Promise<string> {
    const report = await this.console.reports.rolloutReport(id);
    return rolloutPage(principal, report, await this.console.plan(id));
  }

  @Get('rollouts/:id/report/:format')
  async rolloutReport(
    @Param('id', { schema: rolloutIdParam }) id: string,
    @Param('format', { schema: formatParam }) format: (typeof REPORT_FORMATS)[number],
    @Query({ schema: asOfQuery }) query: z.infer<typeof asOfQuery>,
    @CurrentPrincipal() principal: Principal,
    @Req() req: AuthenticatedRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ReportFile['body']> {
    const report = await this.console.reports.rolloutReport(id, query.asOf);
    await this.console.reports.recordDownload(principal, String(req.id), {
      kind: 'rollout',
      rolloutId: id,
      format,
      position: report.basis.position,
      chainHead: report.basis.chainHead,
    });
    return sendReportFile(reply, await rolloutReportFile(report, format));
  }

  @Get('compliance')
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Cache-Control', 'no-store')
  async compliance(
    @Query({ schema: periodQuery }) query: z.infer<typeof periodQuery>,
    @CurrentPrincipal() principal: Principal,
  ): Promise<string> {
    const { asOf, ...form } = query;
    const report = await this.console.reports.periodReport(periodFilter(form), asOf);
    return compliancePage(principal, form, report);
  }

  @Get('compliance/report/:format')
  async complianceReport(
    @Param('format', { schema: formatParam }) format: (typeof REPORT_FORMATS)[number],
    @Query({ schema: periodQuery }) query: z.infer<typeof periodQuery>,
    @CurrentPrincipal() principal: Principal,
    @Req() req: AuthenticatedRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ReportFile['body']> {
    const { asOf, ...form } = query;
    const filter = periodFilter(form);
    const report = await this.console.reports.periodReport(filter, asOf);
    await this.console.reports.recordDownload(principal, String(req.id), {
      kind: 'compliance',
      filter,
      format,
      position: report.basis.position,
      chainHead: report.basis.chainHead,
    });
    return sendReportFile(reply, await periodReportFile(report, format));
  }

  @Get('integrity')
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Cache-Control', 'no-store')
  async integrity(@CurrentPrincipal() principal: Principal): Promise<string> {
    return integrityPage(principal, await this.console.integrity());
  }

  @Post('integrity/verify')
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Cache-Control', 'no-store')
  async verify(@CurrentPrincipal() principal: Principal, @Req() request: FastifyRequest): Promise<string> {
    assertSameOrigin(request);
    const result = await this.console.verify();
    return integrityPage(principal, await this.console.integrity(result));
  }

  @Get('drift')
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Cache-Control', 'no-store')
  async drift(@CurrentPrincipal() principal: Principal): Promise<string> {
    return driftPage(principal, await this.console.driftView());
  }
}
