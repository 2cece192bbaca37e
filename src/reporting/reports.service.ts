import { Injectable } from '@nestjs/common';
import type { Principal } from '../auth/principal.js';
import { InvalidInput, NotFound } from '../common/errors.js';
import { evaluateRollout, RULEBOOK_VERSION } from '../compliance/rulebook.js';
import { EventStore } from '../event-store/event-store.repository.js';
import { LedgerRepository } from '../ledger/ledger.repository.js';
import { rolloutStreamId } from '../rollouts/rollout.events.js';
import { toRecorded } from '../rollouts/rollouts.service.js';
import { VERSION } from '../version.js';
import type { LedgerDriftEvent } from './drift-window.js';
import { PeriodAccumulator, type PeriodFilter, type PeriodReport } from './period-report.js';
import { ReportsRepository } from './reports.repository.js';
import { buildRolloutReport, type ReportBasis, type RolloutReport } from './rollout-report.js';

const PAGE = 500;

export const REPORT_FORMATS = ['json', 'csv', 'html', 'pdf'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

/** Builds reports from the ledger, and records every download in it. */
@Injectable()
export class ReportsService {
  constructor(
    private readonly store: EventStore,
    private readonly ledger: LedgerRepository,
    private readonly reports: ReportsRepository,
  ) {}

  /**
   * The rollout's report at a ledger position (default: the head now). Only events with a
   * position at or below it count, so the same asOf always gives the same report.
   */
  async rolloutReport(rolloutId: string, asOf?: number): Promise<RolloutReport> {
    const basis = await this.basis(asOf);
    const report = await this.buildRollout(rolloutId, basis, await this.reports.driftEvents(basis.position));
    if (!report) throw new NotFound('rollout', rolloutId);
    return report;
  }

  /**
   * Every rollout planned in the period (as the ledger stood at asOf), judged by the rulebook,
   * filtered on the plan in force, and aggregated. Reads the ledger a page at a time.
   */
  async periodReport(filter: PeriodFilter, asOf?: number): Promise<PeriodReport> {
    const basis = await this.basis(asOf);
    const acc = new PeriodAccumulator();
    for (let after = 0; ; ) {
      const page = await this.reports.plannedRollouts({
        from: filter.from ? new Date(filter.from) : undefined,
        to: filter.to ? new Date(filter.to) : undefined,
        asOf: basis.position,
        after,
        limit: PAGE,
      });
      const streams = await this.store.readStreamsAsOf(
        page.map((row) => row.stream_id),
        basis.position,
      );
      for (const row of page) {
        const stored = streams.get(row.stream_id);
        if (!stored) continue;
        const events = stored.map(toRecorded);
        const id = row.stream_id.slice('rollout-'.length);
        const report = buildRolloutReport(id, events, evaluateRollout(events), basis);
        if (filter.environment && report.rollout.environment !== filter.environment) continue;
        if (filter.product && !report.rollout.products.some((p) => p.product === filter.product)) continue;
        acc.add(report);
      }
      const last = page.at(-1);
      if (!last || page.length < PAGE) break;
      after = last.position;
      // Let requests queued behind a long report be served between pages.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return acc.result(filter, basis);
  }

  private async basis(asOf: number | undefined): Promise<ReportBasis> {
    const head = await this.ledger.head();
    const position = asOf ?? head.position;
    if (position > head.position) {
      throw new InvalidInput('asOf', `is beyond the ledger head (${head.position})`);
    }
    const chainHead = await this.ledger.hashAt(position);
    if (chainHead === undefined) throw new InvalidInput('asOf', `no ledger entry at position ${position}`);
    return { position, chainHead, rulebookVersion: RULEBOOK_VERSION, serviceVersion: VERSION };
  }

  private async buildRollout(
    rolloutId: string,
    basis: ReportBasis,
    driftEvents: readonly LedgerDriftEvent[],
  ): Promise<RolloutReport | undefined> {
    const stored = await this.store.readStreamAsOf(rolloutStreamId(rolloutId), { position: basis.position });
    if (stored.length === 0) return undefined;
    const events = stored.map(toRecorded);
    return buildRolloutReport(rolloutId, events, evaluateRollout(events), basis, driftEvents);
  }

  /** Who created the rollout (an engineer may read the reports of its own rollouts). */
  async creatorOf(rolloutId: string): Promise<string | undefined> {
    const [first] = await this.store.readStream(rolloutStreamId(rolloutId), { toVersion: 1 });
    const actor = first?.metadata.actor as { id?: unknown } | undefined;
    return typeof actor?.id === 'string' ? actor.id : undefined;
  }

  /** Records a download as an event of its own: who fetched which report or export, as of what. */
  async recordDownload(
    principal: Principal,
    requestId: string,
    report:
      | { kind: 'rollout'; rolloutId: string; format: ReportFormat; position: number; chainHead: string }
      | {
          kind: 'compliance';
          filter: PeriodFilter;
          format: ReportFormat;
          position: number;
          chainHead: string;
        }
      | {
          kind: 'ledger-export';
          format: 'ndjson' | 'csv';
          from: number;
          to: number;
          position: number;
          chainHead: string;
        },
  ): Promise<void> {
    const day = new Date().toISOString().slice(0, 10);
    await this.store.append(
      `report-downloads-${day}`,
      [
        {
          type: 'ReportDownloaded',
          data: report,
          metadata: {
            actor: { id: principal.id, name: principal.name, role: principal.role },
            requestId,
            source: 'rest',
          },
        },
      ],
      { expectedVersion: 'any', streamType: 'report-downloads' },
    );
  }
}
