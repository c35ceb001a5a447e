import { once } from 'node:events';
import os from 'node:os';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { BrokerConnection } from '../amqp/connection.js';
import {
  deadQueue,
  declareEngineQueue,
  declareEngineTopology,
  dispatcherQueue,
  engineQueue,
  partitionQueue,
  type TopologyNames,
} from '../amqp/topology.js';
import type { EngineConfig } from '../config/engines.js';
import type { BrokerConfig } from '../config/files.js';
import { openStore, type RuntimeConfig } from '../config/runtime.js';
import type { DispatcherSet } from '../dispatch/dispatchers.js';
import { MAX_EVENT_BYTES, parseEventBody, routingKey } from '../event/canopsis-event.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/types.js';
import type { TaskRegistry } from '../tasks/registry.js';
import { type BeatTask, type DispatcherTask, type EngineHandle, type Event, type EventTask, RejectedEvent } from '../tasks/types.js';
import { BeatScheduler } from './beats.js';
import { deadLetterHeaders } from './dead-letter.js';
import { type Attempts, BrokerUnavailable, backoff, classify, count, type Fault, nextStep, RETRY_POLICY } from './faults.js';
import { type Output, outputsOf } from './outcome.js';
import { partitionFor } from './partition.js';
import { FaultPause } from './pause.js';
import { type StatsSample, statsEvent } from './self-stats.js';

/*
 * One engine process: consume Engine_<name>, run event_processing on each
 * event in arrival order, publish what it returns to the next queues with
 * publisher confirms, and ack the input only once every output is
 * confirmed. At-least-once: a crash or a lost connection before the ack
 * means the broker redelivers the input. A store or broker fault pauses
 * consumption and retries the event held until it goes through
 * (./faults.ts decides what is retried and what is dead-lettered).
 */

export interface EngineOptions {
  prefix: string;
  config: EngineConfig;
  /** Every configured engine name (routes must name one). */
  known: ReadonlySet<string>;
  worker: number;
  broker: BrokerConfig;
  registry: TaskRegistry;
  logger: Logger;
  publishQueue?: string;
  consumeQueue?: string;
  /** Seconds between self-stats perf events; 0 disables them. */
  statsInterval?: number;
  /** How long a graceful stop waits for events in flight, ms. */
  stopTimeoutMs?: number;
  runtime: RuntimeConfig;
  /** Enabled event dispatchers (loaded before connecting, so a bad name fails early). */
  dispatchers: (engine: Engine) => Promise<DispatcherSet>;
  /** Opens the store (default: the one runtime.conf names); called again after a failed open. */
  store?: (runtime: RuntimeConfig) => Promise<Store>;
}

export interface EngineStats {
  received: number;
  processed: number;
  published: number;
  dropped: number;
  dead: number;
  /** Attempts made again after a fault (transient or not). */
  retries: number;
  /** Episodes of a store or broker fault that paused consumption. */
  faults: number;
  beats: number;
  jobs: number;
  /** Total task time in ms, for seconds per event. */
  busyMs: number;
}

/** Whether this process does its job now: what `hypcontrol status` and /metrics see as its queue's consumer. */
export interface EngineReadiness {
  /** Connected, consuming its queue (when it has one) and not paused by a fault. */
  ready: boolean;
  consuming: boolean;
  /** While a store or broker fault pauses consumption: the first error of the episode and since when. */
  fault?: { reason: string; since: string };
}

interface Consumer {
  ch: Channel;
  tag: string;
}

interface Message {
  queue: string;
  body: Buffer;
}

