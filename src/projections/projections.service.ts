import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import type { Subscription } from 'rxjs';
import { ADVISORY_LOCKS } from '../common/advisory-locks.js';
import { NotFound } from '../common/errors.js';
import { Pace, Waker } from '../common/waker.js';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import type { DatabaseHandle, DedicatedSession } from '../database/database.js';
import { DATABASE } from '../database/database.module.js';
import { LedgerRepository } from '../ledger/ledger.repository.js';
import { SequencerService } from '../ledger/sequencer.service.js';
import { PROJECTORS, type ProjectionStatus, type Projector } from './projection.types.js';
import { checkpointKey, ProjectionsRepository } from './projections.repository.js';

/** Advisory lock key of the projection runner ("upgrade-ledger projections"). */
export const PROJECTIONS_LOCK_KEY = ADVISORY_LOCKS.projections;
/** Entries per transaction: small enough that the sequencer is never held back for long. */
const BATCH = 250;

interface CheckpointKey {
  name: string;
  version: number;
}

/**
 * Runs every projector from the ledger: one runner at a time across replicas (advisory lock),
 * each batch applied in the same transaction that moves its checkpoint. A rebuild fills the next
 * version beside the served one, then swaps when it has caught up with the ledger head.
 */
@Injectable()
export class ProjectionsService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('Projections');
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly waker = new Waker();
  private subscription: Subscription | undefined;
  private readonly byName: Map<string, Projector>;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(DATABASE) private readonly database: DatabaseHandle,
    @Inject(PROJECTORS) projectors: Projector[],
    private readonly repo: ProjectionsRepository,
    private readonly ledger: LedgerRepository,
    private readonly sequencer: SequencerService,
  ) {
    this.byName = new Map(projectors.map((p) => [p.name, p]));
  }

  onApplicationBootstrap(): void {
    this.subscription = this.sequencer.sequenced$.subscribe(() => this.poke());
    if (this.config.sequencer.enabled) this.loop = this.run();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    this.subscription?.unsubscribe();
    this.waker.poke();
    await this.loop;
  }

  /** Applies everything sequenced so far to every version (tests and tools). */
  async drain(): Promise<void> {
    while ((await this.runOnce()) > 0) {}
  }

  async status(): Promise<ProjectionStatus[]> {
    const head = await this.ledger.head();
    return (await this.repo.versions()).map((v) => ({
      name: v.name,
      version: v.version,
      active: v.active,
      position: v.position,
      lag: head.position - v.position,
      updatedAt: v.updated_at.toISOString(),
    }));
  }

  /** Starts building the next version of a projection beside the served one. */
  async rebuild(name: string): Promise<ProjectionStatus> {
    const projector = this.byName.get(name);
    if (!projector) throw new NotFound('projection', name);
    const { version: next } = await this.repo.createNextVersion(name, (v) => projector.tableFor(v));
    this.logger.log(`rebuilding ${name} as version ${next} beside the served one`);
    this.poke();
    const status = (await this.status()).find((s) => s.name === name && s.version === next);
    if (!status) throw new Error(`projection ${name} v${next} vanished`);
    return status;
  }

  private poke(): void {
    this.waker.poke();
  }

  /**
   * One pass over all versions; returns how many entries were applied (or 1 when another runner
   * moved a checkpoint meanwhile, so that the caller looks again at once). Versions at the same
   * checkpoint, which is all of them in the steady state, share one read of the ledger and one
   * transaction: a pass is a handful of statements, not a handful per projector.
   */
  private async runOnce(): Promise<number> {
    const versions = (await this.repo.versions()).filter((v) => this.byName.has(v.name));
    const groups = new Map<number, CheckpointKey[]>();
    for (const v of versions) {
      const group = groups.get(v.position) ?? [];
      group.push({ name: v.name, version: v.version });
      groups.set(v.position, group);
    }
    let applied = 0;
    for (const [position, group] of [...groups].sort((a, b) => a[0] - b[0])) {
      applied += await this.catchUp(position, group);
    }
    // A shadow version that has reached the head takes over.
    if (versions.some((v) => !v.active)) {
      const head = await this.ledger.head();
      for (const v of await this.repo.versions()) {
        const projector = this.byName.get(v.name);
        if (!projector || v.active || v.position < head.position) continue;
        const old = versions.find((o) => o.name === v.name && o.active);
        await this.repo.swap(v.name, v.version, old ? projector.tableFor(old.version) : undefined);
        this.logger.log(`projection ${v.name} version ${v.version} is now served`);
      }
    }
    return applied;
  }

  /**
   * Applies the next batch after `position` to the versions checkpointed there. The entries are
   * read before the transaction, which then only locks the checkpoints, applies and moves them: a
   * write transaction holds back `pg_snapshot_xmin`, and with it the sequencer, for as long as it
   * is open, so it must not also wait for a read. A version whose checkpoint another runner (a
   * `drain` in tests) moved meanwhile is left for the next pass.
   */
  private async catchUp(position: number, group: CheckpointKey[]): Promise<number> {
    const entries = await this.ledger.readForProjection(position, BATCH);
    const last = entries.at(-1);
    if (!last) return 0;
    return this.repo.transaction(async (trx) => {
      const locked = await this.repo.lockCheckpoints(trx, group);
      const ready = group.filter((k) => locked.get(checkpointKey(k)) === position);
      if (ready.length === 0) return 1;
      for (const k of ready) {
        const projector = this.byName.get(k.name) as Projector;
        await projector.apply(trx, projector.tableFor(k.version), entries);
      }
      await this.repo.moveCheckpoints(trx, ready, last.position);
      return entries.length;
    });
  }

  private async run(): Promise<void> {
    let session: DedicatedSession | undefined;
    let lost = false;
    let leader = false;
    const pace = new Pace(this.config.projections.minCycleMs);
    while (!this.stopped) {
      try {
        if (!session) {
          const opened = await this.database.openSession();
          session = opened;
          lost = false;
          void opened.lost.then(() => {
            if (session === opened) lost = true;
          });
        }
        if (lost) throw new Error('the projection runner session was lost');
        if (!leader) leader = await session.tryAdvisoryLock(PROJECTIONS_LOCK_KEY);
        if (leader) await pace.next();
        const applied = leader ? await this.runOnce() : 0;
        if (applied >= BATCH) pace.release();
        if (applied === 0) await this.waker.wait(this.config.sequencer.pollMs);
      } catch (err) {
        if (this.stopped) break;
        this.logger.warn(`projections paused: ${err instanceof Error ? err.message : String(err)}`);
        leader = false;
        await session?.close();
        session = undefined;
        await this.waker.wait(1000);
      }
    }
    if (leader) await session?.advisoryUnlock(PROJECTIONS_LOCK_KEY).catch(() => {});
    await session?.close();
  }
}
