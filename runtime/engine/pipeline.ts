import type { ConsumeMessage } from 'amqplib';
import { deadQueue, declareEngineQueue, engineQueue, type TopologyNames } from '../amqp/topology.js';
import { MAX_EVENT_BYTES, parseEventBody } from '../event/canopsis-event.js';
import type { Logger } from '../log.js';
import { type EngineHandle, type Event, type EventTask, RejectedEvent } from '../tasks/types.js';
import type { EventChannel } from './broker-port.js';
import type { ChannelLife } from './channel-life.js';
import { deadLetterHeaders } from './dead-letter.js';
import { type Attempts, BrokerUnavailable, classify, count, type Fault, nextStep } from './faults.js';
import type { GroupCommit } from './group-commit.js';
import type { InFlight } from './in-flight.js';
import { type Output, outputsOf } from './outcome.js';
import type { FaultPause } from './pause.js';
import type { ConfirmedPublisher } from './publisher.js';
import type { EngineStats } from './stats.js';

/*
 * The path of one event through an engine: in arrival order, parse, run
 * event_processing, publish what it returned to the next queues with
 * confirms, and ack the input only once every output is confirmed
 * (at-least-once: a loss before the ack means the broker redelivers). A
 * failed attempt is retried as ./faults.ts says; a store or broker fault
 * holds the engine (./pause.ts); a bad event is dead-lettered with its
 * reason.
 */

export interface PipelineOptions {
  /** The engine's name and worker, for dead-letter headers. */
  engine: string;
  worker: number;
  /** The queue events come from (and dead letters and replays go back to), and the one this process consumes. */
  home: string;
  queue: string;
  taskName: string;
  task: EventTask;
  handle: EngineHandle;
  /** A module reading a producer's arrays (collectd's value lists) gets them wrapped in an object under this key. */
  wrapArray?: string;
  /** Where outputs go by default, and the engines a routed output may name. */
  targets: string[];
  known: ReadonlySet<string>;
  names: TopologyNames;
  /** Queues already declared on the current channel (routed outputs declare theirs once). */
  declared: Set<string>;
  publisher: ConfirmedPublisher;
  pause: FaultPause;
  life: ChannelLife;
  inFlight: InFlight;
  stats: EngineStats;
  logger: Logger;
  /**
   * A later engine of the same fused process for a queue, if any: events
   * bound for it run there in memory instead of crossing the broker
   * (./fused.ts). Only later ones, so a hand-off never waits on itself.
   */
  local?: (queue: string) => LocalStage | undefined;
  /** The group commit of the store, once the store is open (./group-commit.ts). */
  group?: () => GroupCommit | undefined;
}

/** A publish an input's outcome asks for: to an engine queue, or a dead letter. */
export interface Message {
  exchange: string;
  key: string;
  body: Buffer;
  /** Set for dead letters; others carry the input's headers. */
  headers?: Record<string, unknown>;
}

/** An engine reached in memory: runs its task on an event, in its own order, and says what to publish. */
export interface LocalStage {
  run(event: Event, headers: Record<string, unknown> | undefined): Promise<Message[]>;
}

export class EventPipeline {
  /** The chain of event handling: events are processed one after the other, in arrival order. */
  private tail: Promise<void> = Promise.resolve();
  /** A stop interrupted a retry: the events behind it are left unacked for the broker to redeliver. */
  private abandoned = false;
  /** Messages received and not yet through handle(): none means the engine is idle. */
  private queued = 0;

  constructor(private readonly o: PipelineOptions) {}

  /** Resolves once every event received so far has its outcome. */
  idle(): Promise<void> {
    return this.tail;
  }

  enqueue(ch: EventChannel, msg: ConsumeMessage): void {
    this.o.stats.received++;
    this.queued++;
    this.tail = this.tail
      .then(() => this.handle(ch, msg))
      .finally(() => this.queued--)
      .catch((e: Error) => {
        // handle() decides every outcome itself; this is the last resort for a bug in the engine:
        // the broker dead-letters the message (x-death), so it never holds a prefetch slot.
        this.o.logger.error({ err: e.stack ?? e.message }, 'event handling failed; the message is rejected to the dead-letter queue');
        this.o.stats.dead++;
        if (!this.o.life.isLost(ch)) {
          try {
            ch.nack(msg, false, false);
          } catch {
            // channel gone: the broker redelivers it
          }
        }
      });
  }

