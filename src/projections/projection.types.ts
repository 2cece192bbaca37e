import type { Transaction } from 'kysely';
import type { Database } from '../database/schema.js';
import type { ProjectedEntry } from '../ledger/ledger.types.js';

/**
 * A read model fed from the ledger. `apply` runs inside the transaction that also moves the
 * projection's checkpoint, so rows and checkpoint never disagree.
 */
export interface Projector {
  readonly name: string;
  /** Table of a version's rows, e.g. `rollout_summary_v2`. */
  tableFor(version: number): string;
  /** Template table to copy (structure, indexes) when building a new version. */
  readonly baseTable: string;
  apply(trx: Transaction<Database>, table: string, entries: readonly ProjectedEntry[]): Promise<void>;
}

export const PROJECTORS = Symbol('PROJECTORS');

export interface ProjectionStatus {
  name: string;
  version: number;
  active: boolean;
  position: number;
  lag: number;
  updatedAt: string;
}
