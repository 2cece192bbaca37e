import type { RuleResult } from '../compliance/rulebook.js';
import type { Json } from '../database/schema.js';
import type { RecordedRolloutEvent } from '../rollouts/rollout.events.js';
import { missingPlanParts, SURFACES } from '../rollouts/rollout.plan.js';
import { foldRollout } from '../rollouts/rollout.state.js';
import { driftInWindow, type LedgerDriftEvent, type ReportDrift } from './drift-window.js';

/** What a report was built from: an auditor matches `chainHead` against a signed checkpoint. */
export interface ReportBasis {
  position: number;
  chainHead: string;
  rulebookVersion: string;
  serviceVersion: string;
}

export interface RolloutReport {
  report: 'rollout';
  basis: ReportBasis;
  rollout: {
    id: string;
    title: string | null;
    scope: string | null;
    environment: string | null;
    status: string;
    planRevision: number;
    products: { product: string; fromVersion: string | null; toVersion: string }[];
    createdAt: string | null;
    startedAt: string | null;
    completedAt: string | null;
    abortedAt: string | null;
    abortReason: string | null;
    missingPlanParts: string[];
  };
  summary: { pass: number; fail: number; pending: number; notApplicable: number };
  rules: RuleResult[];
  timeline: {
    stepId: string;
    order: number | null;
    planned: boolean;
    status: string;
    attempts: number;
    startedAt: string | null;
    endedAt: string | null;
  }[];
  readbacks: {
    surface: string;
    pre: ReadbackCell[];
    during: ReadbackCell[];
    post: ReadbackCell[];
  }[];
  pathVerifications: {
    path: string;
    verdict: string;
    evidence: string | null;
    at: string;
    position: number | null;
  }[];
  rollbacks: { reason: string; toStepId: string | null; startedAt: string; completedAt: string | null }[];
  /** Facts reported by delivery tools (CDEvents) and recorded on the rollout, in stream order. */
  externalFacts: ExternalFactRow[];
  /** Drift of shared truth open during the rollout's window, in its environment (from snapshots). */
  drift: ReportDrift[];
  actors: { id: string; name: string; role: string; events: number }[];
  events: {
    position: number | null;
    streamVersion: number;
    type: string;
    recordedAt: string;
    actor: string | null;
  }[];
}

/**
 * One `ExternalFactRecorded` event: an incident, environment change or pipeline run a delivery
 * tool reported, or an unattributed CloudEvent an engineer attached (`attachedFrom`).
 */
export interface ExternalFactRow {
  /** CDEvents `<subject>.<predicate>`, e.g. `incident.detected`. */
  kind: string;
  cdeventType: string;
  /** CloudEvents source and id of the original event. */
  source: string;
  cloudEventId: string;
  subjectId: string;
  /** When it happened, as the tool reported it. */
  occurredAt: string;
  summary: string;
  environment: string | null;
  service: string | null;
  outcome: string | null;
  url: string | null;
  /** The unattributed event it was attached from; null when it was correlated on arrival. */
  attachedFrom: string | null;
  note: string | null;
  /** When the ledger recorded it, its ledger position, and who recorded it. */
  recordedAt: string;
  position: number | null;
  actor: string | null;
}

interface ReadbackCell {
  verdict: string;
  expected: Json;
  observed: Json;
  stepId: string | null;
  at: string;
  position: number | null;
}

/**
 * The per-rollout compliance report, as data. Pure and deterministic: the same events, basis and
 * rule results always give the same report (the generation time is not part of it).
 */
