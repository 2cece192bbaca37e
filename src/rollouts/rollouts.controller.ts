import {
  BadRequestException,
  Body,
  Controller,
  Get,
  HttpCode,
  Param,
  Post,
  Put,
  Query,
  Req,
  Res,
} from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { type AuthenticatedRequest, CurrentPrincipal, type Principal, Roles } from '../auth/principal.js';
import type { RolloutCommand } from './rollout.decide.js';
import type { Plan } from './rollout.plan.js';
import {
  abortBody,
  approvalBody,
  asOfQuery,
  decodeCursor,
  emptyBody,
  encodeCursor,
  IDEMPOTENCY_KEY,
  type ListQuery,
  listQuery,
  parseIfMatch,
  pathVerificationBody,
  planSchema,
  readbackBody,
  rollbackBody,
  rolloutIdParam,
  stepFailBody,
  stepIdParam,
} from './rollouts.dto.js';
import { RolloutsService, requestDigest, type WriteContext, type WriteResult } from './rollouts.service.js';

const BASE = '/api/v1/rollouts';

type Reply = FastifyReply;

@ApiTags('rollouts')
@ApiBearerAuth()
@Controller('api/v1/rollouts')
export class RolloutsController {
  constructor(private readonly rollouts: RolloutsService) {}

