import { Module, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { isBlank, parseJsonStrictly } from '../common/strict-json.js';
import { EventStoreModule } from '../event-store/event-store.module.js';
import { RolloutsModule } from '../rollouts/rollouts.module.js';
import { BATCH_TYPE, STRUCTURED_TYPE } from './cdevents/cloudevent.js';
import { IngestController } from './ingest.controller.js';
import { CLOUDEVENTS_ROUTE } from './ingest.dto.js';
import { IngestRepository } from './ingest.repository.js';
import { IngestService } from './ingest.service.js';

/** Fastify's own "unsupported media type" error, so the problem filter answers it as Fastify would. */
function unsupported(type: string): Error & { statusCode: number; code: string } {
  return Object.assign(new Error(`Unsupported Media Type: ${type} (only ${CLOUDEVENTS_ROUTE} takes it)`), {
    statusCode: 415,
    code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE',
  });
}

/**
 * Teaches Fastify the two CloudEvents media types, for the ingest route only: parsed as JSON by
 * Fastify's own parser (with its prototype-poisoning guard and the body limit), like
 * `application/json`. Binary mode needs nothing more: its body is the CDEvent, `application/json`.
 */
export function addCloudEventsParsers(fastify: FastifyInstance): void {
  const parseJson = fastify.getDefaultJsonParser('error', 'error');
  for (const type of [STRUCTURED_TYPE, BATCH_TYPE]) {
    if (fastify.hasContentTypeParser(type)) continue;
    // Bytes, not text: bytes that are not UTF-8 are a 400, not silently U+FFFD (as for JSON).
    fastify.addContentTypeParser(type, { parseAs: 'buffer' }, (request, body, done) => {
      if (request.routeOptions?.url !== CLOUDEVENTS_ROUTE) {
        done(unsupported(type), undefined);
        return;
      }
      if (isBlank(body)) {
        done(null, undefined);
        return;
      }
      parseJsonStrictly(parseJson, request, body, done);
    });
  }
}

@Module({
  imports: [EventStoreModule, RolloutsModule],
  controllers: [IngestController],
  providers: [IngestService, IngestRepository],
})
export class IngestModule implements OnModuleInit {
  constructor(private readonly adapter: HttpAdapterHost) {}

  onModuleInit(): void {
    addCloudEventsParsers(this.adapter.httpAdapter.getInstance<FastifyInstance>());
  }
}
