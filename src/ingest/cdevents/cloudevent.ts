import { z } from 'zod';
import { InvalidInput } from '../../common/errors.js';
import type { Json } from '../../database/schema.js';
import { assertStorableJson } from '../../event-store/storable-json.js';
import { identifier } from '../../rollouts/rollout.plan.js';
import { type CDEventView, type ParsedCDEvent, viewOf } from './cdevent.view.js';
import { cdeventSchema, parseCDEventType, rfc3339, SPEC_RELEASES, specRelease } from './cdevents.schemas.js';

/**
 * CloudEvents 1.0 over HTTP (https://github.com/cloudevents/spec, HTTP protocol binding), read
 * without a library: binary mode (attributes in `ce-*` headers, the data as the body), structured
 * mode (`application/cloudevents+json`) and batch mode (`application/cloudevents-batch+json`).
 * Everything here is pure: the controller hands over headers and the parsed body.
 */

export type CloudEventMode = 'binary' | 'structured' | 'batch';

export const STRUCTURED_TYPE = 'application/cloudevents+json';
export const BATCH_TYPE = 'application/cloudevents-batch+json';
/** At most this many CloudEvents in one batch (each becomes its own append). */
export const MAX_BATCH = 100;

export interface HttpMessage {
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

/** A field that is wrong, named as the sender wrote it (`ce-type`, `[2].data.subject.id`). */
export interface Issue {
  field: string;
  message: string;
}

/** A CloudEvent that passed every check: what the ledger records, and what it correlates on. */
export interface ValidCloudEvent {
  mode: CloudEventMode;
  /** The CloudEvent as received, in structured form (binary mode: its headers as attributes). */
  original: { [attribute: string]: Json };
  id: string;
  source: string;
  type: string;
  /** The `rolloutid` extension attribute, if sent. */
  rolloutId?: string;
  /** The `stepid` extension attribute, if sent. */
  stepId?: string;
  cdevent: CDEventView;
}

export type ReadResult = { ok: true; events: ValidCloudEvent[] } | { ok: false; issues: Issue[] };

const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

/** The media type of a Content-Type header, lower-cased, without parameters. */
export function mediaType(contentType: string | undefined): string | undefined {
  return contentType?.split(';')[0]?.trim().toLowerCase() || undefined;
}

/** Which content mode a request uses: by its Content-Type, as the HTTP binding says. */
export function modeOf(headers: HttpMessage['headers']): CloudEventMode {
  const type = mediaType(first(headers['content-type']));
  if (type === BATCH_TYPE) return 'batch';
  if (type?.startsWith('application/cloudevents')) return 'structured';
  return 'binary';
}

/**
 * Reads and validates every CloudEvent of a request. All or nothing: one bad event makes the
 * whole request a 400, so a batch is never half recorded.
 *
 * @example
 * readCloudEvents({ headers: { 'content-type': 'application/cloudevents+json' }, body: event });
 * // { ok: true, events: [{ mode: 'structured', id: '…', cdevent: { kind: 'service.deployed', … } }] }
 */
export function readCloudEvents(message: HttpMessage): ReadResult {
  const mode = modeOf(message.headers);
  if (mode === 'binary') {
    const read = fromHeaders(message);
    return 'event' in read ? validate(read.event, mode, binaryField) : read;
  }
  if (mode === 'structured') {
    if (!isObject(message.body)) {
      return fail(
        '(body)',
        'must be a CloudEvent: a JSON object with specversion, id, source, type and data',
      );
    }
    return validate(message.body, mode, (f) => f);
  }
  const body = message.body;
  if (!Array.isArray(body) || body.length === 0) {
    return fail('(body)', 'must be a JSON array of CloudEvents (a batch), with at least one');
  }
  if (body.length > MAX_BATCH) return fail('(body)', `a batch holds at most ${MAX_BATCH} CloudEvents`);
  const events: ValidCloudEvent[] = [];
  const issues: Issue[] = [];
  body.forEach((item, i) => {
    const at = (f: string) => `[${i}].${f}`;
    const result = isObject(item)
      ? validate(item, mode, at)
      : fail(`[${i}]`, 'must be a CloudEvent (a JSON object)');
    if (result.ok) events.push(...result.events);
    else issues.push(...result.issues);
  });
  return issues.length > 0 ? { ok: false, issues } : { ok: true, events };
}

const fail = (field: string, message: string): ReadResult => ({ ok: false, issues: [{ field, message }] });

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** In binary mode an attribute is a `ce-` header; the data is the body. */
function binaryField(field: string): string {
  if (field === 'datacontenttype') return 'content-type';
  if (field === 'data' || field.startsWith('data.')) return field;
  return `ce-${field}`;
}

/**
 * Binary mode: the `ce-*` headers (percent-decoded, as the HTTP binding asks) become the
 * attributes, Content-Type the `datacontenttype`, the body the `data`.
 */
function fromHeaders(message: HttpMessage): { event: Record<string, unknown> } | ReadResult {
  const event: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(message.headers)) {
    if (!name.toLowerCase().startsWith('ce-')) continue;
    const value = first(raw);
    if (value === undefined) continue;
    try {
      event[name.slice(3).toLowerCase()] = decodeURIComponent(value);
    } catch {
      return fail(name.toLowerCase(), 'is not a well-formed percent-encoded value');
    }
  }
  const contentType = first(message.headers['content-type']);
  if (contentType !== undefined) event.datacontenttype = contentType;
  if (message.body !== undefined) event.data = message.body;
  return { event };
}

