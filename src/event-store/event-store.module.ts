import { Module } from '@nestjs/common';
import { EventStore } from './event-store.repository.js';

@Module({ providers: [EventStore], exports: [EventStore] })
export class EventStoreModule {}
