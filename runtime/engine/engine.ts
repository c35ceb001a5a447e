import { once } from 'node:events';
import os from 'node:os';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { BrokerConnection } from '../amqp/connection.js';
import { deadQueue, declareEngineQueue, declareEngineTopology, dispatcherQueue, engineQueue, partitionOf, partitionQueue, type TopologyNames } from '../amqp/topology.js';
import type { BrokerConfig } from '../config/files.js';
import type { EngineConfig } from '../config/engines.js';
import { MAX_EVENT_BYTES, routingKey } from '../event/canopsis-event.js';
import type { Logger } from '../log.js';
import type { TaskRegistry } from '../tasks/registry.js';
import { RejectedEvent, type BeatTask, type DispatcherTask, type EngineHandle, type Event, type EventTask } from '../tasks/types.js';
import { outputsOf } from './outcome.js';
import { openStore, type RuntimeConfig } from '../config/runtime.js';
import type { DispatcherSet } from '../dispatch/dispatchers.js';
import type { Store } from '../store/types.js';

/*
 * One engine process: consume Engine_<name>, run event_processing on each
 * event in arrival order, publish what it returns to the next queues with
 * publisher confirms, and ack the input only once every output is
 * confirmed. At-least-once: a crash or a lost connection before the ack
 * means the broker redelivers the input.
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
}

export interface EngineStats {
  received: number;
  processed: number;
  published: number;
  dropped: number;
  dead: number;
  beats: number;
  jobs: number;
  /** Total task time in ms, for seconds per event. */
  busyMs: number;
}

