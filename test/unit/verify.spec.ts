import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Json } from '../../src/database/schema.js';
import { checkpointPayload, eventHash, GENESIS_HASH, ledgerHash } from '../../src/ledger/hashing.js';
import type { Checkpoint, LedgerEntry, VerifyResult } from '../../src/ledger/ledger.types.js';
import { keyIdOf, type SigningKey, signPayload } from '../../src/ledger/signing.js';
import { ChainVerifier } from '../../src/ledger/verify.js';

function generateKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    keyId: keyIdOf(publicKey),
    privateKey,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

const key = generateKey();
const otherKey = generateKey();
const knownKeys = new Map([[key.keyId, key.publicKeyPem]]);

/** What an event is before it is chained: the rest is derived. */
interface EventSpec {
  streamId: string;
  eventId: string;
  type: string;
  schemaVersion: number;
  data: Json;
  metadata: { [key: string]: Json };
  recordedAt: string;
}

/**
 * A ledger built the way the event store and the sequencer build it: per-stream versions and
 * hash chains, then a global chain over positions 1..n.
 */
function buildLedger(specs: EventSpec[]): LedgerEntry[] {
  const streams = new Map<string, { version: number; hash: string }>();
  let prevHash = GENESIS_HASH;
  return specs.map((spec, i) => {
    const stream = streams.get(spec.streamId) ?? { version: 0, hash: GENESIS_HASH };
    const streamVersion = stream.version + 1;
    const event = { ...spec, streamVersion };
    const ownHash = eventHash(stream.hash, event);
    streams.set(spec.streamId, { version: streamVersion, hash: ownHash });
    const position = i + 1;
    const hash = ledgerHash(prevHash, position, { ...event, hash: ownHash });
    const entry: LedgerEntry = {
      ...event,
      position,
      prevHash,
      hash,
      eventHash: ownHash,
      eventPrevHash: stream.hash,
    };
    prevHash = hash;
    return entry;
  });
}

/** Re-derives every hash from `from` on, as someone who can write the database could. */
function rechain(entries: LedgerEntry[], from: number): LedgerEntry[] {
  const out = entries.map((e) => ({ ...e }));
  for (let i = from - 1; i < out.length; i++) {
    const e = out[i] as LedgerEntry;
    if (i === from - 1) e.eventHash = eventHash(e.eventPrevHash, e);
    e.prevHash = i === 0 ? GENESIS_HASH : (out[i - 1] as LedgerEntry).hash;
    e.hash = ledgerHash(e.prevHash, e.position, { ...e, hash: e.eventHash });
  }
  return out;
}

function checkpointAt(entries: LedgerEntry[], position: number, signer = key): Checkpoint {
  const entry = entries[position - 1] as LedgerEntry;
  const unsigned = {
    position,
    headHash: entry.hash,
    createdAt: '2026-11-26T00:00:00.000Z',
    keyId: signer.keyId,
  };
  return { ...unsigned, signature: signPayload(signer, checkpointPayload(unsigned)) };
}

function verify(
  entries: LedgerEntry[],
  checkpoints: Checkpoint[] = [],
  keys: Map<string, string> = knownKeys,
): VerifyResult {
  const v = new ChainVerifier(checkpoints, keys);
  for (const e of entries) if (!v.push(e)) break;
  return v.result();
}

const storableString = fc.string({ unit: 'grapheme', maxLength: 12 }).map((s) => s.replaceAll('\u0000', ''));
const storableKey = storableString.filter((k) => !['__proto__', 'constructor', 'prototype'].includes(k));
const storableJson: fc.Arbitrary<Json> = fc.letrec<{ value: Json }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    storableString,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(storableKey, tie('value'), { maxKeys: 4, noNullPrototype: true }),
  ),
})).value;

const eventSpec: fc.Arbitrary<EventSpec> = fc.record({
  streamId: fc.constantFrom('rollout-a', 'rollout-b', 'rollout-c'),
  eventId: fc.uuid({ version: 4 }),
  type: fc.constantFrom('RolloutPlanned', 'StepStarted', 'StepCompleted', 'RollbackStarted'),
  schemaVersion: fc.integer({ min: 1, max: 3 }),
  data: storableJson,
  metadata: fc.dictionary(storableKey, storableJson, { maxKeys: 3, noNullPrototype: true }),
  recordedAt: fc
    .date({
      min: new Date('2020-01-01T00:00:00Z'),
      max: new Date('2040-01-01T00:00:00Z'),
      noInvalidDate: true,
    })
    .map((d) => d.toISOString()),
});

const ledgerOf = (minLength: number) =>
  fc.array(eventSpec, { minLength, maxLength: 24 }).map((specs) => buildLedger(specs));

