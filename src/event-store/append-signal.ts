import { Injectable } from '@nestjs/common';

/**
 * How an append wakes the sequencer. While this process's sequencer leads, an append pokes it
 * directly, which saves the `pg_notify` round trip on every append; otherwise the event store
 * sends a NOTIFY for whichever replica leads.
 */
@Injectable()
export class AppendSignal {
  private local: (() => void) | undefined;

  /** Called by the sequencer when it takes the lead. */
  attach(wake: () => void): void {
    this.local = wake;
  }

  /** Called by the sequencer when it loses the lead or stops. */
  detach(): void {
    this.local = undefined;
  }

  /** Wakes the in-process leader; false when there is none here. */
  wakeLocal(): boolean {
    if (!this.local) return false;
    this.local();
    return true;
  }
}
