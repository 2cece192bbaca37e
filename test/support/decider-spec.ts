import { expect } from 'vitest';

/** What the store adds to an event when it records it: enough for `evolve` to fold it. */
export interface RecordedFields {
  streamVersion: number;
  recordedAt: string;
}

/** A pure decider: `decide` turns a command into events over a state that `evolve` folds. */
export interface Decider<Command, Event, State> {
  decide: (command: Command, state: State) => Event[];
  evolve: (state: State, event: NoInfer<Event & RecordedFields>) => State;
  initialState: () => State;
}

/** The time the `n`-th given event (1-based) is recorded at: one minute apart from a fixed start. */
export const recordedAtOf = (n: number, start = Date.UTC(2026, 0, 1)): string =>
  new Date(start + (n - 1) * 60_000).toISOString();

/**
 * Stamps events as the store would: stream versions 1..n and increasing `recordedAt` times.
 *
 * @example
 * foldRollout('r1', recorded([{ type: 'RolloutPlanned', data: { rolloutId: 'r1', plan: {} } }]));
 */
export function recorded<Event extends object>(events: readonly Event[]): (Event & RecordedFields)[] {
  return events.map((event, i) => ({ ...event, streamVersion: i + 1, recordedAt: recordedAtOf(i + 1) }));
}

type ErrorClass<E extends Error> = abstract new (...args: never[]) => E;

export interface DeciderThen<Event> {
  /** The command records exactly these events (deep, strict: an `undefined` field is a difference). */
  then(expected: Event[]): void;
  /** The command is refused with this error class and, if given, a message containing `messagePart`. */
  thenThrows<E extends Error>(errorClass: ErrorClass<E>, messagePart?: string | RegExp): E;
}

export interface DeciderWhen<Command, Event> {
  when(command: Command): DeciderThen<Event>;
}

export interface DeciderSpec<Command, Event> {
  given(events: readonly Event[]): DeciderWhen<Command, Event>;
}

type Outcome<Event> = { ok: true; events: Event[] } | { ok: false; error: unknown };

class Then<Event> implements DeciderThen<Event> {
  constructor(private readonly outcome: Outcome<Event>) {}

  // A Given/When/Then chain reads best with `then`; the guard below turns an accidental
  // `await spec.given(..).when(..)` (which calls then(resolve, reject)) into a clear failure.
  // biome-ignore lint/suspicious/noThenProperty: emmett's DeciderSpecification vocabulary, on purpose.
  then(expected: Event[]): void {
    if (!Array.isArray(expected)) {
      throw new Error('a decider spec was awaited or returned: end it with .then([...]) or .thenThrows(...)');
    }
    if (!this.outcome.ok) {
      throw new Error(`expected events, but the command was refused: ${describeError(this.outcome.error)}`, {
        cause: this.outcome.error,
      });
    }
    expect(this.outcome.events).toStrictEqual(expected);
  }

  thenThrows<E extends Error>(errorClass: ErrorClass<E>, messagePart?: string | RegExp): E {
    if (this.outcome.ok) {
      throw new Error(
        `expected ${errorClass.name}, but the command recorded ${JSON.stringify(this.outcome.events)}`,
      );
    }
    const { error } = this.outcome;
    expect(error).toBeInstanceOf(errorClass);
    if (messagePart !== undefined) expect((error as Error).message).toMatch(messagePart);
    return error as E;
  }
}

const describeError = (error: unknown) =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);

/**
 * Given/When/Then for a pure decider, after emmett's `DeciderSpecification`: `given` events are
 * stamped with stream versions 1..n and folded with `evolve` from `initialState`, `when` runs
 * `decide` on the result. `decide` must not change the state it is given; the spec checks that too.
 *
 * ### Examples
 * const spec = DeciderSpecification.for({ decide, evolve, initialState: () => initialState('r1') });
 * spec.given([planned]).when({ type: 'StartRollout' }).then([{ type: 'RolloutStarted', data: {} }]);
 * spec.given([]).when({ type: 'StartRollout' }).thenThrows(NotFound, 'r1 not found');
 */
export const DeciderSpecification = {
  for<Command, Event extends object, State>(
    decider: Decider<Command, Event, State>,
  ): DeciderSpec<Command, Event> {
    return {
      given: (events) => ({
        when: (command) => {
          const state = recorded(events).reduce(decider.evolve, decider.initialState());
          const before = structuredClone(state);
          let outcome: Outcome<Event>;
          try {
            outcome = { ok: true, events: decider.decide(command, state) };
          } catch (error) {
            outcome = { ok: false, error };
          }
          expect(state, 'decide changed the state it was given').toStrictEqual(before);
          return new Then(outcome);
        },
      }),
    };
  },
};