/** A message for an attribute that is missing, and another for one of the wrong kind. */
const attribute =
  (missing: string, wrong: string) =>
  (issue: { input?: unknown }): string =>
    issue.input === undefined ? missing : wrong;

const JSON_MEDIA = /^application\/(?:[\w.-]+\+)?json\s*(?:;.*)?$/i;
const EXTENSION_NAME = /^[a-z0-9]{1,50}$/;
const CONTEXT_ATTRIBUTES = new Set([
  'specversion',
  'id',
  'source',
  'type',
  'subject',
  'time',
  'datacontenttype',
  'dataschema',
  'data',
  'data_base64',
]);

/** The context attributes of CloudEvents 1.0, and the two extensions this ledger reads. */
const attributesSchema = z.object({
  specversion: z.literal('1.0', {
    error: attribute(
      'is required: this endpoint takes CloudEvents 1.0 (specversion "1.0")',
      'must be "1.0": this endpoint takes CloudEvents 1.0',
    ),
  }),
  id: z
    .string({ error: attribute('is required', 'must be a string') })
    .min(1, 'must not be empty')
    .max(1024),
  source: z
    .string({ error: attribute('is required', 'must be a URI-reference (a string)') })
    .min(1, 'must not be empty')
    .max(2048),
  type: z
    .string({ error: attribute('is required: the CDEvents type', 'must be a string') })
    .min(1, 'must not be empty')
    .max(256),
  subject: z.string().min(1).max(1024).optional(),
  time: rfc3339.optional(),
  dataschema: z.string().min(1).max(2048).optional(),
  datacontenttype: z
    .string()
    .regex(JSON_MEDIA, 'must be a JSON media type, e.g. application/json: a CDEvent is JSON')
    .optional(),
  rolloutid: z.uuid({ message: 'must be a rollout id (a UUID)' }).optional(),
  stepid: identifier.optional(),
});

/** Zod's path as the sender would write it: `data.subject.content.environment.id`, `links[0]`. */
function pathOf(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)),
    '',
  );
}

function zodIssues(error: z.ZodError, base: string, at: (field: string) => string): Issue[] {
  return error.issues.flatMap((issue) => {
    const path = [base, pathOf(issue.path)].filter(Boolean).join('.');
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({
        field: at([path, key].filter(Boolean).join('.')),
        message: 'is not a field of this CDEvent',
      }));
    }
    return [{ field: at(path || '(event)'), message: issue.message }];
  });
}

