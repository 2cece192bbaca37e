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
import { Waker } from '../common/waker.js';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import type { DatabaseHandle, DedicatedSession } from '../database/database.js';
import { DATABASE } from '../database/database.module.js';
import { LedgerRepository } from '../ledger/ledger.repository.js';
import { SequencerService } from '../ledger/sequencer.service.js';
import { PROJECTORS, type ProjectionStatus, type Projector } from './projection.types.js';
import { ProjectionsRepository } from './projections.repository.js';

/** Advisory lock key of the projection runner ("upgrade-ledger projections"). */
export const PROJECTIONS_LOCK_KEY = ADVISORY_LOCKS.projections;
/** Entries per transaction: small enough that the sequencer is never held back for long. */
const BATCH = 250;

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

  /** One pass over all versions; returns how many entries were applied. */
  private async runOnce(): Promise<number> {
    let applied = 0;
    const head = await this.ledger.head();
    const versions = await this.repo.versions();
    for (const v of versions) {
      const projector = this.byName.get(v.name);
      if (!projector) continue;
      applied += await this.catchUp(projector, v.version);
    }
    // A shadow version that has reached the head takes over.
    for (const v of await this.repo.versions()) {
      const projector = this.byName.get(v.name);
      if (!projector || v.active || v.position < head.position) continue;
      const old = versions.find((o) => o.name === v.name && o.active);
      await this.repo.swap(v.name, v.version, old ? projector.tableFor(old.version) : undefined);
      this.logger.log(`projection ${v.name} version ${v.version} is now served`);
    }
    return applied;
  }

  /**
   * Applies the next batch to one version. The entries are read before the transaction, which
   * then only locks the checkpoint, applies and moves it: a write transaction holds back
   * `pg_snapshot_xmin`, and with it the sequencer, for as long as it is open, so it must not also
   * wait for a read. If another runner (a `drain` in tests) moved the checkpoint meanwhile, read
   * again from where it now is.
   */
  private async catchUp(projector: Projector, version: number): Promise<number> {
    for (;;) {
      const position = await this.repo.checkpoint(projector.name, version);
      if (position === undefined) return 0;
      const entries = await this.ledger.read(position, BATCH);
      const last = entries.at(-1);
      if (!last) return 0;
      const applied = await this.repo.transaction(async (trx) => {
        if ((await this.repo.lockCheckpoint(trx, projector.name, version)) !== position) return undefined;
        await projector.apply(trx, projector.tableFor(version), entries);
        await this.repo.moveCheckpoint(trx, projector.name, version, last.position);
        return entries.length;
      });
      if (applied !== undefined) return applied;
    }
  }

  private async run(): Promise<void> {
    let session: DedicatedSession | undefined;
    let lost = false;
    let leader = false;
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
        const applied = leader ? await this.runOnce() : 0;
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