/** A ledger and a position in it, 1-based. */
const ledgerAndPosition = (minLength: number) =>
  ledgerOf(minLength).chain((entries) =>
    fc.tuple(fc.constant(entries), fc.integer({ min: 1, max: entries.length })),
  );

const replaceAt = (entries: LedgerEntry[], position: number, change: Partial<LedgerEntry>) =>
  entries.map((e) => (e.position === position ? { ...e, ...change } : e));

describe('ChainVerifier', () => {
  it('passes an empty ledger', () => {
    expect(verify([])).toEqual({ ok: true, verifiedThrough: 0, checkpointsVerified: 0 });
  });

  it('passes any ledger built by the append and sequencing rules, with checkpoints anywhere', () => {
    fc.assert(
      fc.property(
        ledgerOf(1).chain((entries) =>
          fc.tuple(
            fc.constant(entries),
            fc.uniqueArray(fc.integer({ min: 1, max: entries.length }), { maxLength: 4 }),
          ),
        ),
        ([entries, at]) => {
          const checkpoints = at.map((p) => checkpointAt(entries, p));
          expect(verify(entries, checkpoints)).toEqual({
            ok: true,
            verifiedThrough: entries.length,
            checkpointsVerified: at.length,
          });
        },
      ),
    );
  });

  const contentChanges: [string, (e: LedgerEntry) => Partial<LedgerEntry>][] = [
    ['data', (e) => ({ data: { tampered: e.data } })],
    // Generated keys are at most 12 characters, so this one is always new.
    ['metadata', (e) => ({ metadata: { ...e.metadata, __tampered_with__: true } })],
    ['type', (e) => ({ type: `${e.type}X` })],
    ['stream id', (e) => ({ streamId: `${e.streamId}x` })],
    ['stream version', (e) => ({ streamVersion: e.streamVersion + 1 })],
    ['schema version', (e) => ({ schemaVersion: e.schemaVersion + 1 })],
    ['event id', () => ({ eventId: '00000000-0000-4000-8000-00000000dead' })],
    ['recorded time', (e) => ({ recordedAt: new Date(Date.parse(e.recordedAt) + 1).toISOString() })],
    ['event prev hash', () => ({ eventPrevHash: 'e'.repeat(64) })],
    ['event hash', () => ({ eventHash: 'e'.repeat(64) })],
    ['prev hash', () => ({ prevHash: 'e'.repeat(64) })],
    ['entry hash', () => ({ hash: 'e'.repeat(64) })],
  ];

  it.each(contentChanges)('breaks exactly where the %s of one entry was changed', (_what, change) => {
    fc.assert(
      fc.property(ledgerAndPosition(1), ([entries, k]) => {
        const tampered = replaceAt(entries, k, change(entries[k - 1] as LedgerEntry));
        const result = verify(tampered);
        expect(result).toMatchObject({ ok: false, brokenAt: k, verifiedThrough: k - 1 });
      }),
    );
  });

  it('breaks where an entry was dropped', () => {
    fc.assert(
      fc.property(ledgerOf(2), fc.nat(), (entries, pick) => {
        const k = (pick % (entries.length - 1)) + 1; // any but the last: see the truncation test
        const result = verify(entries.filter((e) => e.position !== k));
        expect(result).toMatchObject({ ok: false, brokenAt: k, verifiedThrough: k - 1 });
      }),
    );
  });

  it('breaks at the first of two swapped entries', () => {
    fc.assert(
      fc.property(ledgerOf(2), fc.nat(), fc.nat(), (entries, a, b) => {
        const i = (a % (entries.length - 1)) + 1;
        const j = i + 1 + (b % (entries.length - i));
        const swapped = [...entries];
        [swapped[i - 1], swapped[j - 1]] = [entries[j - 1] as LedgerEntry, entries[i - 1] as LedgerEntry];
        expect(verify(swapped)).toMatchObject({ ok: false, brokenAt: i });

        // Renumbering the swapped entries does not help: their hashes do not link.
        const renumbered = swapped.map((e, n) => ({ ...e, position: n + 1 }));
        expect(verify(renumbered)).toMatchObject({ ok: false, brokenAt: i });
      }),
    );
  });

  it('breaks where an entry was inserted again', () => {
    fc.assert(
      fc.property(ledgerAndPosition(1), ([entries, k]) => {
        const copy = entries[k - 1] as LedgerEntry;
        const doubled = [...entries.slice(0, k), copy, ...entries.slice(k)];
        expect(verify(doubled)).toMatchObject({ ok: false, brokenAt: k + 1, verifiedThrough: k });
      }),
    );
  });

  it('keeps the first failure: later entries are not verified', () => {
    fc.assert(
      fc.property(ledgerAndPosition(1), ([entries, k]) => {
        const tampered = replaceAt(entries, k, { hash: 'e'.repeat(64) });
        const v = new ChainVerifier([], knownKeys);
        const accepted = tampered.map((e) => v.push(e));
        expect(accepted).toEqual(tampered.map((e) => e.position < k));
        expect(v.result()).toMatchObject({ ok: false, brokenAt: k });
      }),
    );
  });

  it('catches a rewrite with every later hash recomputed at the first checkpoint after it', () => {
    fc.assert(
      fc.property(
        ledgerAndPosition(1).chain(([entries, k]) =>
          fc.tuple(fc.constant(entries), fc.constant(k), fc.integer({ min: k, max: entries.length })),
        ),
        ([entries, k, c]) => {
          const rewritten = rechain(
            replaceAt(entries, k, { data: { tampered: (entries[k - 1] as LedgerEntry).data } }),
            k,
          );
          // Without a signed head the rewrite is self-consistent...
          expect(verify(rewritten)).toMatchObject({ ok: true });
          // ...but the checkpoint signed the original head at c.
          const checkpoints = [checkpointAt(entries, c)];
          expect(verify(rewritten, checkpoints)).toMatchObject({ ok: false, brokenAt: c });
          expect(verify(entries, checkpoints)).toMatchObject({ ok: true, checkpointsVerified: 1 });
        },
      ),
    );
  });

  describe('checkpoints', () => {
    const badCheckpoints: [string, (entries: LedgerEntry[], c: number) => Checkpoint, Map<string, string>][] =
      [
        [
          'a signature by another key under this key id',
          (entries, c) => {
            const forged = checkpointAt(entries, c, otherKey);
            return { ...forged, keyId: key.keyId };
          },
          knownKeys,
        ],
        [
          'a signature with one bit flipped',
          (entries, c) => {
            const cp = checkpointAt(entries, c);
            const sig = Buffer.from(cp.signature, 'base64');
            sig[0] = (sig[0] as number) ^ 1;
            return { ...cp, signature: sig.toString('base64') };
          },
          knownKeys,
        ],
        [
          'a signature that is not base64 of anything',
          (e, c) => ({ ...checkpointAt(e, c), signature: '!!' }),
          knownKeys,
        ],
        ['an unknown key', (entries, c) => checkpointAt(entries, c, otherKey), knownKeys],
        ['no keys at all', (entries, c) => checkpointAt(entries, c), new Map()],
        [
          'a different head hash, correctly signed',
          (_entries, c) => {
            const unsigned = {
              position: c,
              headHash: 'ab'.repeat(32),
              createdAt: '2026-11-26T00:00:00.000Z',
              keyId: key.keyId,
            };
            return { ...unsigned, signature: signPayload(key, checkpointPayload(unsigned)) };
          },
          knownKeys,
        ],
        [
          'a signed time that was changed afterwards',
          (entries, c) => ({ ...checkpointAt(entries, c), createdAt: '2030-01-01T00:00:00.000Z' }),
          knownKeys,
        ],
      ];

    it.each(badCheckpoints)('fail at the checkpoint for %s', (_what, make, keys) => {
      fc.assert(
        fc.property(ledgerAndPosition(1), ([entries, c]) => {
          const good = c > 1 && keys.has(key.keyId) ? [checkpointAt(entries, 1)] : [];
          const result = verify(entries, [...good, make(entries, c)], keys);
          expect(result).toMatchObject({ ok: false, brokenAt: c, verifiedThrough: c - 1 });
        }),
        { numRuns: 30 },
      );
    });

    it('pass with every key ever used, and fail without a retired one', () => {
      const entries = buildLedger(fc.sample(eventSpec, { numRuns: 6, seed: 7 }));
      const checkpoints = [checkpointAt(entries, 2, key), checkpointAt(entries, 5, otherKey)];
      const allKeys = new Map([
        [key.keyId, key.publicKeyPem],
        [otherKey.keyId, otherKey.publicKeyPem],
      ]);
      expect(verify(entries, checkpoints, allKeys)).toEqual({
        ok: true,
        verifiedThrough: 6,
        checkpointsVerified: 2,
      });
      expect(verify(entries, checkpoints, knownKeys)).toMatchObject({ ok: false, brokenAt: 5 });
    });

    it('fail when the ledger ends before a signed checkpoint (a truncated tail)', () => {
      fc.assert(
        fc.property(ledgerOf(2), fc.nat(), (entries, pick) => {
          const m = pick % entries.length; // keep 0..n-1 entries
          const checkpoints = [checkpointAt(entries, entries.length)];
          const result = verify(entries.slice(0, m), checkpoints);
          expect(result).toMatchObject({ ok: false, brokenAt: m + 1, verifiedThrough: m });
          if (!result.ok) expect(result.reason).toContain(`position ${entries.length}`);
          // The whole ledger verifies against the same checkpoint.
          expect(verify(entries, checkpoints)).toMatchObject({ ok: true, checkpointsVerified: 1 });
        }),
      );
    });
  });
});

