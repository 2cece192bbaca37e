/**
 * Every Postgres advisory lock key the service takes, in one place so two can never collide.
 * 0x75_6c_65_64_67_65_72 is "uledger"; the last byte names the lock.
 */
export const ADVISORY_LOCKS = {
  /** Session lock of the ledger sequencer leader. */
  sequencer: 0x75_6c_65_64_67_65_72_01n,
  /** Session lock of the projection runner. */
  projections: 0x75_6c_65_64_67_65_72_02n,
  /** Transaction lock around creating the first admin key. */
  bootstrapAdminKey: 0x75_6c_65_64_67_65_72_03n,
} as const;
