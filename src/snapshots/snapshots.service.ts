import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { CronJob, type CronTime } from 'cron';
import { Counter, Histogram } from 'prom-client';
import { ConcurrencyConflict, IdempotencyConflict, NotFound } from '../common/errors.js';
import { APP_CONFIG, type AppConfig, type SnapshotTarget } from '../config/config.js';
import type { Json } from '../database/schema.js';
import { EventStore } from '../event-store/event-store.repository.js';
import type { NewEvent } from '../event-store/event-store.types.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { VersionTruthRepository } from '../platform-truth/version-truth.repository.js';
import { SURFACES, type Surface } from '../rollouts/rollout.plan.js';
import { RolloutsService } from '../rollouts/rollouts.service.js';
import {
  attribute,
  type DriftChange,
  detectDrift,
  foldDrift,
  type RolloutWindow,
  type VerifiedVersion,
} from './drift.js';
import { failureReason, type Observation, observationOf, versionsOf } from './observation.js';
import {
  type Attribution,
  type DriftDetectedData,
  type DriftResolvedData,
  derivedId,
  driftStreamId,
  type SnapshotData,
  type SnapshotEvent,
  SURFACE_PATHS,
  type SurfaceReading,
  snapshotIdFor,
  snapshotStreamId,
} from './snapshot.events.js';
import { SnapshotsRepository } from './snapshots.repository.js';
import { type FetchPolicy, fetchSurface } from './surface-fetcher.js';
import { cronTimeOf, tickSlot } from './tick.js';

/** Name of the job in Nest's SchedulerRegistry. */
export const SNAPSHOT_JOB = 'shared-truth-snapshots';
const ACTOR = { id: 'system:snapshots', name: 'snapshot scheduler', role: 'system' };
const DRIFT_ATTEMPTS = 5;
const REAP_BATCH = 20;
/** Completed claims are kept this long (they only matter around their tick). */
const CLAIM_RETENTION_MS = 7 * 86_400_000;

/** What one tick did for one target. */
export interface TickOutcome {
  target: string;
  tickAt: string;
  /** `skipped`: another replica (or an earlier request) holds this tick of this target. */
  status: 'taken' | 'failed' | 'skipped' | 'error';
  snapshotId: string | null;
  reason?: string;
}

/**
 * The scheduled job: every tick, for every target at once, claim the tick in the database, GET
 * the four surfaces within bounds, record SnapshotTaken or SnapshotFailed, then DriftDetected /
 * DriftResolved against the previous snapshot and the ledger's verified versions.
 */