export class Engine {
  readonly stats: EngineStats = { received: 0, processed: 0, published: 0, dropped: 0, dead: 0, beats: 0, jobs: 0, busyMs: 0 };
  readonly handle: EngineHandle;
  private readonly names: TopologyNames;
  private readonly consume: string;
  /** The queue this engine's events come from and go back to (dead letters, replays): Engine_<name> unless -consumeQueue. */
  private readonly home: string;
  /** Partitioned engine (ordered by key with numprocs > 1): worker 0 routes the home queue into Engine_<name>.<n>. */
  private readonly partition?: { key: (e: Event) => string; count: number };
  private routerTag: string | undefined;
  private readonly targets: string[];
  private readonly eventTask?: EventTask;
  private readonly beatTask?: BeatTask;
  private readonly dispatcherTask?: DispatcherTask;
  private readonly connection: BrokerConnection;
  private ch: ConfirmChannel | undefined;
  private router: ConfirmChannel | undefined;
  private dch: Channel | undefined;
  private consumerTag: string | undefined;
  private dispatcherTag: string | undefined;
  private readonly declared = new Set<string>();
  /** The chain of event handling: events are processed one after the other, in arrival order. */
  private tail: Promise<void> = Promise.resolve();
  private readonly pending = new Set<Promise<unknown>>();
  private beatTimer: NodeJS.Timeout | undefined;
  private beatRun: Promise<void> | undefined;
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
    const unknown = (what: string, name: string) => new Error(`[engine:${c.name}] ${what}: unknown task ${name} (known: ${o.registry.names().join(', ') || 'none'})`);
    if (c.eventProcessing) {
      this.eventTask = o.registry.get<EventTask>(c.eventProcessing);
      if (!this.eventTask) throw unknown('event_processing', c.eventProcessing);
    }
    if (c.beatProcessing) {
      this.beatTask = o.registry.get<BeatTask>(c.beatProcessing);
      if (!this.beatTask) throw unknown('beat_processing', c.beatProcessing);
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
      store: () => (this.storeOpened ??= openStore(o.runtime)),
      report: async (level, action, info) => {
        if (this.dispatcherSet) await this.dispatcherSet.dump(level, action, info);
      },
    };
    this.connection = new BrokerConnection({ url: o.broker.url, where: o.broker.where, logger: o.logger, setup: (conn) => this.setup(conn) });
  }

  get queue(): string {
    return this.consume;
  }

  /** Connects (retrying until the broker answers) and starts consuming, beating and reporting. */
  async start(): Promise<void> {
    this.dispatcherSet = await this.o.dispatchers(this);
    await this.connection.start();
    this.scheduleBeat();
    const every = this.o.statsInterval ?? 60;
    if (every > 0) this.statsTimer = setInterval(() => void this.publishStats(every), every * 1000).unref();
  }

  private async setup(conn: ChannelModel): Promise<void> {
    const ch = await conn.createConfirmChannel();
    ch.on('error', (e: Error) => this.o.logger.warn({ err: e.message }, 'channel error'));
    this.declared.clear();
    const partitions = this.partition ? Array.from({ length: this.partition.count }, (_, i) => partitionQueue(this.home, i)) : [];
    await declareEngineTopology(ch, this.names, {
      consume: this.home,
      targets: [...this.targets, ...partitions],
      bindExchange: this.o.consumeQueue ? undefined : this.o.config.exchange,
      dispatcher: dispatcherQueue(this.o.config.name),
    });
    for (const q of [this.home, ...this.targets, ...partitions]) this.declared.add(q);
    this.ch = ch;
    if (this.partition && this.o.worker === 0 && this.eventTask && !this.stopping) {
      // One consumer reads the home queue in arrival order and sends each event to its partition:
      // the events of one key keep their order, each partition has one process.
      const router = await conn.createConfirmChannel();
      router.on('error', (e: Error) => this.o.logger.warn({ err: e.message }, 'router channel error'));
      await router.prefetch(this.o.broker.prefetch);
      const p = this.partition;
      const ok = await router.consume(this.home, (msg) => {
        if (!msg) return;
        let n = 0;
        try {
          n = partitionOf(p.key(JSON.parse(msg.content.toString('utf8')) as Event), p.count);
        } catch {
          // Unreadable: partition 0's worker dead-letters it with the reason.
        }
        this.track(this.publish(router, '', partitionQueue(this.home, n), msg.content, msg.properties.headers).then(() => router.ack(msg), () => undefined));
      });
      this.router = router;
      this.routerTag = ok.consumerTag;
    }
    if (this.eventTask && !this.stopping) {
      await ch.prefetch(this.o.broker.prefetch);
      const ok = await ch.consume(this.consume, (msg) => {
        if (msg) this.enqueue(ch, msg);
      });
      this.consumerTag = ok.consumerTag;
    }
    if (this.dispatcherTask && !this.stopping) {
      // Its own channel with prefetch 1: a job goes to a process that is free.
      const dch = await conn.createChannel();
      dch.on('error', (e: Error) => this.o.logger.warn({ err: e.message }, 'dispatcher channel error'));
      await dch.prefetch(1);
      const ok = await dch.consume(dispatcherQueue(this.o.config.name), (msg) => {
        if (msg) void this.runJob(dch, msg);
      });
      this.dch = dch;
      this.dispatcherTag = ok.consumerTag;
    }
  }

  private enqueue(ch: ConfirmChannel, msg: ConsumeMessage): void {
    this.stats.received++;
    this.tail = this.tail.then(() => this.handleEvent(ch, msg)).catch((e: Error) => this.o.logger.error({ err: e.message }, 'event handling failed; the broker will redeliver'));
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p)).catch(() => undefined);
    return p;
  }

  private async handleEvent(ch: ConfirmChannel, msg: ConsumeMessage): Promise<void> {
    if (msg.content.length > MAX_EVENT_BYTES) {
      return this.deadLetter(ch, msg, `event of ${msg.content.length} bytes exceeds the ${MAX_EVENT_BYTES}-byte event limit`);
    }
    let input: unknown;
    try {
      input = JSON.parse(msg.content.toString('utf8'));
    } catch (e) {
      return this.deadLetter(ch, msg, `not JSON: ${(e as Error).message}`);
    }
    // A module reading a producer's arrays (collectd's value lists) gets them wrapped in an object.
    const wrap = this.o.registry.moduleOf(this.o.config.eventProcessing ?? '')?.wrapArray;
    if (wrap && Array.isArray(input)) input = { [wrap]: input };
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
      return this.deadLetter(ch, msg, `not an event object (found ${Array.isArray(input) ? 'an array' : input === null ? 'null' : typeof input})`);
    }
    const started = performance.now();
    let outputs;
    try {
      const outcome = await this.eventTask!(this.handle, input as Event, { logger: this.o.logger });
      outputs = outputsOf(outcome);
    } catch (e) {
      const reason = e instanceof RejectedEvent ? e.message : `${this.o.config.eventProcessing} failed: ${(e as Error).message}`;
      return this.deadLetter(ch, msg, reason);
    } finally {
      this.stats.busyMs += performance.now() - started;
    }
    const messages: Array<{ queue: string; body: Buffer }> = [];
    for (const out of outputs) {
      const body = Buffer.from(JSON.stringify(out.event));
      if (body.length > MAX_EVENT_BYTES) return this.deadLetter(ch, msg, `output of ${body.length} bytes exceeds the ${MAX_EVENT_BYTES}-byte event limit`);
      let queues = this.targets;
      if (out.engines) {
        const bad = out.engines.filter((n) => !this.o.known.has(n));
        if (bad.length) return this.deadLetter(ch, msg, `routed to unknown engine ${bad.join(', ')}`);
        queues = out.engines.map(engineQueue);
      }
      for (const queue of queues) messages.push({ queue, body });
    }
    this.stats.processed++;
    if (outputs.length === 0) this.stats.dropped++;
    for (const m of messages) {
      if (!this.declared.has(m.queue)) {
        await declareEngineQueue(ch, this.names, m.queue);
        this.declared.add(m.queue);
      }
    }
    const confirms = messages.map((m) => this.publish(ch, '', m.queue, m.body, msg.properties.headers));
    this.stats.published += messages.length;
    // Pipelined: the next event is processed while these confirms are on their way.
    this.track(
      Promise.all(confirms).then(
        () => ch.ack(msg),
        () => undefined, // channel gone: the input was not acked and will be redelivered
      ),
    );
    await this.backPressure();
  }

  private drainWait: Promise<unknown> | undefined;

  private publish(ch: ConfirmChannel, exchange: string, key: string, body: Buffer, headers?: Record<string, unknown>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const ok = ch.publish(exchange, key, body, { persistent: true, contentType: 'application/json', headers: headers ?? {} }, (err) => (err ? reject(err) : resolve()));
      if (!ok) this.drainWait ??= once(ch, 'drain').finally(() => (this.drainWait = undefined));
    });
  }

  /** amqplib buffers when the socket is full: wait for 'drain' before taking the next event. */
  private async backPressure(): Promise<void> {
    if (this.drainWait) await this.drainWait;
  }

  private async deadLetter(ch: ConfirmChannel, msg: ConsumeMessage, reason: string): Promise<void> {
    this.stats.dead++;
    this.o.logger.warn({ reason, queue: this.consume, bytes: msg.content.length }, 'event dead-lettered');
    void this.handle.report('warning', 'event_rejected', { phase: 'dead-letter', reason, extra: { queue: this.consume } });
    const headers = {
      ...(msg.properties.headers ?? {}),
      'x-canopsis-reason': reason,
      'x-canopsis-engine': this.o.config.name,
      'x-canopsis-worker': this.o.worker,
      'x-canopsis-dead-at': new Date().toISOString(),
      'x-canopsis-exchange': msg.fields.exchange,
      'x-canopsis-routing-key': msg.fields.routingKey,
      'x-canopsis-queue': this.home,
    };
    const confirmed = this.publish(ch, this.names.deadExchange, deadQueue(this.home), msg.content, headers);
    this.track(confirmed.then(() => ch.ack(msg), () => undefined));
    await this.backPressure();
  }

  /** Publishes raw to an exchange with a confirm (for the message dispatcher). */
  publishRaw(exchange: string, routingKey: string, body: Buffer): Promise<void> {
    const ch = this.ch;
    if (!ch) return Promise.reject(new Error('not connected to the broker'));
    return this.publish(ch, exchange, routingKey, body);
  }

  async dispatch(job: unknown): Promise<void> {
    const ch = this.ch;
    if (!ch) throw new Error('not connected to the broker');
    await this.publish(ch, '', dispatcherQueue(this.o.config.name), Buffer.from(JSON.stringify(job ?? null)));
  }

  private async runJob(dch: Channel, msg: ConsumeMessage): Promise<void> {
    const job = this.track(
      (async () => {
        try {
          await this.dispatcherTask!(this.handle, JSON.parse(msg.content.toString('utf8')), { logger: this.o.logger });
          this.stats.jobs++;
        } catch (e) {
          this.o.logger.error({ err: (e as Error).message }, 'consume_dispatcher failed; job dropped');
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

  /** Beats never overlap: the next one is armed only when this one has ended. */
  private scheduleBeat(): void {
    if (!this.beatTask || this.stopping) return;
    this.beatTimer = setTimeout(() => {
      this.beatRun = (async () => {
        try {
          await this.beatTask!(this.handle, { logger: this.o.logger });
          this.stats.beats++;
        } catch (e) {
          this.o.logger.error({ err: (e as Error).message, task: this.o.config.beatProcessing }, 'beat_processing failed');
        }
      })();
      void this.beatRun.finally(() => {
        this.beatRun = undefined;
        this.scheduleBeat();
      });
    }, this.o.config.beatInterval * 1000);
  }

  private lastStats = { at: performance.now(), processed: 0, busyMs: 0 };

  /** A perf event about this process, as Canopsis engines publish: rate, time per event, queue depth. */
  private async publishStats(everySeconds: number): Promise<void> {
    const ch = this.ch;
    if (!ch || this.stopping) return;
    const now = performance.now();
    const n = this.stats.processed - this.lastStats.processed;
    const busy = this.stats.busyMs - this.lastStats.busyMs;
    const seconds = (now - this.lastStats.at) / 1000 || everySeconds;
    this.lastStats = { at: now, processed: this.stats.processed, busyMs: this.stats.busyMs };
    let depth = 0;
    try {
      depth = (await ch.checkQueue(this.consume)).messageCount;
    } catch {
      return;
    }
    const event: Event = {
      connector: 'Engine',
      connector_name: 'engine',
      event_type: 'perf',
      source_type: 'resource',
      component: os.hostname(),
      resource: `Engine_${this.o.config.name}.${this.o.worker}`,
      timestamp: Math.floor(Date.now() / 1000),
      perf_data_array: [
        { metric: 'cps_evt_per_sec', value: n / seconds, unit: 'evt', type: 'GAUGE' },
        { metric: 'cps_sec_per_evt', value: n ? busy / 1000 / n : 0, unit: 's', type: 'GAUGE' },
        { metric: 'cps_queue_size', value: depth, unit: 'evt', type: 'GAUGE' },
      ],
    };
    await this.publish(ch, this.names.eventsExchange, routingKey(event), Buffer.from(JSON.stringify(event))).catch(() => undefined);
  }

  /**
   * Graceful stop: stop consuming, finish the events already received,
   * wait for their confirms and acks, then close channels before the
   * connection (amqplib issue 713). Bounded by stopTimeoutMs; whatever is
   * not acked by then is redelivered by the broker.
   */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping = true;
      clearTimeout(this.beatTimer);
      clearInterval(this.statsTimer);
      const ch = this.ch;
      const dch = this.dch;
      if (this.router && this.routerTag) await this.router.cancel(this.routerTag).catch(() => undefined);
      if (ch && this.consumerTag) await ch.cancel(this.consumerTag).catch(() => undefined);
      if (dch && this.dispatcherTag) await dch.cancel(this.dispatcherTag).catch(() => undefined);
      const drained = (async () => {
        await this.tail;
        await this.beatRun;
        while (this.pending.size) await Promise.allSettled([...this.pending]);
      })();
      const bound = this.o.stopTimeoutMs ?? 20_000;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([drained.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), bound)))]);
      clearTimeout(timer);
      if (timedOut) this.o.logger.warn({ pending: this.pending.size }, `events still in flight after ${bound} ms; the broker will redeliver them`);
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
