import { Injectable } from '@nestjs/common';
import { RULE_IDS } from '../compliance/rule.js';
import { evaluateRollout } from '../compliance/rulebook.js';
import type { Json } from '../database/schema.js';
import { EventStore } from '../event-store/event-store.repository.js';
import { LedgerRepository } from '../ledger/ledger.repository.js';
import { LedgerService } from '../ledger/ledger.service.js';
import type { VerifyResult } from '../ledger/ledger.types.js';
import { ReportsService } from '../reporting/reports.service.js';
import { rolloutStreamId } from '../rollouts/rollout.events.js';
import { decodeCursor, encodeCursor } from '../rollouts/rollouts.dto.js';
import { type RolloutSummary, RolloutsRepository } from '../rollouts/rollouts.repository.js';
import { RolloutsService, toRecorded } from '../rollouts/rollouts.service.js';
import { DriftRepository } from '../snapshots/drift.repository.js';
import { SnapshotsRepository } from '../snapshots/snapshots.repository.js';
import type { DriftView, IntegrityView, RolloutsFilter } from './pages.js';

/** Rows per console page. */
export const PAGE_SIZE = 25;
/** A verdict filter reads at most this many batches of PAGE_SIZE rollouts per page it shows. */
const MAX_BATCHES = 20;

const day = (date: string, plusDays = 0) =>
  new Date(Date.parse(`${date}T00:00:00.000Z`) + plusDays * 86_400_000);

/** Whether a rollout's verdicts match the console's verdict and failing-rule filters. */
export function matchesVerdict(
  verdicts: readonly string[],
  filter: Pick<RolloutsFilter, 'verdict' | 'rule'>,
): boolean {
  if (filter.rule && verdicts[RULE_IDS.indexOf(filter.rule as (typeof RULE_IDS)[number])] !== 'fail')
    return false;
  const failing = verdicts.includes('fail');
  const pending = verdicts.includes('pending');
  switch (filter.verdict) {
    case 'failing':
      return failing;
    case 'pending':
      return !failing && pending;
    case 'compliant':
      return !failing && !pending;
    default:
      return true;
  }
}

/** What the console's pages show, read through the same services as the API. */
@Injectable()
export class ConsoleService {
  constructor(
    private readonly rollouts: RolloutsRepository,
    private readonly rolloutsService: RolloutsService,
    private readonly store: EventStore,
    private readonly ledger: LedgerRepository,
    private readonly ledgerService: LedgerService,
    private readonly drift: DriftRepository,
    private readonly snapshots: SnapshotsRepository,
    readonly reports: ReportsService,
  ) {}

  /** Targets with their last 30 days of drift, the open drift, the latest snapshots. */
  async driftView(): Promise<DriftView> {
    const since = new Date(Date.now() - 29 * 86_400_000);
    const latest = await this.snapshots.latestPerTarget();
    const targets = await Promise.all(
      latest.map(async (l) => ({ ...l, days: await this.drift.timeline(l.target, since) })),
    );
    const [open, snapshots] = await Promise.all([this.drift.open(), this.snapshots.list({ limit: 20 })]);
    return { targets, open, snapshots };
  }

  /**
   * A page of rollouts, newest first, each with its verdicts by rule as the ledger stands now.
   * Verdicts are computed, not stored, so a verdict filter reads on (keyset, a batch at a time)
   * until the page is full, the rollouts run out, or MAX_BATCHES were read; the cursor then
   * points after the last rollout read, so the next page goes on from there.
   */
  async listRollouts(
    filter: RolloutsFilter,
    cursor: string | undefined,
  ): Promise<{
    rows: { summary: RolloutSummary; verdicts: string[] }[];
    next?: string;
    scannedOut: boolean;
  }> {
    const head = await this.ledger.head();
    const rows: { summary: RolloutSummary; verdicts: string[] }[] = [];
    let after = cursor ? decodeCursor(cursor) : undefined;
    const filtering = Boolean(filter.verdict || filter.rule);
    for (let batch = 0; batch < MAX_BATCHES; batch++) {
      const summaries = await this.rollouts.list({
        status: filter.status,
        product: filter.product,
        environment: filter.environment,
        from: filter.from ? day(filter.from) : undefined,
        to: filter.to ? day(filter.to, 1) : undefined,
        limit: PAGE_SIZE,
        cursor: after,
      });
      const streams = await this.store.readStreamsAsOf(
        summaries.map((s) => rolloutStreamId(s.id)),
        head.position,
      );
      for (const summary of summaries) {
        const events = (streams.get(rolloutStreamId(summary.id)) ?? []).map(toRecorded);
        const verdicts = evaluateRollout(events).map((r) => r.verdict);
        after = { createdAt: summary.createdAt, id: summary.id };
        if (!matchesVerdict(verdicts, filter)) continue;
        rows.push({ summary, verdicts });
        if (rows.length === PAGE_SIZE) break;
      }
      const exhausted = summaries.length < PAGE_SIZE;
      if (rows.length === PAGE_SIZE || exhausted || !filtering) {
        const more = !exhausted || (rows.length === PAGE_SIZE && after !== undefined);
        return {
          rows,
          next: more && after ? encodeCursor(after.createdAt, after.id) : undefined,
          scannedOut: false,
        };
      }
    }
    return { rows, next: after ? encodeCursor(after.createdAt, after.id) : undefined, scannedOut: true };
  }

  /** The rollout's plan in force, as plain parts for the page. */
  async plan(id: string): Promise<Record<string, Json>> {
    const view = await this.rolloutsService.get(id);
    return JSON.parse(JSON.stringify(view.plan)) as Record<string, Json>;
  }

  async integrity(result?: VerifyResult): Promise<IntegrityView> {
    const [head, checkpoint] = await Promise.all([this.ledger.head(), this.ledgerService.latestCheckpoint()]);
    return { head, checkpoint, publicKey: this.ledgerService.currentPublicKey(), result };
  }

  verify(): Promise<VerifyResult> {
    return this.ledgerService.verify();
  }
}
