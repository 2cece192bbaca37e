import { checkpointPayload, eventHash, GENESIS_HASH, ledgerHash } from './hashing.js';
import type { Checkpoint, LedgerEntry, VerifyResult } from './ledger.types.js';
import { verifyPayload } from './signing.js';

/** Where a verification starts when it does not start at position 1 (an export of a range). */
export interface VerifyStart {
  /** The first position that will be pushed. */
  position: number;
  /** The chain hash of the entry before it, which the first entry's prev hash must equal. */
  prevHash: string;
}

/**
 * Walks a ledger in position order and checks every link: positions gapless from 1 (or from a
 * given start, for a range of the ledger), each
 * entry's prev hash, each event's own hash, each entry's chain hash, and every checkpoint's
 * head and signature. Feed it entries one by one (constant memory); the first failure sticks.
 * Used by the service's `/ledger/verify` and by the offline verifier alike.
 *
 * @example
 * const v = new ChainVerifier(checkpoints, keysById);
 * for (const e of entries) if (!v.push(e)) break;
 * v.result(); // { ok: true, verifiedThrough: 42, checkpointsVerified: 1 }
 *
 * // A range 501..900 of an export: the chain is checked from there on; checkpoints before 501
 * // are ignored, and only the signed checkpoints at 501..900 anchor it.
 * new ChainVerifier(checkpoints, keysById, { position: 501, prevHash: hashOf500 });
 */
export class ChainVerifier {
  #expected = 1;
  #prevHash = GENESIS_HASH;
  #checkpointsVerified = 0;
  #failure: { brokenAt: number; reason: string } | undefined;
  readonly #checkpoints: Map<number, Checkpoint>;

  constructor(
    checkpoints: Iterable<Checkpoint>,
    private readonly publicKeys: Map<string, string>,
    start?: VerifyStart,
  ) {
    this.#checkpoints = new Map([...checkpoints].map((c) => [c.position, c]));
    if (start) {
      if (!Number.isSafeInteger(start.position) || start.position < 1) {
        throw new RangeError(`a verification starts at a position ≥ 1, not ${start.position}`);
      }
      this.#expected = start.position;
      this.#prevHash = start.prevHash;
    }
  }

  get verifiedThrough(): number {
    return this.#expected - 1;
  }

  push(entry: LedgerEntry): boolean {
    if (this.#failure) return false;
    const at = this.#expected;
    if (entry.position !== at) {
      return this.fail(
        at,
        entry.position > at
          ? `position ${at} is missing (the next entry present is ${entry.position})`
          : `position ${entry.position} appears again or out of order`,
      );
    }
    if (entry.prevHash !== this.#prevHash)
      return this.fail(at, 'prev_hash does not link to the previous entry');
    if (eventHash(entry.eventPrevHash, entry) !== entry.eventHash) {
      return this.fail(at, `event ${entry.eventId} does not match its hash: its content was changed`);
    }
    const hash = ledgerHash(this.#prevHash, at, { ...entry, hash: entry.eventHash });
    if (hash !== entry.hash) return this.fail(at, 'entry hash does not match its content');
    const checkpoint = this.#checkpoints.get(at);
    if (checkpoint) {
      if (checkpoint.headHash !== hash)
        return this.fail(at, `checkpoint at ${at} signed a different head hash`);
      const pem = this.publicKeys.get(checkpoint.keyId);
      if (!pem) return this.fail(at, `checkpoint at ${at} names unknown key ${checkpoint.keyId}`);
      if (!verifyPayload(pem, checkpointPayload(checkpoint), checkpoint.signature)) {
        return this.fail(at, `checkpoint at ${at} has an invalid signature`);
      }
      this.#checkpointsVerified++;
    }
    this.#prevHash = hash;
    this.#expected = at + 1;
    return true;
  }

  /** The verdict once every entry was pushed. */
  result(): VerifyResult {
    if (this.#failure) return { ok: false, ...this.#failure, verifiedThrough: this.verifiedThrough };
    const beyond = [...this.#checkpoints.keys()]
      .filter((p) => p > this.verifiedThrough)
      .sort((a, b) => a - b)[0];
    if (beyond !== undefined) {
      return {
        ok: false,
        brokenAt: this.#expected,
        reason: `a checkpoint signed position ${beyond}, but the ledger ends at ${this.verifiedThrough}: entries were removed`,
        verifiedThrough: this.verifiedThrough,
      };
    }
    return {
      ok: true,
      verifiedThrough: this.verifiedThrough,
      checkpointsVerified: this.#checkpointsVerified,
    };
  }

  private fail(brokenAt: number, reason: string): false {
    this.#failure = { brokenAt, reason };
    return false;
  }
}
