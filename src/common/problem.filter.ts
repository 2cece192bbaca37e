import {
  type ArgumentsHost,
  Catch,
  type ExceptionFilter,
  HttpException,
  HttpStatus,
  Logger,
} from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { isConnectionFailure } from '../database/pg-errors.js';
import { assertUnreachable, DomainError } from './errors.js';

/** RFC 7807 problem details. `errors` lists each bad field with its path. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  errors?: { field: string; message: string }[];
  [extension: string]: unknown;
}

const PROBLEM_BASE = 'https://upgrade-ledger.dev/problems/';

function fromDomain(err: DomainError): Problem {
  const code = err.code;
  switch (code) {
    case 'ConcurrencyConflict': {
      const e = err as DomainError & { streamId: string; expected: unknown; actual: unknown };
      return {
        type: `${PROBLEM_BASE}concurrency-conflict`,
        title: 'Version conflict',
        status: HttpStatus.PRECONDITION_FAILED,
        detail: err.message,
        stream: e.streamId,
        expected: e.expected,
        actual: e.actual,
      };
    }
    case 'IdempotencyConflict':
      return {
        type: `${PROBLEM_BASE}idempotency-conflict`,
        title: 'Idempotency conflict',
        status: HttpStatus.CONFLICT,
        detail: err.message,
      };
    case 'InvalidInput': {
      const field = (err as DomainError & { field: string }).field;
      return {
        type: `${PROBLEM_BASE}invalid-input`,
        title: 'Invalid input',
        status: HttpStatus.BAD_REQUEST,
        detail: err.message,
        errors: [{ field, message: err.message.slice(field.length + 2) }],
      };
    }
    case 'NotFound':
      return {
        type: `${PROBLEM_BASE}not-found`,
        title: 'Not found',
        status: HttpStatus.NOT_FOUND,
        detail: err.message,
      };
    case 'InvalidTransition':
      return {
        type: `${PROBLEM_BASE}invalid-transition`,
        title: 'Invalid state transition',
        status: HttpStatus.CONFLICT,
        detail: err.message,
        state: (err as DomainError & { state: string }).state,
      };
    case 'DatabaseUnavailable':
      return unavailable();
    default:
      return assertUnreachable(code);
  }
}

function unavailable(): Problem {
  return {
    type: `${PROBLEM_BASE}unavailable`,
    title: 'Service unavailable',
    status: HttpStatus.SERVICE_UNAVAILABLE,
    detail: 'the database is unavailable; retry shortly',
  };
}

/** Zod-style "path: message" strings from the Standard Schema pipe, split into field + message. */
function validationErrors(messages: unknown): { field: string; message: string }[] | undefined {
  if (!Array.isArray(messages)) return undefined;
  return messages.map((m) => {
    const text = String(m);
    const i = text.indexOf(': ');
    return i > 0
      ? { field: text.slice(0, i), message: text.slice(i + 2) }
      : { field: '(body)', message: text };
  });
}

function fromHttp(err: HttpException): Problem {
  const status = err.getStatus();
  const body = err.getResponse();
  const message = typeof body === 'object' && body !== null ? (body as { message?: unknown }).message : body;
  const errors = validationErrors(message);
  const title = HttpStatus[status]?.toLowerCase().replaceAll('_', ' ') ?? 'error';
  return {
    type: `${PROBLEM_BASE}${title.replaceAll(' ', '-')}`,
    title: title.charAt(0).toUpperCase() + title.slice(1),
    status,
    detail: errors
      ? errors.map((e) => `${e.field}: ${e.message}`).join('; ')
      : String(message ?? err.message),
    ...(errors ? { errors } : {}),
  };
}

/** Fastify's own client errors (bad JSON, body too large, wrong content type) are 4xx as Fastify says. */
function fromFastify(err: { statusCode?: unknown; code?: unknown; message?: string }): Problem | undefined {
  const status = typeof err.statusCode === 'number' ? err.statusCode : undefined;
  if (!status || status < 400 || status >= 500) return undefined;
  const code = typeof err.code === 'string' ? err.code : 'client-error';
  return {
    type: `${PROBLEM_BASE}${code.toLowerCase().replaceAll('_', '-')}`,
    title: HttpStatus[status]?.toLowerCase().replaceAll('_', ' ') ?? 'Client error',
    status,
    detail: err.message ?? 'bad request',
  };
}

/** What an error means to the client: its problem details (a 5xx says only the request id). */
export function problemOf(exception: unknown, requestId: string): Problem {
  if (exception instanceof DomainError) return fromDomain(exception);
  if (exception instanceof HttpException) return fromHttp(exception);
  if (isConnectionFailure(exception)) return unavailable();
  return (
    fromFastify(exception as object) ?? {
      type: `${PROBLEM_BASE}internal`,
      title: 'Internal error',
      status: HttpStatus.INTERNAL_SERVER_ERROR,
      detail: `an unexpected error occurred; quote request id ${requestId} to the operator`,
    }
  );
}

/**
 * Every error leaves as application/problem+json. A 5xx never carries a stack or SQL: it names
 * the request id to look up in the logs.
 */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  private readonly logger = new Logger('Errors');

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const request = ctx.getRequest<FastifyRequest>();
    const reply = ctx.getResponse<FastifyReply>();
    const problem = problemOf(exception, String(request.id));
    if (problem.status >= 500) {
      this.logger.error(
        { err: exception, requestId: request.id, url: request.routeOptions?.url },
        'request failed',
      );
    }
    if (problem.status === HttpStatus.SERVICE_UNAVAILABLE) void reply.header('Retry-After', '2');
    void reply
      .status(problem.status)
      .header('Content-Type', 'application/problem+json; charset=utf-8')
      .send({ ...problem, instance: request.url.split('?')[0], requestId: request.id });
  }
}