  @Post()
  @Roles('engineer')
  @ApiOperation({ summary: 'Record a rollout plan. Every part may be missing; present parts are validated.' })
  async create(
    @Body({ schema: planSchema }) plan: Plan,
    @Req() req: AuthenticatedRequest,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) reply: Reply,
  ) {
    const result = await this.rollouts.create(plan, this.context(req, principal, plan));
    void reply.header('Location', `${BASE}/${result.id}`);
    return this.answer(reply, result);
  }

  @Put(':id/plan')
  @HttpCode(200)
  @Roles('engineer')
  @ApiOperation({ summary: 'Revise the plan (only before the start)' })
  revise(
    @Param('id', { schema: rolloutIdParam }) id: string,
    @Body({ schema: planSchema }) plan: Plan,
    @Req() req: AuthenticatedRequest,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) reply: Reply,
  ) {
    return this.run(id, { type: 'RevisePlan', plan }, req, principal, plan, reply);
  }

  @Post(':id/approvals')
  @HttpCode(200)
  @Roles('engineer')
  @ApiOperation({ summary: 'Approve the plan (the approver is the calling key)' })
  approve(
    @Param('id', { schema: rolloutIdParam }) id: string,
    @Body({ schema: approvalBody }) body: { comment?: string } | undefined,
    @Req() req: AuthenticatedRequest,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) reply: Reply,
  ) {
    const command: RolloutCommand = { type: 'ApprovePlan', approver: principal.name, comment: body?.comment };
    return this.run(id, command, req, principal, body, reply);
  }

  @Post(':id/readbacks')
  @HttpCode(200)
  @Roles('engineer')
  @ApiOperation({ summary: 'Record a readback of a shared-truth or readiness surface (pre, during or post)' })
  readback(
    @Param('id', { schema: rolloutIdParam }) id: string,
    @Body({ schema: readbackBody }) body: Omit<RolloutCommand & { type: 'RecordReadback' }, 'type'>,
    @Req() req: AuthenticatedRequest,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) reply: Reply,
  ) {
    return this.run(id, { type: 'RecordReadback', ...body }, req, principal, body, reply);
  }

  @Post(':id/start')
  @HttpCode(200)
  @Roles('engineer')
  @ApiOperation({ summary: 'Start the rollout' })
  start(
    @Param('id', { schema: rolloutIdParam }) id: string,
    @Body({ schema: emptyBody }) body: object | undefined,
    @Req() req: AuthenticatedRequest,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) reply: Reply,
  ) {
    return this.run(id, { type: 'StartRollout' }, req, principal, body, reply);
  }

  @Post(':id/steps/:stepId/start')
  @HttpCode(200)
  @Roles('engineer')
  @ApiOperation({ summary: 'A step started (an unplanned step is recorded, and flagged by the rulebook)' })
  startStep(
    @Param('id', { schema: rolloutIdParam }) id: string,
    @Param('stepId', { schema: stepIdParam }) stepId: string,
    @Body({ schema: emptyBody }) body: object | undefined,
    @Req() req: AuthenticatedRequest,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) reply: Reply,
  ) {
    return this.run(id, { type: 'StartStep', stepId }, req, principal, body, reply);
  }

  @Post(':id/steps/:stepId/complete')
  @HttpCode(200)
  @Roles('engineer')
  @ApiOperation({ summary: 'A running step completed' })
  completeStep(
    @Param('id', { schema: rolloutIdParam }) id: string,
    @Param('stepId', { schema: stepIdParam }) stepId: string,
    @Body({ schema: emptyBody }) body: object | undefined,
    @Req() req: AuthenticatedRequest,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) reply: Reply,
  ) {
    return this.run(id, { type: 'CompleteStep', stepId }, req, principal, body, reply);
  }

  @Post(':id/steps/:stepId/fail')
  @HttpCode(200)
  @Roles('engineer')
  @ApiOperation({ summary: 'A running step failed' })
  failStep(
    @Param('id', { schema: rolloutIdParam }) id: string,
    @Param('stepId', { schema: stepIdParam }) stepId: string,
    @Body({ schema: stepFailBody }) body: { reason: string },
    @Req() req: AuthenticatedRequest,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) reply: Reply,
  ) {
    return this.run(id, { type: 'FailStep', stepId, reason: body.reason }, req, principal, body, reply);
  }

  @Post(':id/path-verifications')
  @HttpCode(200)
  @Roles('engineer')
  @ApiOperation({ summary: 'A representative user or operator path was exercised' })
  verifyPath(
    @Param('id', { schema: rolloutIdParam }) id: string,
    @Body({ schema: pathVerificationBody }) body: {
      path: string;
      verdict: 'pass' | 'fail';
      evidence?: string;
    },
    @Req() req: AuthenticatedRequest,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) reply: Reply,
  ) {
    return this.run(id, { type: 'VerifyPath', ...body }, req, principal, body, reply);
  }

  @Post(':id/rollbacks')
  @HttpCode(200)
  @Roles('engineer')
  @ApiOperation({ summary: 'A rollback started' })
  rollback(
    @Param('id', { schema: rolloutIdParam }) id: string,
    @Body({ schema: rollbackBody }) body: { reason: string; toStepId?: string },
    @Req() req: AuthenticatedRequest,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) reply: Reply,
  ) {
    return this.run(id, { type: 'StartRollback', ...body }, req, principal, body, reply);
  }

  @Post(':id/rollbacks/complete')
  @HttpCode(200)
  @Roles('engineer')
  @ApiOperation({ summary: 'The rollback under way completed' })
  completeRollback(
    @Param('id', { schema: rolloutIdParam }) id: string,
    @Body({ schema: emptyBody }) body: object | undefined,
    @Req() req: AuthenticatedRequest,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) reply: Reply,
  ) {
    return this.run(id, { type: 'CompleteRollback' }, req, principal, body, reply);
  }

  @Post(':id/complete')
  @HttpCode(200)
  @Roles('engineer')
  @ApiOperation({ summary: 'The rollout completed' })
  complete(
    @Param('id', { schema: rolloutIdParam }) id: string,
    @Body({ schema: emptyBody }) body: object | undefined,
    @Req() req: AuthenticatedRequest,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) reply: Reply,
  ) {
    return this.run(id, { type: 'CompleteRollout' }, req, principal, body, reply);
  }

  @Post(':id/abort')
  @HttpCode(200)
  @Roles('engineer')
  @ApiOperation({ summary: 'The rollout was abandoned' })
  abort(
    @Param('id', { schema: rolloutIdParam }) id: string,
    @Body({ schema: abortBody }) body: { reason: string },
    @Req() req: AuthenticatedRequest,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) reply: Reply,
  ) {
    return this.run(id, { type: 'AbortRollout', reason: body.reason }, req, principal, body, reply);
  }

  @Get()
  @ApiOperation({ summary: 'Rollouts, newest first, with filters and a keyset cursor' })
  async list(@Query({ schema: listQuery }) query: ListQuery, @Res({ passthrough: true }) reply: Reply) {
    const cursor = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    if (query.cursor !== undefined && !cursor)
      throw new BadRequestException(['cursor: is not a cursor this API gave']);
    const page = await this.rollouts.listPage({
      status: query.status,
      product: query.product,
      environment: query.environment,
      from: query.from ? new Date(query.from) : undefined,
      to: query.to ? new Date(query.to) : undefined,
      q: query.q,
      limit: query.limit,
      cursor,
    });
    const next =
      page.count === query.limit && page.last ? encodeCursor(page.last.createdAt, page.last.id) : null;
    // The items are already JSON text (built by Postgres): sent as they are, never parsed here.
    // The body is what `{ items, next }` serialises to; Fastify sends a string with a JSON type as is.
    void reply.type('application/json; charset=utf-8');
    return `{"items":${page.itemsJson},"next":${JSON.stringify(next)}}`;
  }

  @Get(':id')
  @ApiOperation({ summary: 'The rollout now, or as it was (asOf = ledger position or ISO time)' })
  async get(
    @Param('id', { schema: rolloutIdParam }) id: string,
    @Query({ schema: asOfQuery }) query: { asOf?: { position: number } | { time: Date } },
    @Res({ passthrough: true }) reply: Reply,
  ) {
    const rollout = await this.rollouts.get(id, query.asOf);
    void reply.header('ETag', `"${rollout.version}"`);
    return rollout;
  }

  @Get(':id/events')
  @ApiOperation({ summary: "The rollout's events, in order, with ledger positions and actors" })
  async events(@Param('id', { schema: rolloutIdParam }) id: string) {
    return { events: await this.rollouts.events(id) };
  }

  private async run(
    id: string,
    command: RolloutCommand,
    req: AuthenticatedRequest,
    principal: Principal,
    body: unknown,
    reply: Reply,
  ) {
    return this.answer(reply, await this.rollouts.execute(id, command, this.context(req, principal, body)));
  }

  private context(req: AuthenticatedRequest, principal: Principal, body: unknown): WriteContext {
    const ifMatch = parseIfMatch(headerOf(req, 'if-match'));
    if (ifMatch === 'invalid')
      throw new BadRequestException(['If-Match: must be a stream version, e.g. "3"']);
    const key = headerOf(req, 'idempotency-key');
    if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) {
      throw new BadRequestException(['Idempotency-Key: must be 1-200 printable ASCII characters']);
    }
    return {
      principal,
      requestId: String(req.id),
      ifMatch,
      idempotencyKey: key,
      // Only a keyed write can be replayed, so only it needs the digest to tell a retry from a
      // different request under the same key: canonicalising and hashing every body cost a few
      // per cent of the service's CPU per append (docs/benchmarks.md).
      ...(key !== undefined
        ? {
            requestDigest: requestDigest(req.method, req.routeOptions?.url ?? req.url, {
              params: req.params,
              body,
            }),
          }
        : {}),
    };
  }

  private answer(reply: Reply, result: WriteResult) {
    void reply.header('ETag', `"${result.version}"`);
    if (result.replayed) void reply.header('Idempotent-Replayed', 'true');
    return { id: result.id, version: result.version, status: result.status };
  }
}

function headerOf(req: AuthenticatedRequest, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