export class Engine {
  readonly stats: EngineStats = {
    received: 0,
    processed: 0,
    published: 0,
    dropped: 0,
    dead: 0,
    retries: 0,
    faults: 0,
    beats: 0,
    jobs: 0,
    busyMs: 0,
  };
  readonly handle: EngineHandle;
  private readonly names: TopologyNames;
  private readonly consume: string;
  /** The queue this engine's events come from and go back to (dead letters, replays): Engine_<name> unless -consumeQueue. */
  private readonly home: string;
  /** Partitioned engine (ordered by key with numprocs > 1): worker 0 routes the home queue into Engine_<name>.<n>. */
  private readonly partition?: { key: (e: Event) => string; count: number };
  private readonly targets: string[];
  private readonly eventTask?: EventTask;
  private readonly dispatcherTask?: DispatcherTask;
  private readonly connection: BrokerConnection;
  private ch: ConfirmChannel | undefined;
  private router: ConfirmChannel | undefined;
  private dch: Channel | undefined;
  private consumer: Consumer | undefined;
  private routerConsumer: Consumer | undefined;
  /** Consumers are started and cancelled one change at a time, in order. */
  private consumerSync: Promise<void> = Promise.resolve();
  private dispatcherTag: string | undefined;
  private readonly declared = new Set<string>();
  /** Channels that closed: their unacked messages are back in the queue, whatever was holding them lets go. */
  private readonly lost = new WeakSet<Channel>();
  /** Held while the store or the broker does not answer: consumption pauses (./pause.ts). */
  private readonly pause: FaultPause;
  /** Backoff sleeps, woken early by a stop or a lost channel. */
  private readonly sleepers = new Set<() => void>();
  /** A stop interrupted a retry: the events behind it are left unacked for the broker to redeliver. */
  private abandoned = false;
  /** The chain of event handling: events are processed one after the other, in arrival order. */
  private tail: Promise<void> = Promise.resolve();
  private readonly pending = new Set<Promise<unknown>>();
  private readonly beats: BeatScheduler | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private storeOpened: Promise<Store> | undefined;
  private dispatcherSet: DispatcherSet | undefined;

  constructor(private readonly o: EngineOptions) {
    const c = o.config;
    this.names = { eventsExchange: o.broker.exchange, deadExchange: o.broker.deadLetterExchange };
    this.home = o.consumeQueue ?? engineQueue(c.name);
    const partitionKey = o.registry.moduleOf(c.eventProcessing ?? '')?.partition;
    if (partitionKey && c.numprocs > 1 && !o.consumeQueue) this.partition = { key: partitionKey, count: c.numprocs };
    this.consume = this.partition ? partitionQueue(this.home, o.worker % c.numprocs) : this.home;
    this.targets = o.publishQueue ? [o.publishQueue] : c.next.map(engineQueue);
    const unknown = (what: string, name: string) =>
      new Error(`[engine:${c.name}] ${what}: unknown task ${name} (known: ${o.registry.names().join(', ') || 'none'})`);
    if (c.eventProcessing) {
      this.eventTask = o.registry.get<EventTask>(c.eventProcessing);
      if (!this.eventTask) throw unknown('event_processing', c.eventProcessing);
    }
    if (c.beatProcessing) {
      const beatTask = o.registry.get<BeatTask>(c.beatProcessing);
      if (!beatTask) throw unknown('beat_processing', c.beatProcessing);
      this.beats = new BeatScheduler(
        c.beatInterval * 1000,
        async () => {
          await beatTask(this.handle, { logger: this.o.logger });
          this.stats.beats++;
        },
        (e) => this.o.logger.error({ err: e.message, task: c.beatProcessing }, 'beat_processing failed'),
      );
    }
    const mod = o.registry.moduleOf(c.eventProcessing ?? c.beatProcessing ?? '');
    this.dispatcherTask = mod?.consume_dispatcher;
    this.handle = {
      name: c.name,
      worker: o.worker,
      prefix: o.prefix,
      state: new Map(),
      runtime: o.runtime,
      dispatch: (job) => this.dispatch(job),
      store: () => this.openStore(),
      report: async (level, action, info) => {
        if (this.dispatcherSet) await this.dispatcherSet.dump(level, action, info);
      },
    };
    this.pause = new FaultPause({
      changed: () => void this.syncConsumers(),
      started: (reason) => {
        this.stats.faults++;
        this.o.logger.warn({ reason, queue: this.consume }, 'store or broker unavailable: consumption paused, retrying until it answers');
      },
      ended: (pausedMs) => this.o.logger.info({ pausedMs, retries: this.stats.retries }, 'store and broker answer again: consuming'),
    });
    this.connection = new BrokerConnection({
      url: o.broker.url,
      where: o.broker.where,
      logger: o.logger,
      setup: (conn) => this.setup(conn),
    });
  }

  get queue(): string {
    return this.consume;
  }

