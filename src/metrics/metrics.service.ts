import { Injectable } from '@nestjs/common';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** One registry per application instance, so tests that start several apps never collide. */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();

  readonly httpRequests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests answered, by method, route and status code',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });

  readonly httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly eventsAppended = new Counter({
    name: 'ledger_events_appended_total',
    help: 'Events appended to the event store by this instance',
    registers: [this.registry],
  });

  readonly groupCommitCalls = new Counter({
    name: 'ledger_group_commit_calls_total',
    help: 'Calls to append_events sent by this instance (one transaction each; not the retries alone after a failed batch)',
    registers: [this.registry],
  });

  readonly groupCommitAppends = new Counter({
    name: 'ledger_group_commit_appends_total',
    help: 'Appends those calls carried: divided by the calls, how many appends committed together',
    registers: [this.registry],
  });

  // Where an append's time goes under load: queued in this process, or in its call.
  readonly groupCommitQueueWait = new Histogram({
    name: 'ledger_group_commit_queue_wait_seconds',
    help: 'Time an append waited in this process for its call to append_events to go out',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [this.registry],
  });

  readonly groupCommitCallDuration = new Histogram({
    name: 'ledger_group_commit_call_duration_seconds',
    help: 'Time from a call to append_events going out to this process reading its answer: pool, round trip, statement, commit and event-loop delay',
    buckets: [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly ledgerHead = new Gauge({
    name: 'ledger_head_position',
    help: 'Ledger position of the last sequenced event seen by this instance',
    registers: [this.registry],
  });

  readonly sequencerLeader = new Gauge({
    name: 'ledger_sequencer_leader',
    help: '1 when this instance holds the sequencer lock',
    registers: [this.registry],
  });

  readonly sequencerLag = new Histogram({
    name: 'ledger_sequencer_lag_seconds',
    help: 'Time from an event being recorded to it receiving a ledger position',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
