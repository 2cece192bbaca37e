import { type ArgumentsHost, Catch, type ExceptionFilter, HttpStatus, Logger } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuthenticatedRequest } from '../auth/principal.js';
import { problemOf } from '../common/problem.filter.js';
import { errorPage } from './pages.js';

/**
 * Errors on console pages are pages too: no key (or a bad one) goes to the sign-in page, which
 * comes back here afterwards; anything else is an HTML page with the problem's words. A 5xx says
 * only the request id, as on the API.
 */
@Catch()
export class ConsoleExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('Console');

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const request = ctx.getRequest<FastifyRequest & AuthenticatedRequest>();
    const reply = ctx.getResponse<FastifyReply>();
    const problem = problemOf(exception, String(request.id));
    if (problem.status === HttpStatus.UNAUTHORIZED) {
      const next = request.method === 'GET' ? request.url : '/console/rollouts';
      void reply
        .status(303)
        .header('Location', `/console/sign-in?next=${encodeURIComponent(next)}`)
        .send();
      return;
    }
    if (problem.status >= 500) {
      this.logger.error(
        { err: exception, requestId: request.id, url: request.routeOptions?.url },
        'page failed',
      );
    }
    if (problem.status === HttpStatus.SERVICE_UNAVAILABLE) void reply.header('Retry-After', '2');
    const detail = problem.errors?.length
      ? problem.errors.map((e) => `${e.field}: ${e.message}`).join('; ')
      : problem.detail;
    void reply
      .status(problem.status)
      .header('Content-Type', 'text/html; charset=utf-8')
      .header('Cache-Control', 'no-store')
      .send(
        errorPage(
          problem.status,
          problem.title.replace(/^./, (c) => c.toUpperCase()),
          detail,
          request.principal,
        ),
      );
  }
}
