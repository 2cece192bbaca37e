import { Module } from '@nestjs/common';
import { AppendSignal } from './append-signal.js';
import { EventStore } from './event-store.repository.js';

@Module({ providers: [EventStore, AppendSignal], exports: [EventStore, AppendSignal] })
export class EventStoreModule {}
