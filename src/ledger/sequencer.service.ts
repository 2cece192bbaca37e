import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { Subject } from 'rxjs';
import { ADVISORY_LOCKS } from '../common/advisory-locks.js';
import { Pace, Waker } from '../common/waker.js';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import type { DatabaseHandle, DedicatedSession } from '../database/database.js';
import { DATABASE } from '../database/database.module.js';
import { AppendSignal } from '../event-store/append-signal.js';
import { EVENTS_CHANNEL } from '../event-store/event-store.repository.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { checkpointPayload } from './hashing.js';
import { LedgerRepository } from './ledger.repository.js';
import { type SigningKey, signPayload } from './signing.js';
import { SIGNING_KEY } from './signing-key.provider.js';

/** Advisory lock key of the sequencer leader ("upgrade-ledger sequencer"). */
export const SEQUENCER_LOCK_KEY = ADVISORY_LOCKS.sequencer;

export class RestoredDatabaseError extends Error {
  constructor(maxStored: bigint, next: bigint) {
    super(
      [
        `This database holds transaction ids up to ${maxStored}, but the server's next transaction id is ${next}.`,
        'It was restored logically (pg_dump/pg_restore) into a new cluster, so transaction ids restarted lower,',
        'and the sequencer would never see new events. Nothing has been written.',
        'Fix: stop every instance, then run once, against this database:',
        '    DATABASE_URL=<this database> npx upgrade-ledger rebase-after-restore',
        'It sequences every restored event, then rebases the stored transaction ids. See docs/operations.md.',
      ].join('\n'),
    );
    this.name = 'RestoredDatabaseError';
  }
}

/**
 * The single writer of the ledger. Any number of replicas run this; the one holding the
 * advisory lock sequences, the others wait to take over when its session dies. NOTIFY only
 * wakes it; it also polls, and the poll is the truth.
 */
@Injectable()
export class SequencerService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('Sequencer');
  /** Emits the head after each batch this process sequenced (wakes the live tail). */
  readonly sequenced$ = new Subject<{ position: number; hash: string }>();
  private stopped = false;
  private loop: Promise<void> | undefined;
  /** Woken by NOTIFY; a wake-up that arrives mid-batch is not lost. */
  private readonly waker = new Waker();
  private leader = false;
  private lastCheckpoint = { position: 0, at: Date.now() };

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(DATABASE) private readonly database: DatabaseHandle,
    @Inject(SIGNING_KEY) private readonly key: SigningKey,
    private readonly ledger: LedgerRepository,
    private readonly metrics: MetricsService,
    private readonly appends: AppendSignal,
  ) {}

  get isLeader(): boolean {
    return this.leader;
  }

  async onApplicationBootstrap(): Promise<void> {
    const { maxStored, next } = await this.ledger.transactionIdHorizon();
    if (maxStored >= next) throw new RestoredDatabaseError(maxStored, next);
    await this.ledger.registerKey(this.key.keyId, this.key.publicKeyPem);
    const latest = await this.ledger.latestCheckpoint();
    this.lastCheckpoint = { position: latest?.position ?? 0, at: Date.now() };
    if (this.config.sequencer.enabled) this.loop = this.run();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    this.waker.poke();
    await this.loop;
  }

  /** Sequences until nothing is pending (tests and tools; the loop does this by itself). */
  async drain(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.sequenceOnce();
      total += n;
      if (n === 0) return total;
    }
  }

  private async run(): Promise<void> {
    let unlisten: (() => Promise<void>) | undefined;
    let session: DedicatedSession | undefined;
    let sessionLost = false;
    let backoff = 100;
    const pace = new Pace(this.config.sequencer.minCycleMs);
    while (!this.stopped) {
      try {
        unlisten ??= await this.database.listen(EVENTS_CHANNEL, () => {
          this.waker.poke();
        });
        if (!session) {
          const opened = await this.database.openSession();
          session = opened;
          void opened.lost.then(() => {
            if (session === opened) sessionLost = true;
          });
          sessionLost = false;
        }
        // The lock lives with the session: without it, another instance may already lead.
        if (sessionLost) throw new Error('the leader session was lost');
        const lost = session.lost;
        if (!this.leader) {
          this.leader = await session.tryAdvisoryLock(SEQUENCER_LOCK_KEY);
          if (this.leader) {
            this.logger.log('leading: this instance sequences the ledger');
            // Appends in this process now wake us directly, without a NOTIFY each.
            this.appends.attach(() => this.waker.poke());
          }
        }
        this.metrics.sequencerLeader.set(this.leader ? 1 : 0);
        if (this.leader) {
          await pace.next();
          const n = await this.sequenceOnce();
          if (n >= this.config.sequencer.batchSize) {
            pace.release();
            continue;
          }
        }
        await this.waker.wait(this.config.sequencer.pollMs, lost);
        backoff = 100;
      } catch (err) {
        if (this.stopped) break;
        this.logger.warn(`sequencer paused: ${err instanceof Error ? err.message : String(err)}`);
        // Give up leadership with the session; whoever holds the lock next resumes from the cursor.
        this.leader = false;
        this.appends.detach();
        this.metrics.sequencerLeader.set(0);
        await session?.close();
        session = undefined;
        await unlisten?.().catch(() => {});
        unlisten = undefined;
        await this.waker.wait(backoff);
        backoff = Math.min(backoff * 2, 5_000);
      }
    }
    if (this.leader) await session?.advisoryUnlock(SEQUENCER_LOCK_KEY).catch(() => {});
    this.leader = false;
    this.appends.detach();
    await session?.close();
    await unlisten?.().catch(() => {});
  }

  private async sequenceOnce(): Promise<number> {
    const { entries, head } = await this.ledger.sequenceBatch(this.config.sequencer.batchSize);
    if (entries.length > 0) {
      const now = Date.now();
      for (const e of entries) this.metrics.sequencerLag.observe((now - e.recordedMs) / 1000);
      this.metrics.ledgerHead.set(head.position);
      this.sequenced$.next(head);
    }
    await this.maybeCheckpoint(head);
    return entries.length;
  }

  private async maybeCheckpoint(head: { position: number; hash: string }): Promise<void> {
    const { checkpointEvery, checkpointIntervalMs } = this.config.sequencer;
    const since = head.position - this.lastCheckpoint.position;
    if (since <= 0) return;
    if (since < checkpointEvery && Date.now() - this.lastCheckpoint.at < checkpointIntervalMs) return;
    const checkpoint = {
      position: head.position,
      headHash: head.hash,
      createdAt: new Date().toISOString(),
      keyId: this.key.keyId,
    };
    const signature = signPayload(this.key, checkpointPayload(checkpoint));
    await this.ledger.insertCheckpoint({ ...checkpoint, signature });
    this.lastCheckpoint = { position: head.position, at: Date.now() };
  }
}