@Injectable()
export class SnapshotsService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('Snapshots');
  private readonly replica = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly cron: CronTime;
  private readonly policy: FetchPolicy;
  private readonly closing = new AbortController();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly ticks: Counter<'target' | 'outcome'>;
  private readonly latency: Histogram<'surface'>;
  private job: CronJob | undefined;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly scheduler: SchedulerRegistry,
    private readonly repo: SnapshotsRepository,
    private readonly store: EventStore,
    private readonly truth: VersionTruthRepository,
    private readonly rollouts: RolloutsService,
    metrics: MetricsService,
  ) {
    const c = config.snapshots;
    this.cron = cronTimeOf(c.cron);
    this.policy = {
      timeoutMs: c.timeoutMs,
      retries: c.retries,
      backoffMs: c.retryBackoffMs,
      maxBytes: c.maxBytes,
    };
    this.ticks = new Counter({
      name: 'snapshot_ticks_total',
      help: 'Snapshot ticks per target, by outcome (taken, failed, skipped: claimed by another replica, error)',
      labelNames: ['target', 'outcome'] as const,
      registers: [metrics.registry],
    });
    this.latency = new Histogram({
      name: 'snapshot_surface_seconds',
      help: 'Time to read one surface of a target, retries included',
      labelNames: ['surface'] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [metrics.registry],
    });
  }

  get targets(): readonly SnapshotTarget[] {
    return this.config.snapshots.targets;
  }

  /** The replica id written on the tick claims this instance wins. */
  get replicaId(): string {
    return this.replica;
  }

  onApplicationBootstrap(): void {
    if (this.targets.length === 0) return;
    this.job = CronJob.from({
      cronTime: this.config.snapshots.cron,
      timeZone: 'UTC',
      start: false,
      onTick: () => {
        this.track(this.scheduledTick(new Date()));
      },
    });
    this.scheduler.addCronJob(SNAPSHOT_JOB, this.job);
    this.job.start();
    this.logger.log(
      `snapshots of ${this.targets.map((t) => t.name).join(', ')} on "${this.config.snapshots.cron}" (UTC)`,
    );
  }

  async onModuleDestroy(): Promise<void> {
    if (this.job) {
      await this.job.stop();
      this.scheduler.deleteCronJob(SNAPSHOT_JOB);
    }
    this.closing.abort();
    await Promise.allSettled([...this.inFlight]);
  }

  /**
   * Takes a snapshot of one target, or of all, now (`POST /snapshots`). The tick is this
   * moment, so it never collides with a scheduled one.
   */
  async takeNow(targetName?: string): Promise<{ tickAt: string; snapshots: TickOutcome[] }> {
    const targets =
      targetName === undefined ? this.targets : this.targets.filter((t) => t.name === targetName);
    if (targetName !== undefined && targets.length === 0) throw new NotFound('snapshot target', targetName);
    const tickAt = new Date();
    const work = Promise.all(targets.map((t) => this.snapshotTarget(t, tickAt, 'manual')));
    this.track(work);
    return { tickAt: tickAt.toISOString(), snapshots: await work };
  }

  /** Runs the tick of the cron slot `now` falls in, for every target (tests call it directly too). */
  async scheduledTick(now: Date): Promise<TickOutcome[]> {
    const tickAt = tickSlot(this.cron, now);
    const [outcomes] = await Promise.all([
      Promise.all(this.targets.map((t) => this.snapshotTarget(t, tickAt, 'schedule'))),
      this.reapAbandoned().catch((err: unknown) =>
        this.logger.warn(`reaping abandoned ticks failed: ${message(err)}`),
      ),
    ]);
    return outcomes;
  }

  private track(work: Promise<unknown>): void {
    const tracked = work.catch(() => {}).finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  /**
   * One target, one tick: claim, read, record, detect drift. Never throws: a target's trouble is
   * recorded (or logged) and stays its own.
   */
  private async snapshotTarget(
    target: SnapshotTarget,
    tickAt: Date,
    trigger: SnapshotData['trigger'],
  ): Promise<TickOutcome> {
    const tick = tickAt.toISOString();
    const outcome = (
      status: TickOutcome['status'],
      snapshotId: string | null,
      reason?: string,
    ): TickOutcome => {
      this.ticks.inc({ target: target.name, outcome: status });
      return { target: target.name, tickAt: tick, status, snapshotId, ...(reason ? { reason } : {}) };
    };
    try {
      if (!(await this.repo.claimTick(target.name, tickAt, trigger, this.replica))) {
        return outcome('skipped', null, 'this tick of this target is claimed by another replica');
      }
      const snapshot = await this.read(target, tick, trigger);
      const reason = failureReason(snapshot.surfaces);
      if (!(await this.record(snapshot, reason))) {
        // Recorded meanwhile by someone else (the reaper, after this replica stalled): theirs stays.
        return outcome('skipped', snapshot.snapshotId, 'this tick was already recorded');
      }
      await this.evaluateDrift(target, snapshot).catch((err: unknown) =>
        this.logger.warn(`drift of ${target.name} at ${tick} not evaluated: ${message(err)}`),
      );
      await this.repo.completeTick(target.name, tickAt, reason ? 'failed' : 'taken');
      return outcome(reason ? 'failed' : 'taken', snapshot.snapshotId, reason);
    } catch (err) {
      // The claim stays open; the reaper records this tick as abandoned later.
      this.logger.warn(`snapshot of ${target.name} at ${tick} failed: ${message(err)}`);
      return outcome('error', null, message(err));
    }
  }

  /** GETs the four surfaces of a target at once, each within the fetch policy. */
  private async read(
    target: SnapshotTarget,
    tickAt: string,
    trigger: SnapshotData['trigger'],
  ): Promise<SnapshotData> {
    const startedAt = new Date().toISOString();
    const readings = await Promise.all(
      SURFACES.map(async (surface) => {
        const reading = await fetchSurface(
          `${target.baseUrl}${SURFACE_PATHS[surface]}`,
          this.policy,
          this.closing.signal,
        );
        this.latency.observe({ surface }, reading.latencyMs / 1000);
        return [surface, reading] as const;
      }),
    );
    const surfaces = Object.fromEntries(readings) as Record<Surface, SurfaceReading>;
    let versions: Record<string, string> | null = null;
    const truth = surfaces['version-truth'];
    if (truth.status === 'ok') {
      const parsed = versionsOf(truth.body, target.environment);
      if (typeof parsed === 'string') {
        const { body: _, ready: __, reasons: ___, ...rest } = truth;
        surfaces['version-truth'] = {
          ...rest,
          status: 'failed',
          error: { code: 'invalid-shape', message: parsed },
        };
      } else {
        versions = parsed;
      }
    }
    return {
      snapshotId: snapshotIdFor(target.name, tickAt),
      target: target.name,
      baseUrl: target.baseUrl,
      environment: target.environment,
      tickAt,
      trigger,
      takenBy: this.replica,
      startedAt,
      finishedAt: new Date().toISOString(),
      surfaces,
      versions,
    };
  }

  /**
   * Appends the tick's one snapshot event, whose id is derived from target and tick: a second
   * recording of the same tick (a retry, or the reaper racing a slow replica) is refused by the
   * event store. Returns false when this tick was already recorded.
   */
  private async record(snapshot: SnapshotData, reason: string | undefined): Promise<boolean> {
    const event: SnapshotEvent = reason
      ? { type: 'SnapshotFailed', data: { ...snapshot, reason } }
      : { type: 'SnapshotTaken', data: snapshot };
    try {
      const result = await this.store.append(
        snapshotStreamId(snapshot.target),
        [
          {
            eventId: snapshot.snapshotId,
            type: event.type,
            data: event.data as unknown as Json,
            metadata: this.metadata(),
          },
        ],
        { expectedVersion: 'any', streamType: 'snapshots' },
      );
      return !result.duplicate;
    } catch (err) {
      if (err instanceof IdempotencyConflict) return false;
      throw err;
    }
  }

  /** Whether the tick's event is a SnapshotFailed that a reaper recorded for an abandoned claim. */
  private async recordedAsAbandoned(snapshotId: string): Promise<boolean> {
    const event = await this.store.findEvent(snapshotId);
    const reason = (event?.data as { reason?: unknown } | undefined)?.reason;
    return event?.type === 'SnapshotFailed' && typeof reason === 'string' && reason.startsWith('abandoned:');
  }

  private metadata(): { [key: string]: Json } {
    return { actor: ACTOR, source: 'system', replica: this.replica };
  }

  /**
   * Compares a recorded snapshot with the previous one and the ledger's truth, and appends the
   * drift changes to `drift-<target>` at the version it read (re-reading after a conflict). A
   * snapshot older than what the drift stream already reflects changes nothing.
   */
  private async evaluateDrift(target: SnapshotTarget, snapshot: SnapshotData): Promise<void> {
    const current = observationOf(snapshot);
    const [previous, previousWithVersions, verified] = await Promise.all([
      this.repo.previousSnapshot(target.name, snapshot.tickAt),
      this.repo.previousSnapshot(target.name, snapshot.tickAt, true),
      this.truth.list(target.environment),
    ]);
    const before: Observation | undefined = previous
      ? { ...observationOf(previous), versions: previousWithVersions?.versions ?? null }
      : undefined;
    const truth = new Map<string, VerifiedVersion>(
      verified.map((v) => [v.product, { version: v.version, position: v.position, rolloutId: v.rolloutId }]),
    );
    const streamId = driftStreamId(target.name);
    for (let attempt = 1; attempt <= DRIFT_ATTEMPTS; attempt++) {
      const stream = await this.store.readStream(streamId);
      const state = foldDrift(
        stream.map((e) => ({ type: e.type, data: e.data }) as unknown as SnapshotEvent),
      );
      if (state.lastTickAt !== null && Date.parse(state.lastTickAt) > Date.parse(snapshot.tickAt)) return;
      const changes = detectDrift({ current, previous: before, truth, open: state.open });
      if (changes.length === 0) return;
      // A version changed after the last snapshot that could read versions; readiness after the last one.
      const baseline = (c: DriftChange) => (c.key.startsWith('version:') ? previousWithVersions : previous);
      const froms = changes.map((c) => baseline(c)?.tickAt ?? null);
      const widest = {
        from: froms.includes(null) ? null : ([...froms].sort()[0] ?? null),
        to: snapshot.tickAt,
      };
      const rollouts = await this.rolloutWindows(target.environment, widest);
      const events = changes.map((c) => {
        const base = baseline(c);
        const window = { from: base?.tickAt ?? null, to: snapshot.tickAt };
        return this.driftEvent(target, snapshot, base?.snapshotId ?? null, window, c, rollouts);
      });
      try {
        await this.store.append(streamId, events, {
          expectedVersion: stream.length === 0 ? 'no_stream' : (stream.at(-1)?.streamVersion ?? 'any'),
          streamType: 'drift',
        });
        return;
      } catch (err) {
        if (err instanceof ConcurrencyConflict && attempt < DRIFT_ATTEMPTS) continue;
        throw err;
      }
    }
  }

  private driftEvent(
    target: SnapshotTarget,
    snapshot: SnapshotData,
    previousSnapshotId: string | null,
    window: { from: string | null; to: string },
    change: DriftChange,
    rollouts: RolloutWindow[],
  ): NewEvent {
    const product =
      change.type === 'detected'
        ? change.product
        : change.key.startsWith('version:')
          ? change.key.slice(8)
          : null;
    const attribution: Attribution = attribute(product, window, rollouts);
    if (change.type === 'resolved') {
      const data: DriftResolvedData = {
        driftId: change.driftId,
        target: target.name,
        key: change.key,
        resolution: change.resolution,
        observed: change.observed,
        snapshotId: snapshot.snapshotId,
        tickAt: snapshot.tickAt,
        window,
        attribution,
      };
      return {
        eventId: derivedId('drift-resolved', target.name, snapshot.tickAt, change.driftId),
        type: 'DriftResolved',
        data: data as unknown as Json,
        metadata: this.metadata(),
      };
    }
    const driftId = derivedId('drift', target.name, snapshot.tickAt, change.key);
    const data: DriftDetectedData = {
      driftId,
      target: target.name,
      environment: target.environment,
      key: change.key,
      kind: change.kind,
      product: change.product,
      surface: change.surface,
      basis: change.basis,
      expected: change.expected,
      observed: change.observed,
      ledgerPosition: change.ledgerPosition,
      snapshotId: snapshot.snapshotId,
      previousSnapshotId,
      tickAt: snapshot.tickAt,
      window,
      attribution,
      supersedes: change.supersedes,
    };
    return {
      eventId: driftId,
      type: 'DriftDetected',
      data: data as unknown as Json,
      metadata: this.metadata(),
    };
  }

  /** The rollouts (with their steps' windows) of an environment overlapping a window. */
  private async rolloutWindows(
    environment: string,
    window: { from: string | null; to: string },
  ): Promise<RolloutWindow[]> {
    const candidates = await this.repo.rolloutsOverlapping(environment, window.from, window.to);
    const states = await Promise.all(candidates.map((c) => this.rollouts.load(c.rolloutId)));
    return states.flatMap((s): RolloutWindow[] => {
      if (!s.startedAt) return [];
      const productOf = new Map((s.plan.sequence ?? []).map((step) => [step.id, step.product ?? null]));
      return [
        {
          rolloutId: s.id,
          title: s.plan.title ?? null,
          products: (s.plan.products ?? []).map((p) => p.product),
          startedAt: s.startedAt,
          endedAt: s.completedAt ?? s.abortedAt ?? null,
          steps: s.steps.flatMap((step) =>
            step.startedAt
              ? [
                  {
                    stepId: step.id,
                    product: productOf.get(step.id) ?? null,
                    startedAt: step.startedAt,
                    endedAt: step.completedAt ?? step.failedAt ?? null,
                  },
                ]
              : [],
          ),
        },
      ];
    });
  }

  /** The longest one tick of one target can take: every attempt timing out, every backoff slept. */
  private worstCaseMs(): number {
    const { timeoutMs, retries, backoffMs } = this.policy;
    return timeoutMs * (retries + 1) + backoffMs * (2 ** retries - 1);
  }

  /**
   * Claims that nobody completed long after the worst case (the replica died mid-tick) are
   * recorded as SnapshotFailed `abandoned`, with the tick's own event id: if the replica was only
   * slow and records after all, the event store keeps whichever came first.
   */
  private async reapAbandoned(): Promise<void> {
    await this.repo.pruneTicks(new Date(Date.now() - CLAIM_RETENTION_MS));
    const before = new Date(Date.now() - 2 * this.worstCaseMs() - 30_000);
    for (const tick of await this.repo.abandonedTicks(before, REAP_BATCH)) {
      const target = this.targets.find((t) => t.name === tick.target);
      const tickAt = tick.tickAt.toISOString();
      const abandoned = `the replica ${tick.claimedBy} claimed this tick at ${tick.claimedAt.toISOString()} and stopped before recording it`;
      const surfaces = Object.fromEntries(
        SURFACES.map((s) => [
          s,
          {
            status: 'failed',
            url: `${target?.baseUrl ?? ''}${SURFACE_PATHS[s]}`,
            httpStatus: null,
            latencyMs: 0,
            attempts: 0,
            bytes: 0,
            digest: null,
            error: { code: 'abandoned', message: abandoned },
          } satisfies SurfaceReading,
        ]),
      ) as Record<Surface, SurfaceReading>;
      const snapshot: SnapshotData = {
        snapshotId: snapshotIdFor(tick.target, tickAt),
        target: tick.target,
        baseUrl: target?.baseUrl ?? '',
        environment: target?.environment ?? tick.target,
        tickAt,
        trigger: tick.trigger === 'manual' ? 'manual' : 'schedule',
        takenBy: tick.claimedBy,
        startedAt: tick.claimedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        surfaces,
        versions: null,
      };
      // Refused when the replica recorded the tick itself and died before completing its claim
      // (e.g. while evaluating drift): its event stays, and the claim says so.
      const recorded = await this.record(snapshot, `abandoned: ${abandoned}`);
      // Another survivor may have reaped the same claim a moment earlier: the claim then says what
      // the ledger holds for the tick, not which reaper got there first.
      const outcome =
        recorded || (await this.recordedAsAbandoned(snapshot.snapshotId)) ? 'abandoned' : 'recorded';
      await this.repo.completeTick(tick.target, tick.tickAt, outcome);
      if (recorded) this.logger.warn(`recorded the abandoned tick ${tickAt} of ${tick.target} as failed`);
      else if (outcome === 'abandoned')
        this.logger.log(`the abandoned tick ${tickAt} of ${tick.target} was reaped by another replica`);
      else
        this.logger.log(
          `the open claim of ${tick.target} at ${tickAt} was recorded by ${tick.claimedBy}: closed it`,
        );
    }
  }
}

function message(err: unknown): string {
  return err instanceof Error ? (err.message.split('\n')[0] ?? err.name) : String(err);
}
