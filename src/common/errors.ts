/**
 * Domain errors carry a code; one exception filter maps each code to an RFC 7807 problem
 * response. Nothing here knows about HTTP.
 */
export type ExpectedVersion = 'any' | 'no_stream' | 'exists' | number;

export abstract class DomainError extends Error {
  abstract readonly code: DomainErrorCode;
}

export type DomainErrorCode =
  | 'ConcurrencyConflict'
  | 'IdempotencyConflict'
  | 'InvalidInput'
  | 'NotFound'
  | 'InvalidTransition'
  | 'DatabaseUnavailable';

/** The stream was not at the version the caller expected. */
export class ConcurrencyConflict extends DomainError {
  readonly code = 'ConcurrencyConflict' as const;
  constructor(
    readonly streamId: string,
    readonly expected: ExpectedVersion,
    /** The stream's actual version, or `no_stream`. */
    readonly actual: number | 'no_stream',
  ) {
    super(`stream ${streamId} is at ${actual}, expected ${expected}`);
    this.name = 'ConcurrencyConflict';
  }
}

/** Event ids that already exist were reused for a different append. */
export class IdempotencyConflict extends DomainError {
  readonly code = 'IdempotencyConflict' as const;
  constructor(
    readonly eventIds: string[],
    message: string,
  ) {
    super(message);
    this.name = 'IdempotencyConflict';
  }
}

/** Input that cannot be stored, with the path of the offending field. */
export class InvalidInput extends DomainError {
  readonly code = 'InvalidInput' as const;
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'InvalidInput';
  }
}

export class NotFound extends DomainError {
  readonly code = 'NotFound' as const;
  constructor(
    readonly resource: string,
    readonly id: string,
  ) {
    super(`${resource} ${id} not found`);
    this.name = 'NotFound';
  }
}

/** A command that cannot be true in the aggregate's current state (completing a step never started). */
export class InvalidTransition extends DomainError {
  readonly code = 'InvalidTransition' as const;
  constructor(
    message: string,
    readonly state: string,
  ) {
    super(message);
    this.name = 'InvalidTransition';
  }
}

export class DatabaseUnavailable extends DomainError {
  readonly code = 'DatabaseUnavailable' as const;
  constructor(override readonly cause: unknown) {
    super('the database is unavailable');
    this.name = 'DatabaseUnavailable';
  }
}

export function assertUnreachable(value: never): never {
  throw new Error(`unreachable: ${JSON.stringify(value)}`);
}
