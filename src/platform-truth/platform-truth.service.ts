import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { LedgerRepository } from '../ledger/ledger.repository.js';
import { ChainVerifier } from '../ledger/verify.js';
import { ProjectionsRepository } from '../projections/projections.repository.js';
import type { Plan } from '../rollouts/rollout.plan.js';
import { RolloutsService } from '../rollouts/rollouts.service.js';
import { type DriftRecord, DriftRepository } from '../snapshots/drift.repository.js';
import { SnapshotsRepository } from '../snapshots/snapshots.repository.js';
import { cronPeriodMs, cronTimeOf } from '../snapshots/tick.js';
import { PlatformTruthRepository } from './platform-truth.repository.js';
import { VersionTruthRepository } from './version-truth.repository.js';

/** Events or ledger entries waiting longer than this mean a background worker is not keeping up. */
export const LAG_LIMIT_MS = 10_000;
const VERIFY_BATCH = 2000;
const MAX_IN_FLIGHT = 200;

/** Every surface answers this: a verdict, and the reasons for it in plain words. */
export interface Readiness {
  ready: boolean;
  reasons: string[];
  checkedAt: string;
}

const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;

/** True when the plan declares a rollback boundary: the reversible state and a planned step after which it ends. */
export function declaresRollbackBoundary(plan: Plan): boolean {
  const boundary = plan.rollbackBoundary;
  return (
    !!boundary?.reversibleState &&
    !!boundary.irreversibleAfterStepId &&
    (plan.sequence ?? []).some((s) => s.id === boundary.irreversibleAfterStepId)
  );
}

/** One line for an open drift, naming what was expected, what was seen, and whose it is. */
export function describeDrift(d: DriftRecord): string {
  const attribution = d.attribution as { kind?: string; rolloutId?: string; stepId?: string | null };
  const whose =
    attribution.kind === 'rollout'
      ? `during rollout ${attribution.rolloutId}${attribution.stepId ? ` step ${attribution.stepId}` : ''}`
      : 'out-of-band';
  const basis =
    d.basis === 'ledger'
      ? `the ledger verified ${d.expected ?? 'its absence'} at position ${d.ledgerPosition}`
      : `it was ${d.expected ?? 'absent'} before`;
  const what =
    d.kind === 'version' ? `${d.product} is ${d.observed ?? 'absent'}` : `${d.surface} is ${d.observed}`;
  return `${d.target}: ${what}, but ${basis} (${whose}, since ${d.detectedAt})`;
}

/**
 * The service's own four shared-truth surfaces, from its projections, each a verdict with reasons:
 * version truth, open drift, observability readiness and recovery readiness.
 */
