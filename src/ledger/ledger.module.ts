import { Module } from '@nestjs/common';
import { EventStoreModule } from '../event-store/event-store.module.js';
import { LedgerController } from './ledger.controller.js';
import { LedgerRepository } from './ledger.repository.js';
import { LedgerService } from './ledger.service.js';
import { SequencerService } from './sequencer.service.js';
import { signingKeyProvider } from './signing-key.provider.js';

@Module({
  imports: [EventStoreModule],
  controllers: [LedgerController],
  providers: [LedgerRepository, LedgerService, SequencerService, signingKeyProvider],
  exports: [LedgerService, SequencerService, LedgerRepository],
})
export class LedgerModule {}
