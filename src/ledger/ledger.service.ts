import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import { Observable, ReplaySubject, takeUntil } from 'rxjs';
import { NotFound } from '../common/errors.js';
import { Waker } from '../common/waker.js';
import { LedgerRepository } from './ledger.repository.js';
import type { Checkpoint, LedgerEntry, PublicKeyInfo, VerifyResult } from './ledger.types.js';
import { SequencerService } from './sequencer.service.js';
import { type SigningKey } from './signing.js';
import { SIGNING_KEY } from './signing-key.provider.js';
import { ChainVerifier } from './verify.js';

const VERIFY_BATCH = 2000;
const TAIL_BATCH = 500;
const TAIL_POLL_MS = 1000;

@Injectable()
export class LedgerService implements OnModuleDestroy {
  /** Emits once the application is closing: every live tail then ends (and late ones end at once). */
  private readonly closing$ = new ReplaySubject<void>(1);

  constructor(
    private readonly repo: LedgerRepository,
    private readonly sequencer: SequencerService,
    @Inject(SIGNING_KEY) private readonly key: SigningKey,
  ) {}

  async page(after: number, limit: number): Promise<{ events: LedgerEntry[]; next: number | null }> {
    const events = await this.repo.read(after, limit);
    const last = events.at(-1);
    return { events, next: events.length === limit && last ? last.position : null };
  }

  head() {
    return this.repo.head();
  }

  /**
   * Runs before the HTTP server closes. A live tail never finishes by itself, so without this a
   * connected SSE client held graceful shutdown until the grace period killed the process (exit
   * 1, database not closed). Ended streams let the client reconnect, with Last-Event-ID, elsewhere.
   */
  onModuleDestroy(): void {
    this.closing$.next();
  }

  checkpoints(after: number, limit: number): Promise<Checkpoint[]> {
    return this.repo.checkpoints(after, limit);
  }

  latestCheckpoint(): Promise<Checkpoint | undefined> {
    return this.repo.latestCheckpoint();
  }

  currentPublicKey(): { keyId: string; publicKeyPem: string } {
    return { keyId: this.key.keyId, publicKeyPem: this.key.publicKeyPem };
  }

  publicKeys(): Promise<PublicKeyInfo[]> {
    return this.repo.publicKeys();
  }

  async publicKey(keyId: string): Promise<PublicKeyInfo> {
    const key = (await this.repo.publicKeys()).find((k) => k.keyId === keyId);
    if (!key) throw new NotFound('public key', keyId);
    return key;
  }

  /** Re-checks the whole chain from position 1 and every checkpoint. */
  async verify(): Promise<VerifyResult> {
    const checkpoints: Checkpoint[] = [];
    for (let after = 0; ; ) {
      const page = await this.repo.checkpoints(after, 10_000);
      checkpoints.push(...page);
      const last = page.at(-1);
      if (!last || page.length < 10_000) break;
      after = last.position;
    }
    const keys = new Map((await this.repo.publicKeys()).map((k) => [k.keyId, k.publicKeyPem]));
    const verifier = new ChainVerifier(checkpoints, keys);
    for (let after = 0; ; ) {
      const batch = await this.repo.read(after, VERIFY_BATCH);
      for (const entry of batch) if (!verifier.push(entry)) return verifier.result();
      const last = batch.at(-1);
      if (!last || batch.length < VERIFY_BATCH) break;
      after = last.position;
    }
    return verifier.result();
  }

  /**
   * Every entry after `after`, then each new one as it is sequenced: woken by this process's
   * sequencer, and polling for entries another replica sequenced.
   */
  tail(after: number): Observable<LedgerEntry> {
    return new Observable<LedgerEntry>((subscriber) => {
      let cursor = after;
      let closed = false;
      // Woken by this process's sequencer; a wake-up during a read is not lost.
      const waker = new Waker();
      const sub = this.sequencer.sequenced$.subscribe(() => waker.poke());
      void (async () => {
        while (!closed) {
          const batch = await this.repo.read(cursor, TAIL_BATCH);
          for (const entry of batch) {
            if (closed) return;
            subscriber.next(entry);
            cursor = entry.position;
          }
          if (batch.length < TAIL_BATCH) await waker.wait(TAIL_POLL_MS);
        }
      })().catch((err: unknown) => {
        if (!closed) subscriber.error(err);
      });
      return () => {
        closed = true;
        sub.unsubscribe();
        waker.poke();
      };
    }).pipe(takeUntil(this.closing$));
  }
}