@Injectable()
export class PlatformTruthService {
  /** How far the chain is known to verify: each call checks only what was added since. */
  private verified: { position: number; hash: string } | undefined;
  private verifyFailure: string | undefined;
  private verifying: Promise<void> | undefined;
  private readonly startedAt = Date.now();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly repo: PlatformTruthRepository,
    private readonly truth: VersionTruthRepository,
    private readonly drift: DriftRepository,
    private readonly snapshots: SnapshotsRepository,
    private readonly ledger: LedgerRepository,
    private readonly projections: ProjectionsRepository,
    private readonly rollouts: RolloutsService,
  ) {}

  /** `GET /platform/version-truth`: per product and environment, the version last verified and where. */
  async versionTruth() {
    const [products, lagging] = await Promise.all([
      this.truth.list(),
      this.laggingProjections(['version-truth']),
    ]);
    const reasons = [...lagging];
    if (products.length === 0) reasons.push('no completed rollout has verified a product version yet');
    const ready = reasons.length === 0;
    if (ready) {
      const environments = new Set(products.map((p) => p.environment)).size;
      const last = Math.max(...products.map((p) => p.position));
      reasons.push(
        `${products.length} product version(s) verified by completed rollouts in ${environments} environment(s), the latest at ledger position ${last}`,
      );
    }
    return { ready, reasons, checkedAt: new Date().toISOString(), products };
  }

  /** `GET /contracts/drift`: open drift between the ledger's truth and the latest snapshots. */
  async contractsDrift() {
    const targets = this.config.snapshots.targets;
    const configured = new Set(targets.map((t) => t.name));
    const [all, latest, lagging] = await Promise.all([
      this.drift.open(),
      this.snapshots.latestPerTarget(),
      this.laggingProjections(['drift', 'snapshots']),
    ]);
    // Drift of a target no longer configured can never resolve: it is history, not truth.
    const open = all.filter((d) => configured.has(d.target));
    const reasons = [...lagging, ...open.map(describeDrift)];
    if (targets.length === 0)
      reasons.push('no snapshot targets are configured (SNAPSHOT_TARGETS), so drift is unknown');
    for (const target of targets) {
      if (!latest.some((l) => l.target === target.name && l.lastTakenAt !== null)) {
        reasons.push(`${target.name}: no snapshot taken yet, so its drift is unknown`);
      }
    }
    const ready = reasons.length === 0;
    if (ready) reasons.push(`no open drift across ${targets.length} target(s)`);
    return { ready, reasons, checkedAt: new Date().toISOString(), drift: open };
  }

  /** `GET /observability/readiness`: database, sequencer and projection lag, snapshot freshness. */
  async observabilityReadiness() {
    const now = Date.now();
    const reasons: string[] = [];
    const database = await this.repo.ping().then(
      () => ({ ok: true }),
      (err: unknown) => ({
        ok: false,
        detail: err instanceof Error ? err.message.split('\n')[0] : 'unreachable',
      }),
    );
    if (!database.ok) {
      reasons.push(`the database does not answer: ${(database as { detail?: string }).detail}`);
      return { ready: false, reasons, checkedAt: new Date(now).toISOString(), database };
    }
    const pending = await this.repo.pendingEvents();
    const sequencerLagMs = pending.oldestAt ? now - pending.oldestAt.getTime() : 0;
    if (sequencerLagMs > LAG_LIMIT_MS) {
      reasons.push(
        `${pending.count} event(s) wait for a ledger position, the oldest for ${seconds(sequencerLagMs)}: is a sequencer running?`,
      );
    }
    const projections = await this.projectionLag(now);
    for (const p of projections) {
      if (p.lagMs > LAG_LIMIT_MS) {
        reasons.push(
          `projection ${p.name} is ${p.lag} entries behind the ledger, the oldest for ${seconds(p.lagMs)}`,
        );
      }
    }
    const snapshots = await this.snapshotFreshness(now);
    for (const s of snapshots) if (!s.fresh) reasons.push(s.reason);
    const ready = reasons.length === 0;
    if (ready) {
      reasons.push(
        `the database answers, nothing waits for the sequencer or a projection longer than ${seconds(LAG_LIMIT_MS)}, and ${snapshots.length} target(s) have fresh snapshots`,
      );
    }
    return {
      ready,
      reasons,
      checkedAt: new Date(now).toISOString(),
      database,
      sequencer: { pending: pending.count, lagMs: sequencerLagMs },
      projections,
      snapshots,
    };
  }

  /** `GET /recovery/readiness`: the chain verifies to its head, a fresh signed checkpoint, rollback boundaries. */
  async recoveryReadiness() {
    const now = Date.now();
    const reasons: string[] = [];
    const head = await this.ledger.head();
    await this.verifyToHead(head.position);
    if (this.verifyFailure) reasons.push(`the ledger does not verify: ${this.verifyFailure}`);
    const checkpoint = await this.ledger.latestCheckpoint();
    const freshWithinMs = 2 * this.config.sequencer.checkpointIntervalMs + 5_000;
    if (head.position > 0 && !checkpoint) {
      reasons.push(`no signed checkpoint yet, and the ledger holds ${head.position} entries`);
    } else if (checkpoint && checkpoint.position < head.position) {
      const age = now - Date.parse(checkpoint.createdAt);
      if (age > freshWithinMs) {
        reasons.push(
          `the latest checkpoint signs position ${checkpoint.position} of ${head.position} and is ${seconds(age)} old (fresh is under ${seconds(freshWithinMs)})`,
        );
      }
    }
    const inFlight = await this.inFlightRollouts();
    for (const r of inFlight) {
      if (!r.rollbackBoundaryDeclared) {
        reasons.push(
          `rollout ${r.id}${r.title ? ` (${r.title})` : ''} is ${r.status} without a declared rollback boundary`,
        );
      }
    }
    const ready = reasons.length === 0;
    if (ready) {
      reasons.push(
        `the ledger verifies through position ${head.position}, ${checkpoint ? `the latest checkpoint (position ${checkpoint.position}) is signed and fresh` : 'nothing to checkpoint yet'}, and ${inFlight.length} in-flight rollout(s) declare a rollback boundary`,
      );
    }
    return {
      ready,
      reasons,
      checkedAt: new Date(now).toISOString(),
      ledger: { head: head.position, verifiedThrough: this.verified?.position ?? 0, ok: !this.verifyFailure },
      checkpoint: checkpoint ?? null,
      inFlight,
    };
  }

  /** Reasons naming each of these projections that falls more than LAG_LIMIT_MS behind. */
  private async laggingProjections(names: string[]): Promise<string[]> {
    const lag = await this.projectionLag(Date.now());
    return lag
      .filter((p) => names.includes(p.name) && p.lagMs > LAG_LIMIT_MS)
      .map(
        (p) =>
          `projection ${p.name} is ${p.lag} entries behind the ledger, the oldest for ${seconds(p.lagMs)}`,
      );
  }

  /** Per served projection: entries behind the head, and for how long the oldest has waited. */
  private async projectionLag(now: number) {
    const head = await this.ledger.head();
    const versions = (await this.projections.versions()).filter((v) => v.active);
    return Promise.all(
      versions.map(async (v) => {
        const lag = head.position - v.position;
        const since = lag > 0 ? await this.repo.sequencedAt(v.position + 1) : undefined;
        return {
          name: v.name,
          version: v.version,
          position: v.position,
          lag,
          lagMs: since ? now - since.getTime() : 0,
        };
      }),
    );
  }

  /**
   * Per target: fresh when its latest snapshot was taken (not failed) within two cron periods plus
   * the longest a tick can take. Before any snapshot, the process's own start counts.
   */
  private async snapshotFreshness(now: number) {
    const { targets, cron, timeoutMs, retries, retryBackoffMs } = this.config.snapshots;
    if (targets.length === 0) return [];
    const windowMs =
      2 * cronPeriodMs(cronTimeOf(cron), new Date(now)) +
      timeoutMs * (retries + 1) +
      retryBackoffMs * (2 ** retries - 1) +
      5_000;
    const latest = await this.snapshots.latestPerTarget();
    return targets.map((t) => {
      const l = latest.find((x) => x.target === t.name);
      const since = l?.lastTakenAt ? Date.parse(l.lastTakenAt) : this.startedAt;
      const age = now - since;
      let reason = `${t.name}: the latest snapshot is ${seconds(age)} old`;
      let fresh = age <= windowMs;
      if (!fresh) {
        reason = l?.lastTakenAt
          ? `${t.name}: no snapshot taken for ${seconds(age)} (fresh is under ${seconds(windowMs)})`
          : `${t.name}: no snapshot taken since the service started ${seconds(age)} ago`;
      } else if (l && l.latestStatus === 'failed') {
        fresh = false;
        reason = `${t.name}: the latest snapshot (tick ${l.latestAt}) failed`;
      }
      return {
        target: t.name,
        fresh,
        lastTakenAt: l?.lastTakenAt ?? null,
        latestStatus: l?.latestStatus ?? null,
        reason,
      };
    });
  }

  private async inFlightRollouts() {
    const lists = await Promise.all(
      (['in_progress', 'rolling_back'] as const).map((status) =>
        this.rollouts.list({ status, limit: MAX_IN_FLIGHT }),
      ),
    );
    const summaries = lists.flat();
    const states = await Promise.all(summaries.map((s) => this.rollouts.load(s.id)));
    return states.map((s) => ({
      id: s.id,
      title: s.plan.title ?? null,
      status: s.status,
      rollbackBoundaryDeclared: declaresRollbackBoundary(s.plan),
    }));
  }

  /**
   * Verifies the chain from where the last call stopped up to `head`: every link, event hash and
   * checkpoint signature, incrementally (the full walk is `/ledger/verify`). A failure sticks.
   */
  private async verifyToHead(head: number): Promise<void> {
    while (!this.verifyFailure && (this.verified?.position ?? 0) < head) {
      const before = this.verified?.position ?? 0;
      this.verifying ??= this.verifyBatch(head).finally(() => {
        this.verifying = undefined;
      });
      await this.verifying;
      if ((this.verified?.position ?? 0) === before && !this.verifyFailure) return; // nothing more to read yet
    }
  }

  private async verifyBatch(head: number): Promise<void> {
    const from = this.verified ?? { position: 0, hash: (await this.ledger.hashAt(0)) ?? '' };
    const entries = await this.ledger.read(from.position, Math.min(VERIFY_BATCH, head - from.position));
    const last = entries.at(-1);
    if (!last) return;
    const checkpoints = (await this.ledger.checkpoints(from.position, VERIFY_BATCH + 1)).filter(
      (c) => c.position <= last.position,
    );
    const keys = new Map((await this.ledger.publicKeys()).map((k) => [k.keyId, k.publicKeyPem]));
    const verifier = new ChainVerifier(checkpoints, keys, {
      position: from.position + 1,
      prevHash: from.hash,
    });
    for (const entry of entries) if (!verifier.push(entry)) break;
    const result = verifier.result();
    if (!result.ok) {
      this.verifyFailure = `broken at position ${result.brokenAt}: ${result.reason}`;
      return;
    }
    this.verified = { position: last.position, hash: last.hash };
  }
}