/** Extensions: lower-case alphanumeric names, string, number or boolean values (CloudEvents 1.0). */
function extensionIssues(event: Record<string, unknown>, at: (f: string) => string): Issue[] {
  const issues: Issue[] = [];
  for (const [name, value] of Object.entries(event)) {
    if (CONTEXT_ATTRIBUTES.has(name)) continue;
    if (!EXTENSION_NAME.test(name)) {
      issues.push({ field: at(name), message: 'is not a CloudEvents attribute name (a-z, 0-9)' });
    } else if (!['string', 'number', 'boolean'].includes(typeof value)) {
      issues.push({ field: at(name), message: 'an extension attribute must be a string, number or boolean' });
    }
  }
  return issues;
}

/** Every check of one CloudEvent carrying a CDEvent; the issues name fields through `at`. */
function validate(
  event: Record<string, unknown>,
  mode: CloudEventMode,
  at: (f: string) => string,
): ReadResult {
  try {
    assertStorableJson(event, '');
  } catch (err) {
    if (err instanceof InvalidInput) return fail(at(err.field.replace(/^\./, '') || '(event)'), message(err));
    throw err;
  }
  if ('data_base64' in event) {
    return fail(at('data_base64'), 'is not accepted: a CDEvent is JSON, sent as data');
  }
  const attributes = attributesSchema.safeParse(event);
  const issues = [
    ...(attributes.success ? [] : zodIssues(attributes.error, '', at)),
    ...extensionIssues(event, at),
  ];
  if (!attributes.success || issues.length > 0) return { ok: false, issues };
  const a = attributes.data;

  const parsedType = parseCDEventType(a.type);
  if (!parsedType.ok) return fail(at('type'), parsedType.message);
  if (!isObject(event.data)) {
    return fail(
      at('data'),
      event.data === undefined ? 'is required: the CDEvent' : 'must be a CDEvent object',
    );
  }
  const context = event.data.context;
  const version = isObject(context) ? context.version : undefined;
  const release = specRelease(version);
  if (!release) {
    return fail(
      at('data.context.version'),
      version === undefined
        ? 'is required: the CDEvents specification version'
        : `unknown CDEvents specification version ${JSON.stringify(version)} (known: ${SPEC_RELEASES.join(', ')})`,
    );
  }
  const cdevent = cdeventSchema(parsedType.kind, release).safeParse(event.data);
  if (!cdevent.success) return { ok: false, issues: zodIssues(cdevent.error, 'data', at) };
  if (cdevent.data.context.type !== a.type) {
    return fail(at('data.context.type'), `must be the CloudEvent's type (${a.type})`);
  }
  const customData = cdevent.data.customData;
  const rolloutId = a.rolloutid?.toLowerCase() ?? rolloutIdIn(customData);
  if (rolloutId === null) return fail(at('data.customData.rolloutId'), 'must be a rollout id (a UUID)');
  const stepId = a.stepid ?? stepIdIn(customData);
  if (stepId === null) return fail(at('data.customData.stepId'), 'must be a step id of the plan');
  return {
    ok: true,
    events: [
      {
        mode,
        original: event as { [attribute: string]: Json },
        id: a.id,
        source: a.source,
        type: a.type,
        ...(rolloutId ? { rolloutId } : {}),
        ...(stepId ? { stepId } : {}),
        cdevent: viewOf(parsedType.kind, a.type, cdevent.data as unknown as ParsedCDEvent),
      },
    ],
  };
}

const message = (err: InvalidInput) => err.message.slice(err.field.length + 2);

/** `customData.rolloutId`: undefined when absent, null when present but not a UUID. */
function rolloutIdIn(customData: unknown): string | undefined | null {
  const value = isObject(customData) ? customData.rolloutId : undefined;
  if (value === undefined) return undefined;
  return z.uuid().safeParse(value).success ? (value as string).toLowerCase() : null;
}

/** `customData.stepId`: undefined when absent, null when present but not an identifier. */
function stepIdIn(customData: unknown): string | undefined | null {
  const value = isObject(customData) ? customData.stepId : undefined;
  if (value === undefined) return undefined;
  return identifier.safeParse(value).success ? (value as string) : null;
}

/** The path of a representative path a test run verified, if the sender named one (`customData.path`). */
export function pathIn(event: ValidCloudEvent): string | undefined {
  const data = event.cdevent.customData;
  const value = isObject(data) ? data.path : undefined;
  return typeof value === 'string' && value.trim() !== '' ? value.trim().slice(0, 1000) : undefined;
}
