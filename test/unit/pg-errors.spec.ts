import { describe, expect, it } from 'vitest';
import { isConnectionFailure, isUniqueViolation, sqlState } from '../../src/database/pg-errors.js';

// Which database errors a client may retry (503 with Retry-After) and which are ours (500).
describe('isConnectionFailure', () => {
  it.each([
    ['08006', 'connection failure'],
    ['08001', 'cannot establish a connection'],
    ['57P01', 'administrator shutdown (Postgres stopping)'],
    ['57P02', 'crash shutdown'],
    ['57P03', 'cannot connect now (starting up)'],
    ['53300', 'too many connections (replicas reconnecting at once)'],
  ])('%s (%s) is retryable', (code) => {
    expect(isConnectionFailure({ code })).toBe(true);
  });

  it.each(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND'])(
    'a socket error %s is retryable',
    (code) => {
      expect(isConnectionFailure(Object.assign(new Error('socket'), { code }))).toBe(true);
    },
  );

  it("node-postgres's and pg-pool's code-less connection messages are retryable", () => {
    expect(isConnectionFailure(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isConnectionFailure(new Error('timeout exceeded when trying to connect'))).toBe(true);
    expect(isConnectionFailure(new Error('syntax error at or near'))).toBe(false);
    expect(isConnectionFailure(new Error('Connection terminated due to connection timeout'))).toBe(true);
  });

  it.each([
    ['23505', 'unique violation'],
    ['22P02', 'invalid text representation'],
    ['42P01', 'undefined table'],
    ['53100', 'disk full'],
    ['P0001', 'raised by a trigger'],
  ])('%s (%s) is not', (code) => {
    expect(isConnectionFailure({ code })).toBe(false);
  });
});

describe('sqlState and isUniqueViolation', () => {
  it('read the SQLSTATE only when it has the SQLSTATE shape', () => {
    expect(sqlState({ code: '23505' })).toBe('23505');
    expect(sqlState({ code: 'ECONNREFUSED' })).toBeUndefined();
    expect(sqlState(null)).toBeUndefined();
  });

  it('match the constraint when one is named', () => {
    const err = { code: '23505', constraint: 'event_event_id_key' };
    expect(isUniqueViolation(err)).toBe(true);
    expect(isUniqueViolation(err, 'event_event_id_key')).toBe(true);
    expect(isUniqueViolation(err, 'stream_pkey')).toBe(false);
    expect(isUniqueViolation({ code: '23503' })).toBe(false);
  });
});
