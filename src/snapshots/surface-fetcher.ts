import { createHash } from 'node:crypto';
import type { Json } from '../database/schema.js';
import { assertStorableJson } from '../event-store/storable-json.js';
import type { FetchErrorCode, SurfaceReading } from './snapshot.events.js';

/** How one surface is read: the bounds that keep a hostile target from hurting the service. */
export interface FetchPolicy {
  /** For one attempt, from connecting to the last byte of the body. */
  timeoutMs: number;
  /** Further attempts after a retryable failure (timeout, connection error, 5xx, 429). */
  retries: number;
  /** Pause before the first retry; doubled for each next one. */
  backoffMs: number;
  /** A body larger than this fails the surface (`too-large`) and is not read further. */
  maxBytes: number;
}

/** Same-origin redirects followed at most this many times; a redirect elsewhere is refused. */
const MAX_REDIRECTS = 3;
/** A stored body nests at most this deep: the event holding it stays within the store's limit. */
const BODY_DEPTH_OFFSET = 32;
/** The event store's own nesting limit (storable-json.ts). */
const STORE_MAX_DEPTH = 64;
const MAX_REASONS = 50;
const MAX_REASON_LENGTH = 500;

/** A failed attempt: its code, plain-words message and whether another attempt may help. */
export class SurfaceError extends Error {
  constructor(
    readonly code: FetchErrorCode,
    message: string,
    readonly retryable: boolean,
    readonly httpStatus: number | null = null,
    readonly bytes = 0,
    readonly digest: string | null = null,
  ) {
    super(message);
    this.name = 'SurfaceError';
  }
}

interface Received {
  httpStatus: number;
  bytes: number;
  digest: string;
  body: unknown;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });

/** The first error code of a network failure's cause chain (ECONNREFUSED, ENOTFOUND, ...). */
function causeCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    const inner = (e as { errors?: unknown }).errors;
    if (Array.isArray(inner) && inner.length > 0) return causeCode(inner[0]);
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function describeNetworkError(err: unknown, timeoutMs: number, cancelled: boolean): SurfaceError {
  if (err instanceof SurfaceError) return err;
  const name = (err as { name?: unknown })?.name;
  if (cancelled) return new SurfaceError('cancelled', 'the service is shutting down', false);
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new SurfaceError('timeout', `no complete answer within ${timeoutMs} ms`, true);
  }
  const code = causeCode(err);
  if (code === 'ECONNREFUSED')
    return new SurfaceError('connection-refused', 'the connection was refused', true);
  const message = err instanceof Error ? err.message : String(err);
  return new SurfaceError('network', `network error: ${code ?? message}`, true);
}

/** Reads a body stream up to `maxBytes`, hashing it; more than that is `too-large`. */
async function readCapped(
  body: ReadableStream<Uint8Array> | null,
  maxBytes: number,
  httpStatus: number,
): Promise<{ bytes: Buffer; digest: string }> {
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  let total = 0;
  if (body) {
    const reader = body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw new SurfaceError(
          'too-large',
          `the body exceeds the ${maxBytes}-byte limit (SNAPSHOT_MAX_BYTES)`,
          false,
          httpStatus,
          total,
        );
      }
      hash.update(value);
      chunks.push(Buffer.from(value));
    }
  }
  return { bytes: Buffer.concat(chunks), digest: `sha256:${hash.digest('hex')}` };
}