  /**
   * One message, to one outcome: passed on, dropped or dead-lettered (then
   * acked), or left unacked for the broker when its channel is gone or a
   * stop interrupted a retry.
   */
  private async handle(ch: EventChannel, msg: ConsumeMessage): Promise<void> {
    const { life, pause } = this.o;
    // Its channel is gone: the broker has put it back in the queue already.
    if (life.isLost(ch) || this.abandoned) return;
    const hold = {};
    let attempts: Attempts = { transient: 0, failures: 0 };
    try {
      for (;;) {
        let fault: Fault;
        try {
          await this.attempt(ch, msg);
          pause.release(hold);
          pause.answered();
          return;
        } catch (e) {
          if (life.isLost(ch)) return;
          fault = classify(e);
        }
        attempts = count(attempts, fault);
        const step = nextStep(fault, attempts, this.o.taskName);
        if (step.action === 'dead-letter') return await this.deadLetter(ch, msg, step.reason);
        this.o.stats.retries++;
        if (step.pause) pause.hold(hold, fault.message);
        else this.o.logger.debug({ err: fault.message, attempt: attempts.failures }, `${this.o.taskName} failed; retrying`);
        if (!(await life.sleep(step.afterMs, ch))) {
          if (life.stopping) this.abandoned = true;
          return;
        }
      }
    } finally {
      pause.release(hold);
    }
  }

