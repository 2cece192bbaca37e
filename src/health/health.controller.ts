import { Controller, Get, Inject, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { sql } from 'kysely';
import { Public } from '../auth/public.decorator.js';
import type { DatabaseHandle } from '../database/database.js';
import { DATABASE } from '../database/database.module.js';
import { migrationsApplied } from '../database/migrator.js';

const READY_TIMEOUT_MS = 2_000;

function within<T>(ms: number, work: Promise<T>): Promise<T> {
  return Promise.race([
    work,
    new Promise<T>((_, reject) =>
      setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref(),
    ),
  ]);
}

@ApiTags('health')
@Public()
@Controller('health')
export class HealthController {
  constructor(@Inject(DATABASE) private readonly database: DatabaseHandle) {}

  @Get('live')
  @ApiOperation({ summary: 'The process is up' })
  live() {
    return { status: 'live' };
  }

  @Get('ready')
  @ApiOperation({ summary: 'The database answers and every migration is applied (503 otherwise)' })
  async ready(@Res({ passthrough: true }) reply: FastifyReply) {
    const checks: Record<string, { ok: boolean; detail?: string }> = {};
    try {
      await within(READY_TIMEOUT_MS, sql`select 1`.execute(this.database.db));
      checks.database = { ok: true };
      const applied = await within(READY_TIMEOUT_MS, migrationsApplied(this.database.db));
      checks.migrations = applied ? { ok: true } : { ok: false, detail: 'pending migrations' };
    } catch (err) {
      checks.database = {
        ok: false,
        detail: err instanceof Error ? err.message.split('\n')[0] : 'unreachable',
      };
    }
    const ready = Object.values(checks).every((c) => c.ok) && checks.migrations !== undefined;
    if (!ready) void reply.status(503).header('Retry-After', '2');
    return { status: ready ? 'ready' : 'not ready', database: this.database.kind, checks };
  }
}
