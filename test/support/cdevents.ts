import { randomUUID } from 'node:crypto';
import { CloudEvent } from 'cloudevents';

/**
 * CDEvents built from the examples of the CDEvents specification (its `conformance/` and
 * `examples/` files: the same subjects, ids, sources and contents), one per recognised type, in
 * the type version and specification release asked for. Tests override what correlation needs.
 */

export type Kind =
  | 'service.deployed'
  | 'service.upgraded'
  | 'service.rolledback'
  | 'service.removed'
  | 'environment.modified'
  | 'testcaserun.finished'
  | 'testsuiterun.finished'
  | 'incident.detected'
  | 'incident.resolved'
  | 'pipelinerun.started'
  | 'pipelinerun.finished';

/** The specification release that defined each type version (0.1.1 of services: 0.2 and 0.3). */
const RELEASE_OF: Record<string, string> = { '0.1.0': '0.1.0', '0.1.1': '0.2.0', '0.2.0': '0.4.1' };
const RUN_RELEASE_OF: Record<string, string> = { '0.1.0': '0.3.0', '0.2.0': '0.4.1' };

export const SPEC_SOURCE = '/event/source/123';
export const SPEC_ARTIFACT =
  'pkg:oci/myapp@sha256%3A0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427';

/** The subject of each type's specification example. */
function subjectOf(kind: Kind): {
  id: string;
  source: string;
  type: string;
  content: Record<string, unknown>;
} {
  switch (kind) {
    case 'service.deployed':
    case 'service.upgraded':
    case 'service.rolledback':
      return {
        id: 'mySubject123',
        source: SPEC_SOURCE,
        type: 'service',
        content: { environment: { id: 'test123' }, artifactId: SPEC_ARTIFACT },
      };
    case 'service.removed':
      return {
        id: 'mySubject123',
        source: SPEC_SOURCE,
        type: 'service',
        content: { environment: { id: 'test123' } },
      };
    case 'environment.modified':
      return {
        id: 'test123',
        source: SPEC_SOURCE,
        type: 'environment',
        content: { name: 'testEnv', url: 'https://example.org/testEnv' },
      };
    case 'testcaserun.finished':
      return {
        id: 'myTestCaseRun123',
        source: SPEC_SOURCE,
        type: 'testCaseRun',
        content: {
          outcome: 'pass',
          environment: { id: 'test123', source: 'testkube-dev-123' },
          testSuiteRun: { id: 'myTestSuiteRun123', source: SPEC_SOURCE },
          testCase: {
            id: '92834723894',
            version: '1.0',
            name: 'Login Test',
            type: 'integration',
            uri: 'https://testkube.mycluster.internal/tests/92834723894',
          },
        },
      };
    case 'testsuiterun.finished':
      return {
        id: 'myTestSuiteRun123',
        source: SPEC_SOURCE,
        type: 'testSuiteRun',
        content: {
          outcome: 'fail',
          severity: 'critical',
          reason: 'Host 123.34.23.32 not found',
          environment: { id: 'test123', source: 'testkube-dev-123' },
          testSuite: {
            id: '92834723894',
            name: 'Auth TestSuite',
            version: '1.0',
            uri: 'https://testkube.mycluster.internal/testsuites/92834723894',
          },
        },
      };
    case 'incident.detected':
    case 'incident.resolved':
      return {
        id: 'incident-123',
        source: '/monitoring/prod1',
        type: 'incident',
        content: {
          description:
            kind === 'incident.detected' ? 'Response time above 10ms' : 'Response time restored below 10ms',
          environment: { id: 'test123', source: '/iaas/geo1' },
          service: { id: 'mySubject123', source: '/clusterA/namespaceB' },
          artifactId: SPEC_ARTIFACT,
        },
      };
    case 'pipelinerun.started':
      return {
        id: 'mySubject123',
        source: SPEC_SOURCE,
        type: 'pipelineRun',
        content: { pipelineName: 'myPipeline', url: 'https://www.example.com/mySubject123' },
      };
    case 'pipelinerun.finished':
      return {
        id: 'mySubject123',
        source: SPEC_SOURCE,
        type: 'pipelineRun',
        content: {
          pipelineName: 'myPipeline',
          url: 'https://www.example.com/mySubject123',
          outcome: 'failure',
          errors: 'Something went wrong\nWith some more details',
        },
      };
    default:
      return kind satisfies never;
  }
}

export interface CDEventOptions {
  id?: string;
  source?: string;
  timestamp?: string;
  content?: Record<string, unknown>;
  customData?: Record<string, unknown>;
}

/**
 * A CDEvent (the CloudEvent's data) of this type and type version, as the specification's
 * example has it.
 *
 * @example
 * cdevent('service.deployed', '0.2.0').context.version; // '0.4.1'
 */
export function cdevent(kind: Kind, version: string, options: CDEventOptions = {}) {
  const runType = kind.startsWith('test') || kind.startsWith('incident');
  const release = (runType ? RUN_RELEASE_OF : RELEASE_OF)[version] ?? '0.4.1';
  const type = `dev.cdevents.${kind}.${version}`;
  const subject = subjectOf(kind);
  return {
    context: {
      version: release,
      id: options.id ?? '271069a8-fc18-44f1-b38f-9d70a1695819',
      source: options.source ?? SPEC_SOURCE,
      type,
      timestamp: options.timestamp ?? new Date().toISOString(),
      ...(release.startsWith('0.4') ? { chainId: '4c8cb7dd-3448-41de-8768-eec704e2829b' } : {}),
    },
    subject: { ...subject, content: { ...subject.content, ...options.content } },
    ...(options.customData ? { customData: options.customData } : {}),
  };
}

/**
 * A CloudEvent (the SDK's own class) carrying that CDEvent, as the CDEvents binding asks: same
 * id, source and type as the CDEvent's context. Extensions (e.g. `rolloutid`) go alongside.
 */
export function cloudEventOf(
  kind: Kind,
  version: string,
  options: CDEventOptions & { extensions?: Record<string, string> } = {},
) {
  const id = options.id ?? randomUUID();
  const data = cdevent(kind, version, { ...options, id });
  return new CloudEvent({
    specversion: '1.0',
    id,
    source: data.context.source,
    type: data.context.type,
    time: data.context.timestamp,
    datacontenttype: 'application/json',
    data,
    ...options.extensions,
  });
}