  get readiness(): EngineReadiness {
    const ch = this.ch;
    const consuming = !!ch && !this.lost.has(ch) && this.consumer?.ch === ch;
    const faulted = this.pause.paused;
    const out: EngineReadiness = {
      ready: this.connection.connected && !this.stopping && !faulted && (consuming || !this.eventTask),
      consuming,
    };
    const fault = this.pause.fault;
    if (fault) out.fault = fault;
    return out;
  }

  /** The store, opened on first use; a failed open is not remembered, the next use tries again. */
  private openStore(): Promise<Store> {
    if (!this.storeOpened) {
      const opening = (this.o.store ?? openStore)(this.o.runtime);
      this.storeOpened = opening;
      opening.catch(() => {
        if (this.storeOpened === opening) this.storeOpened = undefined;
      });
    }
    return this.storeOpened;
  }

  /** Connects (retrying until the broker answers) and starts consuming, beating and reporting. */
  async start(): Promise<void> {
    this.dispatcherSet = await this.o.dispatchers(this);
    await this.connection.start();
    this.beats?.start();
    const every = this.o.statsInterval ?? 60;
    if (every > 0) this.statsTimer = setInterval(() => void this.publishStats(every), every * 1000).unref();
  }

  private watch<C extends Channel>(ch: C, what: string): C {
    ch.on('error', (e: Error) => this.o.logger.warn({ err: e.message }, `${what} error`));
    ch.on('close', () => {
      this.lost.add(ch);
      this.wakeSleepers();
    });
    return ch;
  }

  private async setup(conn: ChannelModel): Promise<void> {
    const ch = this.watch(await conn.createConfirmChannel(), 'channel');
    this.declared.clear();
    const partitions = this.partition ? Array.from({ length: this.partition.count }, (_, i) => partitionQueue(this.home, i)) : [];
    await declareEngineTopology(ch, this.names, {
      consume: this.home,
      targets: [...this.targets, ...partitions],
      bindExchange: this.o.consumeQueue ? undefined : this.o.config.exchange,
      dispatcher: dispatcherQueue(this.o.config.name),
    });
    for (const q of [this.home, ...this.targets, ...partitions]) this.declared.add(q);
    if (this.eventTask) await ch.prefetch(this.o.broker.prefetch);
    this.ch = ch;
    if (this.routes && !this.stopping) {
      const router = this.watch(await conn.createConfirmChannel(), 'router channel');
      await router.prefetch(this.o.broker.prefetch);
      this.router = router;
    }
    await this.syncConsumers();
    if (this.dispatcherTask && !this.stopping) {
      // Its own channel with prefetch 1: a job goes to a process that is free.
      const dch = this.watch(await conn.createChannel(), 'dispatcher channel');
      await dch.prefetch(1);
      const ok = await dch.consume(dispatcherQueue(this.o.config.name), (msg) => {
        if (msg) void this.runJob(dch, msg);
      });
      this.dch = dch;
      this.dispatcherTag = ok.consumerTag;
    }
  }

  /** Whether this process reads the home queue and routes it to the partitions. */
  private get routes(): boolean {
    return !!this.partition && this.o.worker === 0 && !!this.eventTask;
  }

  /**
   * Brings the consumers to what they should be now: consuming unless
   * stopping or held by a fault. Cancelling drops this queue's consumer
   * count to 0, which is how readiness checks see a paused engine.
   */
  private syncConsumers(): Promise<void> {
    this.consumerSync = this.consumerSync
      .then(async () => {
        const want = !this.stopping && !this.pause.paused;
        const ch = this.ch;
        if (this.eventTask && ch && !this.lost.has(ch)) {
          this.consumer = await this.toggle(this.consumer, ch, want, this.consume, (msg) => this.enqueue(ch, msg));
        }
        const router = this.router;
        if (this.routes && router && !this.lost.has(router)) {
          this.routerConsumer = await this.toggle(this.routerConsumer, router, want, this.home, (msg) => this.route(router, msg));
        }
      })
      .catch((e: Error) => this.o.logger.warn({ err: e.message }, 'cannot start or cancel a consumer; the next reconnect sets it right'));
    return this.consumerSync;
  }

