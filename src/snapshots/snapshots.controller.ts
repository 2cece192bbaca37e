import { BadRequestException, Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Roles } from '../auth/principal.js';
import { NotFound } from '../common/errors.js';
import { DriftRepository } from './drift.repository.js';
import {
  type DriftListQuery,
  decodeCursor,
  driftListQuery,
  encodeCursor,
  type SnapshotListQuery,
  snapshotIdParam,
  snapshotListQuery,
  type TimelineQuery,
  takeSnapshotBody,
  timelineQuery,
} from './snapshots.dto.js';
import { SnapshotsRepository } from './snapshots.repository.js';
import { SnapshotsService } from './snapshots.service.js';

function cursorOf(value: string | undefined): { at: string; id: string } | undefined {
  if (value === undefined) return undefined;
  const cursor = decodeCursor(value);
  if (!cursor) throw new BadRequestException(['cursor: is not a cursor this API gave']);
  return cursor;
}

const dateOf = (value: string | undefined) => (value === undefined ? undefined : new Date(value));

@ApiTags('snapshots')
@ApiBearerAuth()
@Controller('api/v1')
export class SnapshotsController {
  constructor(
    private readonly snapshots: SnapshotsService,
    private readonly repo: SnapshotsRepository,
    private readonly drift: DriftRepository,
  ) {}

  @Post('snapshots')
  @HttpCode(200)
  @Roles('engineer', 'admin')
  @ApiOperation({ summary: 'Take a snapshot of one target (or every target) now' })
  take(@Body({ schema: takeSnapshotBody }) body: { target?: string } | undefined) {
    return this.snapshots.takeNow(body?.target);
  }

  @Get('snapshots')
  @ApiOperation({ summary: 'Snapshots, newest tick first, with filters and a keyset cursor' })
  async list(@Query({ schema: snapshotListQuery }) query: SnapshotListQuery) {
    const cursor = cursorOf(query.cursor);
    const items = await this.repo.list({
      target: query.target,
      from: dateOf(query.from),
      to: dateOf(query.to),
      limit: query.limit,
      cursor: cursor && { tickAt: cursor.at, id: cursor.id },
    });
    const last = items.at(-1);
    return { items, next: items.length === query.limit && last ? encodeCursor(last.tickAt, last.id) : null };
  }

  @Get('snapshots/:id')
  @ApiOperation({
    summary: 'One snapshot, with every surface it read (bodies included) and its ledger position',
  })
  async get(@Param('id', { schema: snapshotIdParam }) id: string) {
    const event = await this.repo.snapshotEvent(id);
    if (!event) throw new NotFound('snapshot', id);
    const { snapshotId, reason, ...data } = event.data;
    return {
      id: snapshotId,
      status: event.type === 'SnapshotTaken' ? 'taken' : 'failed',
      ...(reason !== undefined ? { reason } : {}),
      ...data,
      position: event.position,
    };
  }

  @Get('drift')
  @ApiOperation({
    summary: 'Drift, newest first: open or resolved, per target, detected between from and to',
  })
  async listDrift(@Query({ schema: driftListQuery }) query: DriftListQuery) {
    const cursor = cursorOf(query.cursor);
    const items = await this.drift.list({
      target: query.target,
      open: query.open,
      from: dateOf(query.from),
      to: dateOf(query.to),
      limit: query.limit,
      cursor: cursor && { detectedAt: cursor.at, id: cursor.id },
    });
    const last = items.at(-1);
    return {
      items,
      next: items.length === query.limit && last ? encodeCursor(last.detectedAt, last.id) : null,
    };
  }

  @Get('drift/timeline')
  @ApiOperation({ summary: 'Per UTC day: drift detected, resolved, and open at the end of the day' })
  async timeline(@Query({ schema: timelineQuery }) query: TimelineQuery) {
    const days = await this.drift.timeline(query.target, dateOf(query.from), dateOf(query.to));
    return { target: query.target ?? null, days };
  }
}
