import { RejectedEvent } from '../tasks/types.js';

/*
 * What an engine does with an event whose handling threw, decided from the
 * error alone (pure, tested by tables in test/runtime/fault-policy.test.ts):
 *
 * - bad input (RejectedEvent: invalid, too big, too deep, a task refusing
 *   it): dead-lettered at once with its reason, retrying cannot help;
 * - transient (the store or the broker cannot answer now: an error marked
 *   `transient: true`, as StoreUnavailable and BrokerUnavailable are):
 *   retried with capped exponential backoff for as long as it lasts, never
 *   dead-lettered, and the engine stops taking new events meanwhile;
 * - failure (anything else, e.g. a bug in a task for this one event):
 *   retried a few times, then dead-lettered saying how many times it failed
 *   and the last error.
 */

export type FaultKind = 'bad-input' | 'transient' | 'failure';

export interface Fault {
  kind: FaultKind;
  /** What went wrong, for the log or the dead letter. */
  message: string;
}

/** The broker refused a publish (a nack) or cannot be reached: passing, like a store fault. */
export class BrokerUnavailable extends Error {
  readonly transient = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BrokerUnavailable';
  }
}

const isTransient = (e: unknown) => typeof e === 'object' && e !== null && (e as { transient?: unknown }).transient === true;

/** Follows `cause` links (a task may wrap a store error in its own), at most a few deep. */
function* causes(e: unknown): Generator<unknown> {
  for (let i = 0; i < 8 && e !== undefined && e !== null; i++) {
    yield e;
    e = (e as { cause?: unknown }).cause;
  }
}

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

export function classify(e: unknown): Fault {
  const chain = [...causes(e)];
  // A refusal is about the event even when a store error caused it.
  if (e instanceof RejectedEvent) return { kind: 'bad-input', message: e.message };
  if (chain.some(isTransient)) return { kind: 'transient', message: messageOf(chain.find(isTransient)) };
  return { kind: 'failure', message: messageOf(e) };
}

export interface Backoff {
  initialMs: number;
  maxMs: number;
}

export interface RetryPolicy {
  transient: Backoff;
  /** A failure is tried this many times in all before it is dead-lettered. */
  failureAttempts: number;
  failure: Backoff;
}

export const RETRY_POLICY: RetryPolicy = {
  // A busy or locked store usually answers again within a second; an absent one is checked every 5 s.
  transient: { initialMs: 100, maxMs: 5000 },
  failureAttempts: 3,
  failure: { initialMs: 100, maxMs: 1000 },
};

/** Delay before retry number `n` (0 for the first retry): doubling, capped. */
export const backoff = (b: Backoff, n: number) => Math.min(b.maxMs, b.initialMs * 2 ** Math.min(n, 30));

/** How many times each kind of fault has happened to one event so far. */
export interface Attempts {
  transient: number;
  failures: number;
}

export type Step =
  | { action: 'dead-letter'; reason: string }
  /** pause: stop taking new events until this one goes through (the store or broker is down for everyone). */
  | { action: 'retry'; afterMs: number; pause: boolean };

/**
 * The next step for an event whose last attempt ended in `fault`;
 * `attempts` already counts that attempt. `task` names the event_processing
 * task in the reason.
 */
export function nextStep(fault: Fault, attempts: Attempts, task: string, policy: RetryPolicy = RETRY_POLICY): Step {
  switch (fault.kind) {
    case 'bad-input':
      return { action: 'dead-letter', reason: fault.message };
    case 'transient':
      return { action: 'retry', afterMs: backoff(policy.transient, attempts.transient - 1), pause: true };
    case 'failure':
      if (attempts.failures >= policy.failureAttempts) {
        // "<task> failed: <last error>" first: operators replay dead letters by matching it.
        return {
          action: 'dead-letter',
          reason: `${task} failed: ${fault.message} (failed ${attempts.failures} times; this is the last error)`,
        };
      }
      return { action: 'retry', afterMs: backoff(policy.failure, attempts.failures - 1), pause: false };
  }
}

/** Counts one more attempt of the fault's kind. */
export const count = (attempts: Attempts, fault: Fault): Attempts =>
  fault.kind === 'transient'
    ? { ...attempts, transient: attempts.transient + 1 }
    : fault.kind === 'failure'
      ? { ...attempts, failures: attempts.failures + 1 }
      : attempts;
