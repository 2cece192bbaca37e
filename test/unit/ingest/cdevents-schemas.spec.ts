import { describe, expect, it } from 'vitest';
import {
  CDEVENT_KINDS,
  parseCDEventType,
  specRelease,
} from '../../../src/ingest/cdevents/cdevents.schemas.js';

describe('parseCDEventType', () => {
  it.each([
    ['dev.cdevents.service.deployed.0.1.0', 'service.deployed', '0.1.0'],
    ['dev.cdevents.service.rolledback.0.2.0', 'service.rolledback', '0.2.0'],
    ['dev.cdevents.environment.modified.0.1.1', 'environment.modified', '0.1.1'],
    ['dev.cdevents.testcaserun.finished.0.1.0', 'testcaserun.finished', '0.1.0'],
    ['dev.cdevents.testsuiterun.finished.0.2.0', 'testsuiterun.finished', '0.2.0'],
    ['dev.cdevents.incident.resolved.0.2.0', 'incident.resolved', '0.2.0'],
    ['dev.cdevents.pipelinerun.started.0.1.1', 'pipelinerun.started', '0.1.1'],
  ])('%s', (type, kind, version) => {
    expect(parseCDEventType(type)).toEqual({ ok: true, kind, version });
  });

  it.each([
    [
      'dev.cdevents.service.deployed.0.9.0',
      /unknown CDEvents version 0\.9\.0 of service\.deployed \(known: 0\.1\.0, 0\.1\.1, 0\.2\.0\)/,
    ],
    ['dev.cdevents.testcaserun.finished.0.1.1', /unknown CDEvents version 0\.1\.1 of testcaserun\.finished/],
    ['dev.cdevents.artifact.packaged.0.1.0', /artifact\.packaged is not a CDEvents type this ledger records/],
    ['dev.cdevents.service.deployed', /must be a CDEvents type/],
    ['com.example.service.deployed.0.1.0', /must be a CDEvents type/],
  ])('refuses %s', (type, message) => {
    const parsed = parseCDEventType(type);
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.message).toMatch(message);
  });

  it('recognises the eleven types the ledger maps', () => {
    expect(CDEVENT_KINDS).toHaveLength(11);
  });
});

describe('specRelease', () => {
  it.each([
    ['0.1.0', '0.1'],
    ['0.2.0', '0.2'],
    ['0.3.0', '0.3'],
    ['0.4.0', '0.4'],
    ['0.4.1', '0.4'],
    ['0.5.0', undefined],
    ['1.0.0', undefined],
    ['0.4', undefined],
    [4, undefined],
    [undefined, undefined],
  ] as const)('%s → %s', (version, release) => {
    expect(specRelease(version)).toBe(release);
  });
});
