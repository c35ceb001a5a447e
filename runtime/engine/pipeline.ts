import type { ConsumeMessage } from 'amqplib';
import { deadQueue, declareEngineQueue, engineQueue, type TopologyNames } from '../amqp/topology.js';
import { MAX_EVENT_BYTES, parseEventBody } from '../event/canopsis-event.js';
import type { Logger } from '../log.js';
import { type EngineHandle, type Event, type EventTask, RejectedEvent } from '../tasks/types.js';
import type { EventChannel } from './broker-port.js';
import type { ChannelLife } from './channel-life.js';
import { deadLetterHeaders } from './dead-letter.js';
import { type Attempts, classify, count, type Fault, nextStep } from './faults.js';
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
}

interface Message {
  queue: string;
  body: Buffer;
}

export class EventPipeline {
  /** The chain of event handling: events are processed one after the other, in arrival order. */
  private tail: Promise<void> = Promise.resolve();
  /** A stop interrupted a retry: the events behind it are left unacked for the broker to redeliver. */
  private abandoned = false;

  constructor(private readonly o: PipelineOptions) {}

  /** Resolves once every event received so far has its outcome. */
  idle(): Promise<void> {
    return this.tail;
  }

  enqueue(ch: EventChannel, msg: ConsumeMessage): void {
    this.o.stats.received++;
    this.tail = this.tail
      .then(() => this.handle(ch, msg))
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
    const { stats } = this.o;
    // Parsed on every attempt: a task that changed the event and then failed gets it afresh.
    const parsed = parseEventBody(msg.content);
    if (!parsed.ok) throw new RejectedEvent(parsed.reason);
    let input = parsed.value;
    if (this.o.wrapArray && Array.isArray(input)) input = { [this.o.wrapArray]: input };
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
      throw new RejectedEvent(`not an event object (found ${Array.isArray(input) ? 'an array' : input === null ? 'null' : typeof input})`);
    }
    const started = performance.now();
    let outcome: Awaited<ReturnType<EventTask>>;
    try {
      outcome = await this.o.task(this.o.handle, input as Event, { logger: this.o.logger });
    } finally {
      stats.busyMs += performance.now() - started;
    }
    const outputs = outputsOf(outcome);
    const messages = this.messagesOf(outputs);
    for (const m of messages) {
      if (!this.o.declared.has(m.queue)) {
        await declareEngineQueue(ch, this.o.names, m.queue);
        this.o.declared.add(m.queue);
      }
    }
    stats.processed++;
    if (outputs.length === 0) stats.dropped++;
    stats.published += messages.length;
    // Pipelined: the next event is processed while these confirms are on their way.
    this.o.inFlight.track(this.deliver(ch, msg, messages));
    await this.o.publisher.backPressure();
  }

  /** The messages to publish for a task's outputs; an output that cannot be sent makes the input a bad one. */
  private messagesOf(outputs: Output[]): Message[] {
    const messages: Message[] = [];
    for (const out of outputs) {
      let text: string;
      try {
        text = JSON.stringify(out.event);
      } catch (e) {
        // RangeError on a value nested too deep, TypeError on a cycle or a BigInt.
        throw new RejectedEvent(`the output cannot be serialised (${(e as Error).message})`);
      }
      const body = Buffer.from(text);
      if (body.length > MAX_EVENT_BYTES)
        throw new RejectedEvent(`output of ${body.length} bytes exceeds the ${MAX_EVENT_BYTES}-byte event limit`);
      let queues = this.o.targets;
      if (out.engines) {
        const bad = out.engines.filter((n) => !this.o.known.has(n));
        if (bad.length) throw new RejectedEvent(`routed to unknown engine ${bad.join(', ')}`);
        queues = out.engines.map(engineQueue);
      }
      for (const queue of queues) messages.push({ queue, body });
    }
    return messages;
  }

  /** Publishes every output, then acks the input: never before all are confirmed. */
  private async deliver(ch: EventChannel, msg: ConsumeMessage, messages: Message[]): Promise<void> {
    const sent = await Promise.all(messages.map((m) => this.o.publisher.confirmed(ch, '', m.queue, m.body, msg.properties.headers)));
    if (sent.every(Boolean)) this.o.life.ack(ch, msg);
  }

  private async deadLetter(ch: EventChannel, msg: ConsumeMessage, reason: string): Promise<void> {
    this.o.stats.dead++;
    this.o.logger.warn({ reason, queue: this.o.queue, bytes: msg.content.length }, 'event dead-lettered');
    void this.o.handle.report('warning', 'event_rejected', { phase: 'dead-letter', reason, extra: { queue: this.o.queue } });
    const headers = deadLetterHeaders(msg.properties.headers, reason, {
      engine: this.o.engine,
      worker: this.o.worker,
      home: this.o.home,
      exchange: msg.fields.exchange,
      routingKey: msg.fields.routingKey,
    });
    this.o.inFlight.track(
      this.o.publisher
        .confirmed(ch, this.o.names.deadExchange, deadQueue(this.o.home), msg.content, headers)
        .then((sent) => sent && this.o.life.ack(ch, msg)),
    );
    await this.o.publisher.backPressure();
  }
}