/** One GET, following only same-origin redirects, with the body capped and parsed as JSON. */
async function attempt(url: string, policy: FetchPolicy, signal: AbortSignal): Promise<Received> {
  let current = new URL(url);
  for (let hop = 0; ; hop++) {
    const res = await fetch(current, {
      method: 'GET',
      redirect: 'manual',
      signal,
      headers: { accept: 'application/json' },
    });
    if (res.status >= 300 && res.status < 400) {
      await res.body?.cancel().catch(() => {});
      const location = res.headers.get('location');
      let next: URL | undefined;
      try {
        next = location ? new URL(location, current) : undefined;
      } catch {
        next = undefined;
      }
      if (!next) {
        throw new SurfaceError(
          'redirect',
          `HTTP ${res.status} redirect without a usable Location`,
          false,
          res.status,
        );
      }
      if (next.origin !== current.origin) {
        throw new SurfaceError(
          'redirect',
          `refused a redirect to another host (${next.origin})`,
          false,
          res.status,
        );
      }
      if (hop >= MAX_REDIRECTS) {
        throw new SurfaceError('redirect', `more than ${MAX_REDIRECTS} redirects`, false, res.status);
      }
      current = next;
      continue;
    }
    const declared = Number(res.headers.get('content-length'));
    if (Number.isFinite(declared) && declared > policy.maxBytes) {
      await res.body?.cancel().catch(() => {});
      throw new SurfaceError(
        'too-large',
        `the body of ${declared} bytes exceeds the ${policy.maxBytes}-byte limit (SNAPSHOT_MAX_BYTES)`,
        false,
        res.status,
      );
    }
    const { bytes, digest } = await readCapped(res.body, policy.maxBytes, res.status);
    if (res.status < 200 || res.status >= 300) {
      throw new SurfaceError(
        'http-status',
        `HTTP ${res.status}`,
        res.status >= 500 || res.status === 429,
        res.status,
        bytes.length,
        digest,
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(bytes.toString('utf8'));
    } catch {
      const type = res.headers.get('content-type') ?? 'no content type';
      throw new SurfaceError(
        'not-json',
        `the body is not JSON (${type.slice(0, 100)})`,
        false,
        res.status,
        bytes.length,
        digest,
      );
    }
    return { httpStatus: res.status, bytes: bytes.length, digest, body };
  }
}

/**
 * `ready` and `reasons` of a surface's body: every surface answers `{ ready: boolean, reasons?: string[] }`.
 * Anything else fails the surface as `invalid-shape`.
 */
export function readinessOf(body: unknown): { ready: boolean; reasons: string[] } | string {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    return 'the body is not a JSON object';
  const { ready, reasons } = body as { ready?: unknown; reasons?: unknown };
  if (typeof ready !== 'boolean') return 'the body has no boolean "ready"';
  if (reasons !== undefined && !Array.isArray(reasons)) return '"reasons" is not an array';
  const list = (Array.isArray(reasons) ? reasons : [])
    .slice(0, MAX_REASONS)
    .map((r) => (typeof r === 'string' ? r : (JSON.stringify(r) ?? String(r))).slice(0, MAX_REASON_LENGTH));
  return { ready, reasons: list };
}

/**
 * GETs one surface within the policy's bounds and describes what came back. Never throws: a
 * hang, a refused connection, a huge or non-JSON body, a redirect to another host all become a
 * `failed` reading with a reason.
 *
 * @example
 * const reading = await fetchSurface('http://platform:8080/api/v1/recovery/readiness', policy);
 * reading.status === 'failed' && reading.error.message; // "no complete answer within 5000 ms"
 */
export async function fetchSurface(
  url: string,
  policy: FetchPolicy,
  cancel?: AbortSignal,
): Promise<SurfaceReading> {
  const started = performance.now();
  let attempts = 0;
  let failure: SurfaceError | undefined;
  for (let i = 0; i <= policy.retries; i++) {
    if (cancel?.aborted) break;
    if (i > 0) await sleep(policy.backoffMs * 2 ** (i - 1), cancel);
    if (cancel?.aborted) break;
    attempts++;
    // Not AbortSignal.timeout(): its timer holds the signal weakly, and inside AbortSignal.any()
    // nothing else holds it strongly, so a garbage collection during the attempt could take it
    // and the attempt never timed out (a target that accepts and never answers hung the
    // snapshot; nodejs/node#57736). This timer holds its controller until cleared.
    const timeout = new AbortController();
    const timer = setTimeout(
      () => timeout.abort(new DOMException('the attempt timed out', 'TimeoutError')),
      policy.timeoutMs,
    );
    timer.unref();
    const signal = cancel ? AbortSignal.any([cancel, timeout.signal]) : timeout.signal;
    try {
      const received = await attempt(url, policy, signal);
      return describe(url, received, attempts, performance.now() - started);
    } catch (err) {
      failure = describeNetworkError(err, policy.timeoutMs, cancel?.aborted === true);
      if (!failure.retryable) break;
    } finally {
      clearTimeout(timer);
    }
  }
  const error = failure ?? new SurfaceError('cancelled', 'the service is shutting down', false);
  return {
    status: 'failed',
    url,
    httpStatus: error.httpStatus,
    latencyMs: Math.round(performance.now() - started),
    attempts,
    bytes: error.bytes,
    digest: error.digest,
    error: {
      code: error.code,
      message: attempts > 1 ? `${error.message} (after ${attempts} attempts)` : error.message,
    },
  };
}

/** A received body as a reading: `ok` when it is storable JSON of the surface's shape. */
function describe(url: string, received: Received, attempts: number, elapsed: number): SurfaceReading {
  const base = {
    url,
    httpStatus: received.httpStatus,
    latencyMs: Math.round(elapsed),
    attempts,
    bytes: received.bytes,
    digest: received.digest,
  };
  try {
    assertStorableJson(received.body, 'body', BODY_DEPTH_OFFSET);
  } catch (err) {
    // The store's depth limit counts from the event's root; say it from the body's.
    const why = (err as Error).message.replace(
      /nesting deeper than \d+ levels/,
      `nesting deeper than ${STORE_MAX_DEPTH - BODY_DEPTH_OFFSET} levels`,
    );
    return {
      status: 'failed',
      ...base,
      error: { code: 'invalid-body', message: `the JSON cannot be stored: ${why}` },
    };
  }
  const readiness = readinessOf(received.body);
  if (typeof readiness === 'string') {
    return { status: 'failed', ...base, error: { code: 'invalid-shape', message: readiness } };
  }
  return { status: 'ok', ...base, ...readiness, body: received.body as Json };
}