describe('ChainVerifier from a start position (a range of the ledger)', () => {
  /** The ledger and a start s in 1..n: the range s..n, with the hash before s. */
  const rangeOf = (minLength: number) =>
    ledgerAndPosition(minLength).map(([entries, s]) => ({
      entries,
      s,
      range: entries.slice(s - 1),
      prevHash: s === 1 ? GENESIS_HASH : (entries[s - 2] as LedgerEntry).hash,
    }));

  const verifyFrom = (
    range: LedgerEntry[],
    start: { position: number; prevHash: string },
    checkpoints: Checkpoint[] = [],
  ) => {
    const v = new ChainVerifier(checkpoints, knownKeys, start);
    for (const e of range) if (!v.push(e)) break;
    return v.result();
  };

  it('passes any suffix of a valid ledger, with its checkpoints, given the hash before it', () => {
    fc.assert(
      fc.property(
        rangeOf(1).chain((r) =>
          fc.tuple(
            fc.constant(r),
            fc.uniqueArray(fc.integer({ min: r.s, max: r.entries.length }), { maxLength: 3 }),
          ),
        ),
        ([{ entries, s, range, prevHash }, at]) => {
          const checkpoints = at.map((p) => checkpointAt(entries, p));
          // Checkpoints before the start are ignored rather than reported as missing.
          const earlier = s > 1 ? [checkpointAt(entries, s - 1)] : [];
          expect(verifyFrom(range, { position: s, prevHash }, [...earlier, ...checkpoints])).toEqual({
            ok: true,
            verifiedThrough: entries.length,
            checkpointsVerified: at.length,
          });
        },
      ),
    );
  });

  it('fails at the start position when the hash before it is wrong', () => {
    fc.assert(
      fc.property(rangeOf(1), ({ s, range }) => {
        expect(verifyFrom(range, { position: s, prevHash: 'f'.repeat(64) })).toMatchObject({
          ok: false,
          brokenAt: s,
          verifiedThrough: s - 1,
        });
      }),
    );
  });

  it('fails at the start when the first entry is not the start position', () => {
    fc.assert(
      fc.property(rangeOf(2), ({ entries, s, range, prevHash }) => {
        fc.pre(s < entries.length);
        // The first entry of the range dropped: position s is missing.
        expect(verifyFrom(range.slice(1), { position: s, prevHash })).toMatchObject({
          ok: false,
          brokenAt: s,
        });
      }),
    );
  });

  it('breaks exactly where an entry of the range was changed', () => {
    fc.assert(
      fc.property(
        rangeOf(1).chain((r) => fc.tuple(fc.constant(r), fc.integer({ min: r.s, max: r.entries.length }))),
        ([{ s, range, prevHash }, k]) => {
          // Generated keys are at most 12 characters, so this one is always new.
          const tampered = replaceAt(range, k, { data: { __tampered_with__: true } });
          expect(verifyFrom(tampered, { position: s, prevHash })).toMatchObject({
            ok: false,
            brokenAt: k,
            verifiedThrough: k - 1,
          });
        },
      ),
    );
  });

  it('still fails when a checkpoint of the range lies beyond its last entry', () => {
    fc.assert(
      fc.property(rangeOf(2), ({ entries, s, range, prevHash }) => {
        fc.pre(s < entries.length);
        const checkpoints = [checkpointAt(entries, entries.length)];
        expect(verifyFrom(range.slice(0, -1), { position: s, prevHash }, checkpoints)).toMatchObject({
          ok: false,
          brokenAt: entries.length,
        });
      }),
    );
  });

  it('behaves as before without a start, and refuses a start below 1', () => {
    const entries = buildLedger(fc.sample(eventSpec, { numRuns: 4, seed: 3 }));
    expect(verifyFrom(entries, { position: 1, prevHash: GENESIS_HASH })).toEqual(verify(entries));
    // Without a start, a range that begins later is a missing position 1.
    expect(verify(entries.slice(1))).toMatchObject({ ok: false, brokenAt: 1 });
    expect(() => new ChainVerifier([], knownKeys, { position: 0, prevHash: GENESIS_HASH })).toThrow(
      RangeError,
    );
  });
});
