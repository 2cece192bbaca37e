import { SetMetadata } from '@nestjs/common';

export const IS_PUBLIC = 'upgrade-ledger:public';

/** Marks a route that needs no key. Only the health checks use it. */
export const Public = () => SetMetadata(IS_PUBLIC, true);