export function buildRolloutReport(
  rolloutId: string,
  events: readonly RecordedRolloutEvent[],
  rules: RuleResult[],
  basis: ReportBasis,
  driftEvents: readonly LedgerDriftEvent[] = [],
): RolloutReport {
  const state = foldRollout(rolloutId, events);
  const order = new Map((state.plan.sequence ?? []).map((s) => [s.id, s.order]));
  const positionOfVersion = new Map(events.map((e) => [e.streamVersion, e.position ?? null]));
  const readbackEvents = events.filter((e) => e.type === 'ReadbackRecorded');
  const actors = new Map<string, { id: string; name: string; role: string; events: number }>();
  for (const e of events) {
    const actor = e.metadata?.actor;
    if (!actor) continue;
    const entry = actors.get(actor.id) ?? { id: actor.id, name: actor.name, role: actor.role, events: 0 };
    entry.events += 1;
    actors.set(actor.id, entry);
  }
  const count = (v: RuleResult['verdict']) => rules.filter((r) => r.verdict === v).length;
  return {
    report: 'rollout',
    basis,
    rollout: {
      id: rolloutId,
      title: state.plan.title ?? null,
      scope: state.plan.scope ?? null,
      environment: state.plan.environment ?? null,
      status: state.status,
      planRevision: state.planRevision,
      products: (state.plan.products ?? []).map((p) => ({
        product: p.product,
        fromVersion: p.fromVersion ?? null,
        toVersion: p.toVersion,
      })),
      createdAt: state.createdAt ?? null,
      startedAt: state.startedAt ?? null,
      completedAt: state.completedAt ?? null,
      abortedAt: state.abortedAt ?? null,
      abortReason: state.abortReason ?? null,
      missingPlanParts: missingPlanParts(state.plan),
    },
    summary: {
      pass: count('pass'),
      fail: count('fail'),
      pending: count('pending'),
      notApplicable: count('not-applicable'),
    },
    rules,
    timeline: state.steps.map((s) => ({
      stepId: s.id,
      order: order.get(s.id) ?? null,
      planned: s.planned,
      status: s.status,
      attempts: s.attempts,
      startedAt: s.startedAt ?? null,
      endedAt: s.completedAt ?? s.failedAt ?? null,
    })),
    readbacks: SURFACES.map((surface) => {
      const cells = (phase: string): ReadbackCell[] =>
        readbackEvents
          .filter((e) => e.data.phase === phase && e.data.surface === surface)
          .map((e) => {
            const d = (e as RecordedRolloutEvent & { type: 'ReadbackRecorded' }).data;
            return {
              verdict: d.verdict,
              expected: d.expected,
              observed: d.observed,
              stepId: d.stepId ?? null,
              at: e.recordedAt,
              position: positionOfVersion.get(e.streamVersion) ?? null,
            };
          });
      return { surface, pre: cells('pre'), during: cells('during'), post: cells('post') };
    }).filter((row) => row.pre.length + row.during.length + row.post.length > 0),
    pathVerifications: events
      .filter((e) => e.type === 'PathVerified')
      .map((e) => {
        const d = (e as RecordedRolloutEvent & { type: 'PathVerified' }).data;
        return {
          path: d.path,
          verdict: d.verdict,
          evidence: d.evidence ?? null,
          at: e.recordedAt,
          position: e.position ?? null,
        };
      }),
    rollbacks: state.rollbacks.map((r) => ({
      reason: r.reason,
      toStepId: r.toStepId ?? null,
      startedAt: r.startedAt,
      completedAt: r.completedAt ?? null,
    })),
    externalFacts: events
      .filter((e) => e.type === 'ExternalFactRecorded')
      .map((e) => {
        const d = (e as RecordedRolloutEvent & { type: 'ExternalFactRecorded' }).data;
        return {
          kind: d.kind,
          cdeventType: d.cdeventType,
          source: d.source,
          cloudEventId: d.cloudEventId,
          subjectId: d.subjectId,
          occurredAt: d.occurredAt,
          summary: d.summary,
          environment: d.environment ?? null,
          service: d.service ?? null,
          outcome: d.outcome ?? null,
          url: d.url ?? null,
          attachedFrom: d.attachedFrom ?? null,
          note: d.note ?? null,
          recordedAt: e.recordedAt,
          position: e.position ?? null,
          actor: e.metadata?.actor?.name ?? null,
        };
      }),
    drift: driftInWindow(driftEvents, {
      environment: state.plan.environment ?? null,
      from: state.startedAt ?? null,
      to: state.completedAt ?? state.abortedAt ?? null,
    }),
    actors: [...actors.values()].sort((a, b) => a.id.localeCompare(b.id)),
    events: events.map((e) => ({
      position: e.position ?? null,
      streamVersion: e.streamVersion,
      type: e.type,
      recordedAt: e.recordedAt,
      actor: e.metadata?.actor?.name ?? null,
    })),
  };
}
