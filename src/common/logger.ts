import type { LoggerService } from '@nestjs/common';
import { type DestinationStream, type LevelWithSilent, type Logger, pino } from 'pino';

/** Credentials, wherever a log call might carry them: headers, API keys, the admin token. */
const SECRET_FIELDS = [
  'authorization',
  'cookie',
  'token',
  'key',
  'apiKey',
  'adminToken',
  'secret',
  'password',
];
const SECRET_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key'];

export const REDACTED_PATHS = [
  ...['req.headers', 'res.headers', 'headers', '*.headers'].flatMap((at) =>
    SECRET_HEADERS.map((h) => `${at}["${h}"]`),
  ),
  ...SECRET_FIELDS.flatMap((f) => [f, `*.${f}`]),
];

/**
 * The one structured logger: Fastify logs requests through it (with their request ids) and Nest
 * logs through PinoNestLogger. Credentials are redacted wherever they might appear.
 *
 * @param destination where the lines go (stdout by default; tests capture them).
 */
export function createPinoLogger(level: LevelWithSilent, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'upgrade-ledger' },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    },
    destination,
  );
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
