import { z } from 'zod';

/**
 * The CDEvents this ledger records, written from the field definitions of the CDEvents
 * specification, versions 0.1 to 0.4 (https://cdevents.dev). A CDEvent is the `data` of a
 * CloudEvent: `{ context, subject: { id, source?, type, content }, customData?, customDataContentType? }`.
 *
 * Event types are versioned on their own (`dev.cdevents.service.deployed.0.2.0`); the
 * specification version travels in `context.version`. Which type versions each release defined:
 *
 * | type                                         | 0.1   | 0.2   | 0.3   | 0.4   |
 * | -------------------------------------------- | ----- | ----- | ----- | ----- |
 * | service.deployed/upgraded/rolledback/removed | 0.1.0 | 0.1.1 | 0.1.1 | 0.2.0 |
 * | environment.modified                         | 0.1.0 | 0.1.1 | 0.1.1 | 0.2.0 |
 * | pipelinerun.started/finished                 | 0.1.0 | 0.1.1 | 0.1.1 | 0.2.0 |
 * | testcaserun.finished, testsuiterun.finished  | -     | -     | 0.1.0 | 0.2.0 |
 * | incident.detected/resolved                   | -     | -     | 0.1.0 | 0.2.0 |
 *
 * Within a type, the subject content these versions define is the same; what changed between
 * releases is the context (0.4 added `chainId`, `links` and `schemaUri`). As in the
 * specification's JSON schemas, unknown fields are refused (`additionalProperties: false`).
 */

const MAX_TEXT = 4000;
const text = (max = 1000) => z.string().min(1, 'must not be empty').max(max);
const optionalText = (max = MAX_TEXT) => z.string().max(max).optional();
/** An RFC 3339 time with an offset, at any sub-second precision (tools send microseconds). */
export const rfc3339 = z.iso.datetime({
  offset: true,
  message: 'must be an RFC 3339 time, e.g. 2026-11-26T09:00:00Z',
});

/** A reference to another subject: `{ id, source? }` (an environment, a service, a test suite run). */
const reference = z.strictObject({ id: text(), source: text(2048).optional() });

/** The outcome of a test case or test suite run (0.3+). */
export const TEST_OUTCOMES = ['pass', 'fail', 'cancel', 'error'] as const;
const testOutcome = z.enum(TEST_OUTCOMES);
const severity = z.enum(['low', 'medium', 'high', 'critical']);
/** The outcome of a pipeline run. */
export const PIPELINE_OUTCOMES = ['success', 'error', 'failure'] as const;

const serviceWithArtifact = z.strictObject({ environment: reference, artifactId: text(2048) });

const testCase = z.strictObject({
  id: text(),
  version: optionalText(200),
  name: optionalText(1000),
  type: z
    .enum(['performance', 'functional', 'unit', 'security', 'compliance', 'integration', 'e2e', 'other'])
    .optional(),
  uri: optionalText(2048),
});

const testSuite = z.strictObject({
  id: text(),
  version: optionalText(200),
  name: optionalText(1000),
  uri: optionalText(2048),
});

const incident = z.strictObject({
  description: optionalText(),
  environment: reference,
  service: reference.optional(),
  artifactId: optionalText(2048),
});

/** A recognised CDEvents type: its subject type, the versions known, and its subject content. */
interface TypeDefinition {
  subjectType: string;
  versions: readonly string[];
  content: z.ZodType;
}

const SERVICE_VERSIONS = ['0.1.0', '0.1.1', '0.2.0'] as const;
const RUN_VERSIONS = ['0.1.0', '0.2.0'] as const;

/** Keyed by `<subject>.<predicate>`. */
export const CDEVENT_TYPES = {
  'service.deployed': { subjectType: 'service', versions: SERVICE_VERSIONS, content: serviceWithArtifact },
  'service.upgraded': { subjectType: 'service', versions: SERVICE_VERSIONS, content: serviceWithArtifact },
  'service.rolledback': { subjectType: 'service', versions: SERVICE_VERSIONS, content: serviceWithArtifact },
  'service.removed': {
    subjectType: 'service',
    versions: SERVICE_VERSIONS,
    content: z.strictObject({ environment: reference }),
  },
  'environment.modified': {
    subjectType: 'environment',
    versions: SERVICE_VERSIONS,
    content: z.strictObject({ name: optionalText(1000), url: optionalText(2048) }),
  },
  'testcaserun.finished': {
    subjectType: 'testCaseRun',
    versions: RUN_VERSIONS,
    content: z.strictObject({
      environment: reference,
      outcome: testOutcome,
      reason: optionalText(),
      severity: severity.optional(),
      testCase: testCase.optional(),
      testSuiteRun: reference.optional(),
    }),
  },
  'testsuiterun.finished': {
    subjectType: 'testSuiteRun',
    versions: RUN_VERSIONS,
    content: z.strictObject({
      environment: reference,
      outcome: testOutcome,
      reason: optionalText(),
      severity: severity.optional(),
      testSuite: testSuite.optional(),
    }),
  },
  'incident.detected': { subjectType: 'incident', versions: RUN_VERSIONS, content: incident },
  'incident.resolved': { subjectType: 'incident', versions: RUN_VERSIONS, content: incident },
  'pipelinerun.started': {
    subjectType: 'pipelineRun',
    versions: SERVICE_VERSIONS,
    content: z.strictObject({ pipelineName: text(), url: text(2048) }),
  },
  'pipelinerun.finished': {
    subjectType: 'pipelineRun',
    versions: SERVICE_VERSIONS,
    content: z.strictObject({
      pipelineName: optionalText(1000),
      url: optionalText(2048),
      outcome: z.enum(PIPELINE_OUTCOMES).optional(),
      errors: optionalText(),
    }),
  },
} as const satisfies Record<string, TypeDefinition>;

