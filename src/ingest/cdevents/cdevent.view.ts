import type { Json } from '../../database/schema.js';
import type { CDEventKind } from './cdevents.schemas.js';

/**
 * What the ledger reads from a valid CDEvent, whatever its type and version: the names it
 * correlates on and the facts it records.
 */
export interface CDEventView {
  kind: CDEventKind;
  /** The full type, e.g. `dev.cdevents.service.deployed.0.2.0`. */
  type: string;
  /** The specification version the event was built for (`context.version`). */
  specVersion: string;
  subjectId: string;
  /** `context.timestamp`, as an ISO-8601 time with milliseconds. */
  occurredAt: string;
  /** The environment id (`content.environment.id`; the subject itself for environment events). */
  environment?: string;
  /** The service id (the subject of service events; `content.service.id` of incidents). */
  service?: string;
  artifactId?: string;
  outcome?: string;
  reason?: string;
  /** A human name: pipeline, test case or suite, environment. */
  name?: string;
  url?: string;
  description?: string;
  customData?: Json;
}

/** The CDEvent as its schema parsed it (the shape every recognised type shares loosely). */
export interface ParsedCDEvent {
  context: { version: string; timestamp: string };
  subject: { id: string; content: Record<string, unknown> };
  customData?: Json;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const idOf = (v: unknown): string | undefined =>
  typeof v === 'object' && v !== null ? str((v as { id?: unknown }).id) : undefined;
const nameOf = (v: unknown): string | undefined =>
  typeof v === 'object' && v !== null
    ? (str((v as { name?: unknown }).name) ?? str((v as { id?: unknown }).id))
    : undefined;

/** Drops undefined fields, so views compare and store cleanly. */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/**
 * The view of a CDEvent that passed its schema. Pure.
 *
 * @example
 * viewOf('service.deployed', 'dev.cdevents.service.deployed.0.2.0', parsed).service; // 'service/myapp'
 */
export function viewOf(kind: CDEventKind, type: string, event: ParsedCDEvent): CDEventView {
  const c = event.subject.content;
  const subject = kind.split('.')[0];
  return defined({
    kind,
    type,
    specVersion: event.context.version,
    subjectId: event.subject.id,
    occurredAt: new Date(event.context.timestamp).toISOString(),
    environment: subject === 'environment' ? event.subject.id : idOf(c.environment),
    service: subject === 'service' ? event.subject.id : idOf(c.service),
    artifactId: str(c.artifactId),
    outcome: str(c.outcome),
    reason: str(c.reason) ?? str(c.errors),
    name:
      str(c.pipelineName) ??
      nameOf(c.testCase) ??
      nameOf(c.testSuite) ??
      (subject === 'environment' ? str(c.name) : undefined),
    url: str(c.url),
    description: str(c.description),
    customData: event.customData,
  });
}

/** `service/myapp` → [`service/myapp`, `myapp`]: a plan names products without the kind prefix. */
export function namesOf(id: string): string[] {
  const last = id.split('/').filter(Boolean).at(-1);
  return last && last !== id ? [id, last] : [id];
}

/**
 * One line for a human, e.g. `service/myapp deployed to production (pkg:oci/myapp@sha256:…)`.
 */
export function summaryOf(v: CDEventView): string {
  const env = v.environment ? ` in ${v.environment}` : '';
  const artifact = v.artifactId ? ` (${v.artifactId})` : '';
  const because = v.reason ? `: ${v.reason}` : '';
  switch (v.kind) {
    case 'service.deployed':
      return `${v.subjectId} deployed${env}${artifact}`;
    case 'service.upgraded':
      return `${v.subjectId} upgraded${env}${artifact}`;
    case 'service.rolledback':
      return `${v.subjectId} rolled back${env}${artifact}`;
    case 'service.removed':
      return `${v.subjectId} removed${env}`;
    case 'environment.modified':
      return `environment ${v.subjectId}${v.name && v.name !== v.subjectId ? ` (${v.name})` : ''} modified`;
    case 'testcaserun.finished':
      return `test case ${v.name ?? v.subjectId} finished${env}: ${v.outcome ?? 'no outcome'}${because}`;
    case 'testsuiterun.finished':
      return `test suite ${v.name ?? v.subjectId} finished${env}: ${v.outcome ?? 'no outcome'}${because}`;
    case 'incident.detected':
    case 'incident.resolved': {
      const service = v.service ? ` on ${v.service}` : '';
      const what = v.kind === 'incident.detected' ? 'detected' : 'resolved';
      return `incident ${v.subjectId} ${what}${env}${service}${v.description ? `: ${v.description}` : ''}`;
    }
    case 'pipelinerun.started':
      return `pipeline run ${v.name ?? v.subjectId} started${v.url ? ` (${v.url})` : ''}`;
    case 'pipelinerun.finished':
      return `pipeline run ${v.name ?? v.subjectId} finished${v.outcome ? `: ${v.outcome}` : ''}${because}`;
    default:
      return v.kind satisfies never;
  }
}