  /** One attempt: parse, run the task, publish what it returned. Throws what went wrong, for the fault policy. */
  private async attempt(ch: EventChannel, msg: ConsumeMessage): Promise<void> {
    // Parsed on every attempt: a task that changed the event and then failed gets it afresh.
    const parsed = parseEventBody(msg.content);
    if (!parsed.ok) throw new RejectedEvent(parsed.reason);
    let input = parsed.value;
    if (this.o.wrapArray && Array.isArray(input)) input = { [this.o.wrapArray]: input };
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
      throw new RejectedEvent(`not an event object (found ${Array.isArray(input) ? 'an array' : input === null ? 'null' : typeof input})`);
    }
    this.o.group?.()?.enter();
    const messages = await this.process(input as Event, msg.properties.headers);
    // Looked up again: the task may have opened the store, and with it a group its writes went into.
    const committed = this.o.group?.()?.leave(this.queued <= 1);
    for (const m of messages) {
      if (m.exchange === '' && !this.o.declared.has(m.key)) {
        await declareEngineQueue(ch, this.o.names, m.key);
        this.o.declared.add(m.key);
      }
    }
    // Pipelined: the next event is processed while these confirms are on their way.
    this.o.inFlight.track(this.deliver(ch, msg, messages, committed));
    await this.o.publisher.backPressure();
  }

  /** Runs the task on one event: what is bound for a fused later engine runs there now, the rest becomes messages. */
  private async process(input: Event, headers: Record<string, unknown> | undefined): Promise<Message[]> {
    const { stats } = this.o;
    const started = performance.now();
    let outcome: Awaited<ReturnType<EventTask>>;
    try {
      outcome = await this.o.task(this.o.handle, input, { logger: this.o.logger });
    } finally {
      stats.busyMs += performance.now() - started;
    }
    const outputs = outputsOf(outcome);
    const messages = await this.messagesOf(outputs, headers);
    stats.processed++;
    if (outputs.length === 0) stats.dropped++;
    return messages;
  }

  /**
   * This engine's part of a fused process: an event handed over by an
   * earlier engine, processed in this engine's arrival order (so the order
   * per entity holds whichever way events come in), under the same fault
   * policy as an event from its queue: a bad event, or one that keeps
   * failing, becomes a dead letter of this engine. Only a transient fault
   * (the store or the broker down) goes back to the engine that received
   * the input, which holds it and retries it from there. A retried attempt
   * gets the event as the failed one left it: copying every event to
   * guard against that would cost what fusing saves.
   */
  readonly stage: LocalStage = {
    run: (event, headers) => {
      const done = this.tail.then(() => this.runHandedOver(event, headers));
      this.tail = done.then(
        () => undefined,
        () => undefined,
      );
      return done;
    },
  };

  private async runHandedOver(event: Event, headers: Record<string, unknown> | undefined): Promise<Message[]> {
    this.o.stats.received++;
    const origin = { exchange: '', routingKey: this.o.home };
    let attempts: Attempts = { transient: 0, failures: 0 };
    for (;;) {
      try {
        return await this.process(event, headers);
      } catch (e) {
        const fault = classify(e);
        if (fault.kind === 'transient') throw e;
        attempts = count(attempts, fault);
        const step = nextStep(fault, attempts, this.o.taskName);
        if (step.action === 'dead-letter') return [this.deadMessage(Buffer.from(safeJson(event)), step.reason, headers, origin)];
        this.o.stats.retries++;
        // A stop ends the wait: the input goes back to the broker unacked, through the receiving engine's retry.
        if (!(await this.o.life.sleep(step.afterMs, this)))
          throw new BrokerUnavailable(`stopping while ${this.o.taskName} was retried`, { cause: e });
      }
    }
  }

  /** The messages to publish for a task's outputs; an output that cannot be sent makes the input a bad one. */
  private async messagesOf(outputs: Output[], headers: Record<string, unknown> | undefined): Promise<Message[]> {
    const messages: Message[] = [];
    for (const out of outputs) {
      let queues = this.o.targets;
      if (out.engines) {
        const bad = out.engines.filter((n) => !this.o.known.has(n));
        if (bad.length) throw new RejectedEvent(`routed to unknown engine ${bad.join(', ')}`);
        queues = out.engines.map(engineQueue);
      }
      let body: Buffer | undefined;
      for (const [i, queue] of queues.entries()) {
        const stage = this.o.local?.(queue);
        if (stage) {
          // The last reader may have the event itself; the others get copies, as each would from the broker.
          messages.push(...(await stage.run(i === queues.length - 1 ? out.event : structuredClone(out.event), headers)));
          continue;
        }
        body ??= this.serialise(out.event);
        messages.push({ exchange: '', key: queue, body });
        this.o.stats.published++;
      }
    }
    return messages;
  }

  private serialise(event: Event): Buffer {
    let text: string;
    try {
      text = JSON.stringify(event);
    } catch (e) {
      // RangeError on a value nested too deep, TypeError on a cycle or a BigInt.
      throw new RejectedEvent(`the output cannot be serialised (${(e as Error).message})`);
    }
    const body = Buffer.from(text);
    if (body.length > MAX_EVENT_BYTES)
      throw new RejectedEvent(`output of ${body.length} bytes exceeds the ${MAX_EVENT_BYTES}-byte event limit`);
    return body;
  }

  /** Publishes every output, then acks the input: never before all are confirmed and its writes committed. */
  private async deliver(ch: EventChannel, msg: ConsumeMessage, messages: Message[], committed?: Promise<void>): Promise<void> {
    const [sent, stored] = await Promise.all([
      Promise.all(messages.map((m) => this.o.publisher.confirmed(ch, m.exchange, m.key, m.body, m.headers ?? msg.properties.headers))),
      (committed ?? Promise.resolve()).then(
        () => true,
        (e: Error) => {
          this.o.logger.warn({ err: e.message }, 'a group of store writes did not commit: its events go back to the queue');
          return false;
        },
      ),
    ]);
    if (!stored) {
      // Redelivered and processed again: the writes that did not commit are made again.
      if (!this.o.life.isLost(ch)) {
        try {
          ch.nack(msg, false, true);
        } catch {
          // channel gone: the broker redelivers it anyway
        }
      }
      return;
    }
    if (sent.every(Boolean)) this.o.life.ack(ch, msg);
  }

  /** A dead letter of this engine: the event, its reason and where it was refused, bound for Engine_<name>.dead. */
  private deadMessage(
    body: Buffer,
    reason: string,
    headers: Record<string, unknown> | undefined,
    from: { exchange: string; routingKey: string },
  ): Message {
    this.o.stats.dead++;
    this.o.logger.warn({ reason, queue: this.o.queue, bytes: body.length }, 'event dead-lettered');
    void this.o.handle.report('warning', 'event_rejected', { phase: 'dead-letter', reason, extra: { queue: this.o.queue } });
    return {
      exchange: this.o.names.deadExchange,
      key: deadQueue(this.o.home),
      body,
      headers: deadLetterHeaders(headers, reason, { engine: this.o.engine, worker: this.o.worker, home: this.o.home, ...from }),
    };
  }

  private async deadLetter(ch: EventChannel, msg: ConsumeMessage, reason: string): Promise<void> {
    const m = this.deadMessage(msg.content, reason, msg.properties.headers, {
      exchange: msg.fields.exchange,
      routingKey: msg.fields.routingKey,
    });
    this.o.inFlight.track(
      this.o.publisher.confirmed(ch, m.exchange, m.key, m.body, m.headers).then((sent) => sent && this.o.life.ack(ch, msg)),
    );
    await this.o.publisher.backPressure();
  }
}

/** The event as a dead letter keeps it; one that cannot be written says so rather than losing the reason. */
function safeJson(event: Event): string {
  try {
    return JSON.stringify(event);
  } catch (e) {
    return JSON.stringify({ unserialisable: (e as Error).message });
  }
}