export type CDEventKind = keyof typeof CDEVENT_TYPES;
export const CDEVENT_KINDS = Object.keys(CDEVENT_TYPES) as CDEventKind[];

/** Releases of the specification this ledger reads (`context.version`), by `major.minor`. */
export const SPEC_RELEASES = ['0.1', '0.2', '0.3', '0.4'] as const;

const contextFields = {
  version: text(50),
  id: text(1024),
  source: text(2048),
  type: text(256),
  timestamp: rfc3339,
};
/** The context of releases 0.1 to 0.3. */
const contextV01 = z.strictObject(contextFields);
/** 0.4 added the chain id, links between events and a custom schema URI. */
const contextV04 = z.strictObject({
  ...contextFields,
  chainId: text(1024).optional(),
  links: z.array(z.json()).max(100).optional(),
  schemaUri: text(2048).optional(),
});

const customData = z.union([z.record(z.string(), z.json()), z.string().max(1_000_000)]);

/** The whole CDEvent schema of one type in one specification release. */
export function cdeventSchema(kind: CDEventKind, release: (typeof SPEC_RELEASES)[number]) {
  const definition: TypeDefinition = CDEVENT_TYPES[kind];
  return z.strictObject({
    context: release === '0.4' ? contextV04 : contextV01,
    subject: z.strictObject({
      id: text(),
      source: text(2048).optional(),
      type: z.literal(definition.subjectType, { message: `must be "${definition.subjectType}"` }),
      content: definition.content,
    }),
    customData: customData.optional(),
    customDataContentType: text(200).optional(),
  });
}

const TYPE = /^dev\.cdevents\.([a-z]+)\.([a-z]+)\.(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)$/;

/** A CloudEvent `type` read as a CDEvents type, or why it is not one this ledger records. */
export type ParsedType = { ok: true; kind: CDEventKind; version: string } | { ok: false; message: string };

/**
 * Reads `dev.cdevents.<subject>.<predicate>.<version>`.
 *
 * @example
 * parseCDEventType('dev.cdevents.service.deployed.0.2.0'); // { ok: true, kind: 'service.deployed', version: '0.2.0' }
 * parseCDEventType('dev.cdevents.service.deployed.9.0.0'); // { ok: false, message: 'unknown CDEvents version 9.0.0 …' }
 */
export function parseCDEventType(type: string): ParsedType {
  const match = TYPE.exec(type);
  if (!match) {
    return { ok: false, message: 'must be a CDEvents type: dev.cdevents.<subject>.<predicate>.<version>' };
  }
  const [, subject, predicate, version] = match as unknown as [string, string, string, string];
  const kind = `${subject}.${predicate}`;
  if (!(kind in CDEVENT_TYPES)) {
    return {
      ok: false,
      message: `${kind} is not a CDEvents type this ledger records (it records ${CDEVENT_KINDS.join(', ')})`,
    };
  }
  const known = CDEVENT_TYPES[kind as CDEventKind].versions as readonly string[];
  if (!known.includes(version)) {
    return {
      ok: false,
      message: `unknown CDEvents version ${version} of ${kind} (known: ${known.join(', ')})`,
    };
  }
  return { ok: true, kind: kind as CDEventKind, version };
}

/** `0.4.1` → `0.4`; undefined for a release this ledger does not know. */
export function specRelease(version: unknown): (typeof SPEC_RELEASES)[number] | undefined {
  if (typeof version !== 'string') return undefined;
  const match = /^(\d+\.\d+)\.\d+(?:-[0-9A-Za-z.-]+)?$/.exec(version);
  const release = match?.[1];
  return SPEC_RELEASES.find((r) => r === release);
}
