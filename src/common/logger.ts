import type { LoggerService } from '@nestjs/common';
import { type LevelWithSilent, type Logger, pino } from 'pino';

/**
 * The one structured logger: Fastify logs requests through it (with their request ids) and Nest
 * logs through PinoNestLogger. Credentials are redacted wherever they might appear.
 */
export function createPinoLogger(level: LevelWithSilent): Logger {
  return pino({
    level,
    base: { service: 'upgrade-ledger' },
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'req.headers["x-api-key"]',
        'headers.authorization',
        'headers.cookie',
        '*.authorization',
        '*.token',
        '*.key',
        '*.apiKey',
      ],
      censor: '[redacted]',
    },
  });
}

type Level = 'info' | 'error' | 'warn' | 'debug' | 'trace' | 'fatal';

/** Nest's LoggerService over pino: `logger.log(msg, context)` → `{ context, msg }`. */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly pino: Logger) {}

  log(message: unknown, ...params: unknown[]) {
    this.write('info', message, params);
  }
  error(message: unknown, ...params: unknown[]) {
    // Nest passes (message, stack?, context?).
    this.write('error', message, params);
  }
  warn(message: unknown, ...params: unknown[]) {
    this.write('warn', message, params);
  }
  debug(message: unknown, ...params: unknown[]) {
    this.write('debug', message, params);
  }
  verbose(message: unknown, ...params: unknown[]) {
    this.write('trace', message, params);
  }
  fatal(message: unknown, ...params: unknown[]) {
    this.write('fatal', message, params);
  }

  private write(level: Level, message: unknown, params: unknown[]) {
    const rest = [...params];
    const context = typeof rest.at(-1) === 'string' ? (rest.pop() as string) : undefined;
    const extra: Record<string, unknown> = { context };
    if (level === 'error' && typeof rest[0] === 'string' && rest[0].includes('\n    at '))
      extra.stack = rest.shift();
    if (message instanceof Error) {
      this.pino[level]({ ...extra, err: message }, message.message);
    } else if (typeof message === 'object' && message !== null) {
      this.pino[level](
        { ...extra, ...(message as object) },
        typeof rest[0] === 'string' ? rest[0] : undefined,
      );
    } else {
      this.pino[level](extra, String(message));
    }
  }
}
