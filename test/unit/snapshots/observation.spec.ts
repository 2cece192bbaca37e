import { describe, expect, it } from 'vitest';
import { failureReason, versionsOf } from '../../../src/snapshots/observation.js';
import type { SurfaceReading } from '../../../src/snapshots/snapshot.events.js';
import { readinessOf } from '../../../src/snapshots/surface-fetcher.js';
import { cronPeriodMs, cronTimeOf, tickSlot } from '../../../src/snapshots/tick.js';

describe('versionsOf', () => {
  it.each<[string, unknown, Record<string, string> | string]>([
    ['a versions map', { ready: true, versions: { gateway: '1.5.0' } }, { gateway: '1.5.0' }],
    [
      'the service’s own products list, this environment only',
      {
        products: [
          { product: 'gateway', environment: 'production', version: '1.5.0' },
          { product: 'gateway', environment: 'staging', version: '1.6.0' },
          { product: 'identity', version: '3.3.0' },
        ],
      },
      { gateway: '1.5.0', identity: '3.3.0' },
    ],
    ['nothing to read', { ready: true }, 'the body has neither "versions" nor "products"'],
    ['not an object', ['gateway'], 'the body is not a JSON object'],
    [
      'a version that is not a string',
      { versions: { gateway: 15 } },
      'the version of gateway is not a string of 1-100 characters',
    ],
    ['a product name that is not one', { versions: { '../x': '1' } }, '"../x" is not a product name'],
    [
      'a product listed twice',
      {
        products: [
          { product: 'a', version: '1' },
          { product: 'a', version: '2' },
        ],
      },
      'a is listed twice',
    ],
  ])('%s', (_story, body, expected) => {
    expect(versionsOf(body, 'production')).toEqual(expected);
  });
});

describe('readinessOf', () => {
  it.each<[unknown, unknown]>([
    [
      { ready: true, reasons: ['ok'] },
      { ready: true, reasons: ['ok'] },
    ],
    [{ ready: false }, { ready: false, reasons: [] }],
    [{ ready: 'yes' }, 'the body has no boolean "ready"'],
    [{ ready: true, reasons: 'fine' }, '"reasons" is not an array'],
    [null, 'the body is not a JSON object'],
    [
      { ready: true, reasons: [{ code: 1 }, 'x'.repeat(600)] },
      { ready: true, reasons: ['{"code":1}', 'x'.repeat(500)] },
    ],
  ])('%j', (body, expected) => {
    expect(readinessOf(body)).toEqual(expected);
  });
});

describe('failureReason', () => {
  const ok: SurfaceReading = {
    status: 'ok',
    url: 'u',
    httpStatus: 200,
    latencyMs: 1,
    attempts: 1,
    bytes: 2,
    digest: 'sha256:x',
    ready: true,
    reasons: [],
    body: {},
  };
  const failed = (message: string): SurfaceReading => ({
    status: 'failed',
    url: 'u',
    httpStatus: null,
    latencyMs: 1,
    attempts: 2,
    bytes: 0,
    digest: null,
    error: { code: 'timeout', message },
  });
  it('names every failed surface, in surface order, or nothing when all were read', () => {
    const all = {
      'version-truth': ok,
      'contracts-drift': ok,
      'observability-readiness': ok,
      'recovery-readiness': ok,
    };
    expect(failureReason(all)).toBeUndefined();
    expect(
      failureReason({ ...all, 'recovery-readiness': failed('slow'), 'contracts-drift': failed('slower') }),
    ).toBe('contracts-drift: timeout: slower; recovery-readiness: timeout: slow');
  });
});

describe('tickSlot', () => {
  it.each<[string, string, string, string]>([
    [
      'every 15 minutes, a timer a little late',
      '*/15 * * * *',
      '2026-11-26T07:15:00.180Z',
      '2026-11-26T07:15:00.000Z',
    ],
    [
      'every 15 minutes, a timer a little early',
      '*/15 * * * *',
      '2026-11-26T07:14:59.900Z',
      '2026-11-26T07:15:00.000Z',
    ],
    [
      'every 15 minutes, a tick seconds late',
      '*/15 * * * *',
      '2026-11-26T07:15:03.000Z',
      '2026-11-26T07:15:00.000Z',
    ],
    ['every second, on time', '* * * * * *', '2026-11-26T07:15:07.010Z', '2026-11-26T07:15:07.000Z'],
    ['every second, a hair early', '* * * * * *', '2026-11-26T07:15:06.950Z', '2026-11-26T07:15:07.000Z'],
    [
      'every second, late within the timer threshold',
      '* * * * * *',
      '2026-11-26T07:15:07.240Z',
      '2026-11-26T07:15:07.000Z',
    ],
    [
      'far from any slot (a stalled process): the second it runs in',
      '0 0 1 1 *',
      '2026-11-26T07:15:07.600Z',
      '2026-11-26T07:15:07.000Z',
    ],
  ])('%s', (_story, cron, now, slot) => {
    expect(tickSlot(cronTimeOf(cron), new Date(now)).toISOString()).toBe(slot);
  });

  it('gives the period between two slots', () => {
    expect(cronPeriodMs(cronTimeOf('*/15 * * * *'), new Date('2026-11-26T07:00:00Z'))).toBe(15 * 60_000);
    expect(cronPeriodMs(cronTimeOf('* * * * * *'))).toBe(1000);
  });
});