  private async toggle(
    current: Consumer | undefined,
    ch: Channel,
    want: boolean,
    queue: string,
    onMessage: (msg: ConsumeMessage) => void,
  ): Promise<Consumer | undefined> {
    const mine = current?.ch === ch ? current : undefined;
    if (want && !mine) {
      const ok = await ch.consume(queue, (msg) => {
        if (msg) onMessage(msg);
      });
      return { ch, tag: ok.consumerTag };
    }
    if (!want && mine) {
      await ch.cancel(mine.tag);
      return undefined;
    }
    return mine;
  }

  /** One consumer reads the home queue in arrival order and sends each event to its partition: the events of one key keep their order, each partition has one process. */
  private route(router: ConfirmChannel, msg: ConsumeMessage): void {
    const p = this.partition!;
    const n = partitionFor(msg.content, p.key, p.count);
    this.track(
      this.publishConfirmed(router, '', partitionQueue(this.home, n), msg.content, msg.properties.headers).then(
        (sent) => sent && this.ack(router, msg),
      ),
    );
  }

  private enqueue(ch: ConfirmChannel, msg: ConsumeMessage): void {
    this.stats.received++;
    this.tail = this.tail
      .then(() => this.handleMessage(ch, msg))
      .catch((e: Error) => {
        // handleMessage decides every outcome itself; this is the last resort for a bug in the engine:
        // the broker dead-letters the message (x-death), so it never holds a prefetch slot.
        this.o.logger.error({ err: e.stack ?? e.message }, 'event handling failed; the message is rejected to the dead-letter queue');
        this.stats.dead++;
        if (!this.lost.has(ch)) {
          try {
            ch.nack(msg, false, false);
          } catch {
            // channel gone: the broker redelivers it
          }
        }
      });
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p)).catch(() => undefined);
    return p;
  }

  private get taskName(): string {
    return this.o.config.eventProcessing ?? 'event_processing';
  }

  /**
   * One message, to one outcome: passed on, dropped or dead-lettered (then
   * acked), or left unacked for the broker when its channel is gone or a
   * stop interrupted a retry. A failed attempt is retried as the fault
   * policy says (./faults.ts); a store or broker fault holds the engine.
   */
  private async handleMessage(ch: ConfirmChannel, msg: ConsumeMessage): Promise<void> {
    // Its channel is gone: the broker has put it back in the queue already.
    if (this.lost.has(ch) || this.abandoned) return;
    const hold = {};
    let attempts: Attempts = { transient: 0, failures: 0 };
    try {
      for (;;) {
        let fault: Fault;
        try {
          await this.process(ch, msg);
          this.pause.release(hold);
          this.pause.answered();
          return;
        } catch (e) {
          if (this.lost.has(ch)) return;
          fault = classify(e);
        }
        attempts = count(attempts, fault);
        const step = nextStep(fault, attempts, this.taskName);
        if (step.action === 'dead-letter') return await this.deadLetter(ch, msg, step.reason);
        this.stats.retries++;
        if (step.pause) this.pause.hold(hold, fault.message);
        else this.o.logger.debug({ err: fault.message, attempt: attempts.failures }, `${this.taskName} failed; retrying`);
        if (!(await this.sleep(step.afterMs, ch))) {
          if (this.stopping) this.abandoned = true;
          return;
        }
      }
    } finally {
      this.pause.release(hold);
    }
  }

  /** One attempt: parse, run the task, publish what it returned. Throws what went wrong, for the fault policy. */
  private async process(ch: ConfirmChannel, msg: ConsumeMessage): Promise<void> {
    // Parsed on every attempt: a task that changed the event and then failed gets it afresh.
    const parsed = parseEventBody(msg.content);
    if (!parsed.ok) throw new RejectedEvent(parsed.reason);
    let input = parsed.value;
    // A module reading a producer's arrays (collectd's value lists) gets them wrapped in an object.
    const wrap = this.o.registry.moduleOf(this.o.config.eventProcessing ?? '')?.wrapArray;
    if (wrap && Array.isArray(input)) input = { [wrap]: input };
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
      throw new RejectedEvent(`not an event object (found ${Array.isArray(input) ? 'an array' : input === null ? 'null' : typeof input})`);
    }
    const started = performance.now();
    let outcome: Awaited<ReturnType<EventTask>>;
    try {
      outcome = await this.eventTask!(this.handle, input as Event, { logger: this.o.logger });
    } finally {
      this.stats.busyMs += performance.now() - started;
    }
    const outputs = outputsOf(outcome);
    const messages = this.messagesOf(outputs);
    for (const m of messages) {
      if (!this.declared.has(m.queue)) {
        await declareEngineQueue(ch, this.names, m.queue);
        this.declared.add(m.queue);
      }
    }
    this.stats.processed++;
    if (outputs.length === 0) this.stats.dropped++;
    this.stats.published += messages.length;
    // Pipelined: the next event is processed while these confirms are on their way.
    this.track(this.deliver(ch, msg, messages));
    await this.backPressure();
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
      let queues = this.targets;
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
  private async deliver(ch: ConfirmChannel, msg: ConsumeMessage, messages: Message[]): Promise<void> {
    const sent = await Promise.all(messages.map((m) => this.publishConfirmed(ch, '', m.queue, m.body, msg.properties.headers)));
    if (sent.every(Boolean)) this.ack(ch, msg);
  }

  private ack(ch: Channel, msg: ConsumeMessage): void {
    if (this.lost.has(ch)) return;
    try {
      ch.ack(msg);
    } catch {
      // channel gone: the input was not acked and will be redelivered
    }
  }

  /**
   * Publishes until the broker confirms. A refusal (nack) is a broker fault:
   * retried with backoff while the engine is held. Resolves false when the
   * channel is gone or a stop came first: the input then stays unacked.
   * A retried publish may land after those of later events.
   */
  private async publishConfirmed(
    ch: ConfirmChannel,
    exchange: string,
    key: string,
    body: Buffer,
    headers?: Record<string, unknown>,
  ): Promise<boolean> {
    const hold = {};
    try {
      for (let n = 0; ; n++) {
        try {
          await this.publish(ch, exchange, key, body, headers);
          if (n > 0) {
            this.pause.release(hold);
            this.pause.answered();
          }
          return true;
        } catch (e) {
          if (this.lost.has(ch) || this.stopping) return false;
          this.stats.retries++;
          this.pause.hold(hold, `the broker refused a publish to ${key || exchange}: ${(e as Error).message}`);
          if (!(await this.sleep(backoff(RETRY_POLICY.transient, n), ch))) return false;
        }
      }
    } finally {
      this.pause.release(hold);
    }
  }

  private drainWait: Promise<unknown> | undefined;

  private publish(ch: ConfirmChannel, exchange: string, key: string, body: Buffer, headers?: Record<string, unknown>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const ok = ch.publish(exchange, key, body, { persistent: true, contentType: 'application/json', headers: headers ?? {} }, (err) =>
        err ? reject(err) : resolve(),
      );
      if (!ok) this.drainWait ??= once(ch, 'drain').finally(() => (this.drainWait = undefined));
    });
  }

  /** amqplib buffers when the socket is full: wait for 'drain' before taking the next event. */
  private async backPressure(): Promise<void> {
    if (this.drainWait) await this.drainWait;
  }

  /** Waits, unless a stop or the loss of `ch` comes first; true when it is still worth retrying. */
  private sleep(ms: number, ch: Channel): Promise<boolean> {
    const worth = () => !this.stopping && !this.lost.has(ch);
    if (!worth()) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve(worth());
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  private wakeSleepers(): void {
    for (const wake of [...this.sleepers]) wake();
  }

  private async deadLetter(ch: ConfirmChannel, msg: ConsumeMessage, reason: string): Promise<void> {
    this.stats.dead++;
    this.o.logger.warn({ reason, queue: this.consume, bytes: msg.content.length }, 'event dead-lettered');
    void this.handle.report('warning', 'event_rejected', { phase: 'dead-letter', reason, extra: { queue: this.consume } });
    const headers = deadLetterHeaders(msg.properties.headers, reason, {
      engine: this.o.config.name,
      worker: this.o.worker,
      home: this.home,
      exchange: msg.fields.exchange,
      routingKey: msg.fields.routingKey,
    });
    this.track(
      this.publishConfirmed(ch, this.names.deadExchange, deadQueue(this.home), msg.content, headers).then(
        (sent) => sent && this.ack(ch, msg),
      ),
    );
    await this.backPressure();
  }

  /** Publishes raw to an exchange with a confirm (for the message dispatcher). */
  async publishRaw(exchange: string, routingKey: string, body: Buffer): Promise<void> {
    const ch = this.ch;
    if (!ch || this.lost.has(ch)) throw new BrokerUnavailable('not connected to the broker');
    await this.publish(ch, exchange, routingKey, body).catch((e: Error) => {
      throw new BrokerUnavailable(`the broker refused a publish to ${exchange}: ${e.message}`, { cause: e });
    });
  }

  /** Sends a job to Dispatcher_<name>; a broker fault throws BrokerUnavailable (a task calling it is retried). */
  async dispatch(job: unknown): Promise<void> {
    const queue = dispatcherQueue(this.o.config.name);
    const ch = this.ch;
    if (!ch || this.lost.has(ch)) throw new BrokerUnavailable('not connected to the broker');
    await this.publish(ch, '', queue, Buffer.from(JSON.stringify(job ?? null))).catch((e: Error) => {
      throw new BrokerUnavailable(`the broker refused a publish to ${queue}: ${e.message}`, { cause: e });
    });
  }

  private async runJob(dch: Channel, msg: ConsumeMessage): Promise<void> {
    const job = this.track(
      (async () => {
        try {
          await this.dispatcherTask!(this.handle, JSON.parse(msg.content.toString('utf8')), { logger: this.o.logger });
          this.stats.jobs++;
        } catch (e) {
          // The beat that sent it sends the next one: a job is not retried here.
          this.o.logger.error({ err: (e as Error).message, fault: classify(e).kind }, 'consume_dispatcher failed; job dropped');
        }
        try {
          dch.ack(msg);
        } catch {
          // channel gone: the job is redelivered to a process
        }
      })(),
    );
    await job;
  }

  private lastStats: StatsSample = { at: performance.now(), processed: 0, busyMs: 0 };

  /** A perf event about this process, as Canopsis engines publish: rate, time per event, queue depth. */
  private async publishStats(everySeconds: number): Promise<void> {
    const ch = this.ch;
    if (!ch || this.stopping) return;
    const prev = this.lastStats;
    this.lastStats = { at: performance.now(), processed: this.stats.processed, busyMs: this.stats.busyMs };
    let depth = 0;
    try {
      depth = (await ch.checkQueue(this.consume)).messageCount;
    } catch {
      return;
    }
    const event = statsEvent(
      { engine: this.o.config.name, worker: this.o.worker, host: os.hostname() },
      prev,
      this.lastStats,
      depth,
      everySeconds,
    );
    await this.publish(ch, this.names.eventsExchange, routingKey(event), Buffer.from(JSON.stringify(event))).catch(() => undefined);
  }

  /**
   * Graceful stop: stop consuming, finish the events already received
   * (unless a store or broker fault holds them: those stay unacked),
   * wait for their confirms and acks, then close channels before the
   * connection (amqplib issue 713). Bounded by stopTimeoutMs; whatever is
   * not acked by then is redelivered by the broker.
   */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping = true;
      // No beat starts from now on; the one running, if any, is waited for with the events in flight.
      const beatsStopped = this.beats?.stop();
      clearInterval(this.statsTimer);
      // A retry in its backoff ends now; what it held stays unacked for the broker to redeliver.
      this.wakeSleepers();
      const ch = this.ch;
      const dch = this.dch;
      await this.syncConsumers();
      if (dch && this.dispatcherTag) await dch.cancel(this.dispatcherTag).catch(() => undefined);
      const drained = (async () => {
        await this.tail;
        await beatsStopped;
        while (this.pending.size) await Promise.allSettled([...this.pending]);
      })();
      const bound = this.o.stopTimeoutMs ?? 20_000;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        drained.then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), bound))),
      ]);
      clearTimeout(timer);
      if (timedOut)
        this.o.logger.warn({ pending: this.pending.size }, `events still in flight after ${bound} ms; the broker will redeliver them`);
      const router = this.router;
      await this.connection.close(async () => {
        await router?.close().catch(() => undefined);
        await ch?.close().catch(() => undefined);
        await dch?.close().catch(() => undefined);
      });
      await this.dispatcherSet?.close();
      await this.storeOpened?.then((s) => s.close()).catch(() => undefined);
      this.o.logger.info({ ...this.stats }, 'engine stopped');
    })();
    return this.stopped;
  }
}
