import type { Logger } from '../log.js';

/*
 * The task prototypes of seed 001, in TypeScript. A task is registered by a
 * dotted name (module path + function name); event_processing returns what
 * happens to the event as a typed outcome rather than a magic value.
 */

export type Event = Record<string, unknown>;

/** Returned by event_processing to drop the event (nothing is published). */
export const DROP: unique symbol = Symbol('canopsis.drop');
export type Drop = typeof DROP;

/** An event sent to named engines instead of the configured next ones. */
export interface Routed {
  readonly route: readonly string[];
  readonly event: Event;
}
export const routeTo = (engines: string | string[], event: Event): Routed => ({
  route: Array.isArray(engines) ? engines : [engines],
  event,
});

export type EventOutcome = Event | Array<Event | Routed> | Routed | Drop;

/** What a task sees of the engine running it. */
export interface EngineHandle {
  readonly name: string;
  readonly worker: number;
  /** The prefix of the installed tree (for files under etc/ and var/). */
  readonly prefix: string;
  /** Sends a job to Dispatcher_<name>: exactly one process of this engine type gets it. */
  dispatch(job: unknown): Promise<void>;
  /**
   * Publishes an event a beat or a job made (not an answer to an input) to
   * this engine's next queues, or to the queues of the engines named,
   * confirmed; a broker fault throws, so the beat or job is tried again.
   */
  emit(event: Event, engines?: string[]): Promise<void>;
  /** Per-process state a module keeps between calls (caches, rules). */
  readonly state: Map<string, unknown>;
  /** The store, opened on first use and shared by the process. */
  store(): Promise<import('../store/types.js').Store>;
  /** Reports to the enabled event dispatchers; never throws. */
  report(
    level: import('../dispatch/types.js').DumpLevel,
    action: string,
    info?: Partial<import('../dispatch/types.js').DumpInfo>,
  ): Promise<void>;
  /** etc/runtime.conf: alarm and perfdata settings. */
  readonly runtime: import('../config/runtime.js').RuntimeConfig;
}

export interface TaskContext {
  logger: Logger;
}

export type EventTask = (engine: EngineHandle, event: Event, ctx: TaskContext) => EventOutcome | Promise<EventOutcome>;
export type BeatTask = (engine: EngineHandle, ctx: TaskContext) => void | Promise<void>;
export type DispatcherTask = (engine: EngineHandle, job: unknown, ctx: TaskContext) => void | Promise<void>;

/** A module of tasks, as a plugin file exports it. */
export interface TaskModule {
  /** Dotted module name, e.g. canopsis.cleaner.process. */
  name: string;
  event_processing?: EventTask;
  beat_processing?: BeatTask;
  consume_dispatcher?: DispatcherTask;
  /**
   * Events with the same key must be applied in arrival order. With
   * numprocs > 1 the engine's queue is then split by key, one partition per
   * process (axe: the entity id).
   */
  partition?: (event: Event) => string;
  /** Accept JSON arrays too, handed to event_processing as { [wrapArray]: [...] }. */
  wrapArray?: string;
  /** Further named tasks: registered as <name>.<key>. */
  tasks?: Record<string, EventTask | BeatTask | DispatcherTask>;
}

/**
 * An event that cannot be processed: dead-lettered with this reason, never
 * retried as is. Any other error a task throws is retried a few times and
 * then dead-lettered; one carrying `transient: true` (as the store's
 * StoreUnavailable does, or as its `cause`) means "not the event's fault,
 * try again later": the engine pauses and retries it until it goes through
 * (runtime/engine/faults.ts).
 */
export class RejectedEvent extends Error {}
