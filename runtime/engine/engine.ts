import os from 'node:os';
import type { ConsumeMessage } from 'amqplib';
import { declareEngineTopology, dispatcherQueue, engineQueue, partitionQueue, type TopologyNames } from '../amqp/topology.js';
import type { EngineConfig } from '../config/engines.js';
import type { BrokerConfig } from '../config/files.js';
import { openStore, type RuntimeConfig } from '../config/runtime.js';
import type { DispatcherSet } from '../dispatch/dispatchers.js';
import { routingKey } from '../event/canopsis-event.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/types.js';
import type { TaskRegistry } from '../tasks/registry.js';
import type { BeatTask, EngineHandle, Event, EventTask } from '../tasks/types.js';
import { BeatScheduler } from './beats.js';
import { amqpLink, type BrokerLink, type EngineConnection, type EventChannel, type OpenLink } from './broker-port.js';
import { ChannelLife } from './channel-life.js';
import { ConsumerSwitch } from './consumers.js';
import { BrokerUnavailable } from './faults.js';
import { groupCommitOf } from './group-commit.js';
import { InFlight } from './in-flight.js';
import { JobConsumer } from './jobs.js';
import { FaultPause } from './pause.js';
import { EventPipeline, type LocalStage } from './pipeline.js';
import { ConfirmedPublisher } from './publisher.js';
import { PartitionRouter } from './router.js';
import { type StatsSample, statsEvent } from './self-stats.js';
import { type EngineStats, noStats } from './stats.js';

export type { EngineStats } from './stats.js';

/*
 * One engine process, wired from small parts that each see it through a
 * narrow interface: the event pipeline (./pipeline.ts: process in order,
 * publish with confirms, ack after), the partition router (./router.ts),
 * the Dispatcher_<name> job consumer (./jobs.ts), beats (./beats.ts),
 * the fault pause (./pause.ts) and self-stats (./self-stats.ts). What it
 * owns is the lifecycle: set up each connection the link hands it, keep
 * the consumers matching what is wanted now, say whether it is ready, and
 * stop gracefully. The broker link and the store are passed in, so all of
 * it runs in-process against an in-memory broker in tests.
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
  /** The broker link (default: amqplib to `broker.url`, reconnecting). */
  link?: OpenLink;
  /** Fused: the later engines of this process that outputs reach in memory (see ./fused.ts). */
  local?: (queue: string) => LocalStage | undefined;
  /** The store of the process if open, when several engines share it (their writes share its group commit). */
  storeNow?: () => Store | undefined;
  /** Whether stop() closes the store (not when the process shares it between engines). Default true. */
  closesStore?: boolean;
  /** Fused: the key ordering the whole group's events, used for its partitions instead of this engine's own. */
  partitionBy?: (event: Event) => string;
}

/** Whether this process does its job now: what `hypcontrol status` and /metrics see as its queue's consumer. */
export interface EngineReadiness {
  /** Connected, consuming its queue (when it has one) and not paused by a fault. */
  ready: boolean;
  consuming: boolean;
  /** While a store or broker fault pauses consumption: the first error of the episode and since when. */
  fault?: { reason: string; since: string };
}

export class Engine {
  readonly stats: EngineStats = noStats();
  readonly handle: EngineHandle;
  private readonly names: TopologyNames;
  /** The queue this engine's events come from and go back to (dead letters, replays): Engine_<name> unless -consumeQueue. */
  readonly home: string;
  /** The queue this process consumes: home, or its partition of it. */
  private readonly consume: string;
  private readonly targets: string[];
  private readonly eventTask?: EventTask;
  private readonly link: BrokerLink;
  private readonly life: ChannelLife;
  private readonly inFlight = new InFlight();
  /** Held while the store or the broker does not answer: consumption pauses. */
  private readonly pause: FaultPause;
  private readonly publisher: ConfirmedPublisher;
  private readonly declared = new Set<string>();
  private readonly pipeline?: EventPipeline;
  private readonly partition?: PartitionRouter;
  private readonly jobs?: JobConsumer;
  private readonly beats: BeatScheduler | undefined;
  private readonly consumer: ConsumerSwitch;
  private readonly routerConsumer: ConsumerSwitch;
  private ch: EventChannel | undefined;
  private router: EventChannel | undefined;
  /** Consumers are started and cancelled one change at a time, in order. */
  private consumerSync: Promise<void> = Promise.resolve();
  private statsTimer: NodeJS.Timeout | undefined;
  private lastStats: StatsSample = { at: performance.now(), processed: 0, busyMs: 0 };
  private stopped: Promise<void> | undefined;
  private storeOpened: Promise<Store> | undefined;
  /** The store once opened: a group commit only starts on an open store. */
  private storeNow: Store | undefined;
  private dispatcherSet: DispatcherSet | undefined;

  constructor(private readonly o: EngineOptions) {
    const c = o.config;
    this.names = { eventsExchange: o.broker.exchange, deadExchange: o.broker.deadLetterExchange, queueType: o.broker.queueType };
    this.home = o.consumeQueue ?? engineQueue(c.name);
    this.targets = o.publishQueue ? [o.publishQueue] : c.next.map(engineQueue);
    this.life = new ChannelLife(o.logger);
    const unknown = (what: string, name: string) =>
      new Error(`[engine:${c.name}] ${what}: unknown task ${name} (known: ${o.registry.names().join(', ') || 'none'})`);
    if (c.eventProcessing) {
      this.eventTask = o.registry.get<EventTask>(c.eventProcessing);
      if (!this.eventTask) throw unknown('event_processing', c.eventProcessing);
    }
    let beatTask: BeatTask | undefined;
    if (c.beatProcessing) {
      beatTask = o.registry.get<BeatTask>(c.beatProcessing);
      if (!beatTask) throw unknown('beat_processing', c.beatProcessing);
    }
    this.handle = {
      name: c.name,
      worker: o.worker,
      prefix: o.prefix,
      state: new Map(),
      runtime: o.runtime,
      dispatch: (job) => this.dispatch(job),
      emit: (event, engines) => this.emit(event, engines),
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
    this.publisher = new ConfirmedPublisher(
      this.life,
      this.pause,
      () => this.stats.retries++,
      (why) => this.link.reconnect?.(why),
    );

    const module = o.registry.moduleOf(c.eventProcessing ?? '');
    const partitionBy = o.partitionBy ?? module?.partition;
    if (partitionBy && c.numprocs > 1 && !o.consumeQueue && this.eventTask)
      this.partition = new PartitionRouter(this.home, partitionBy, c.numprocs, this.publisher, this.life, this.inFlight);
    this.consume = this.partition ? partitionQueue(this.home, o.worker % c.numprocs) : this.home;
    this.consumer = new ConsumerSwitch(this.consume);
    this.routerConsumer = new ConsumerSwitch(this.home);
    if (this.eventTask) {
      this.pipeline = new EventPipeline({
        engine: c.name,
        worker: o.worker,
        home: this.home,
        queue: this.consume,
        taskName: c.eventProcessing ?? 'event_processing',
        task: this.eventTask,
        handle: this.handle,
        wrapArray: module?.wrapArray,
        targets: this.targets,
        known: o.known,
        names: this.names,
        declared: this.declared,
        publisher: this.publisher,
        pause: this.pause,
        life: this.life,
        inFlight: this.inFlight,
        stats: this.stats,
        logger: o.logger,
        local: o.local,
        group: () => {
          // The process's store, though this engine may not have asked for it (a fused cleaner never does).
          const store = o.storeNow?.() ?? this.storeNow;
          return store ? groupCommitOf(store) : undefined;
        },
      });
    }
    if (beatTask) {
      const task = beatTask;
      this.beats = new BeatScheduler(
        c.beatInterval * 1000,
        async () => {
          await task(this.handle, { logger: this.o.logger });
          this.stats.beats++;
        },
        (e) => this.o.logger.error({ err: e.message, task: c.beatProcessing }, 'beat_processing failed'),
      );
    }
    const jobTask = o.registry.moduleOf(c.eventProcessing ?? c.beatProcessing ?? '')?.consume_dispatcher;
    if (jobTask)
      this.jobs = new JobConsumer(
        dispatcherQueue(c.name),
        jobTask,
        this.handle,
        o.logger,
        this.life,
        this.inFlight,
        () => this.stats.jobs++,
      );
    this.link = (o.link ?? amqpLink(o.broker, o.logger))((conn) => this.setup(conn));
  }

  get queue(): string {
    return this.consume;
  }

  /** This engine's event processing as an earlier engine of a fused process reaches it. */
  get stage(): LocalStage | undefined {
    return this.pipeline?.stage;
  }

  get readiness(): EngineReadiness {
    const ch = this.ch;
    const consuming = !!ch && !this.life.isLost(ch) && this.consumer.consumingOn(ch);
    const out: EngineReadiness = {
      ready: this.link.connected && !this.life.stopping && !this.pause.paused && (consuming || !this.eventTask),
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
      opening.then(
        (s) => {
          if (this.storeOpened === opening) this.storeNow = s;
        },
        () => {
          if (this.storeOpened === opening) this.storeOpened = undefined;
        },
      );
    }
    return this.storeOpened;
  }

  /** Connects (retrying until the broker answers) and starts consuming, beating and reporting. */
  async start(): Promise<void> {
    this.dispatcherSet = await this.o.dispatchers(this);
    await this.link.start();
    this.beats?.start();
    const every = this.o.statsInterval ?? 60;
    if (every > 0) this.statsTimer = setInterval(() => void this.publishStats(every), every * 1000).unref();
  }

  /** Runs on every (re)connection: topology, prefetch, channels and consumers afresh. */
  private async setup(conn: EngineConnection): Promise<void> {
    const ch = this.life.watch(await conn.createConfirmChannel(), 'channel');
    this.declared.clear();
    const partitions = this.partition?.queues ?? [];
    await declareEngineTopology(ch, this.names, {
      consume: this.home,
      targets: [...this.targets, ...partitions],
      bindExchange: this.o.consumeQueue ? undefined : this.o.config.exchange,
      dispatcher: dispatcherQueue(this.o.config.name),
    });
    for (const q of [this.home, ...this.targets, ...partitions]) this.declared.add(q);
    if (this.eventTask) await ch.prefetch(this.o.broker.prefetch);
    this.ch = ch;
    if (this.routes && !this.life.stopping) {
      const router = this.life.watch(await conn.createConfirmChannel(), 'router channel');
      await router.prefetch(this.o.broker.prefetch);
      this.router = router;
    }
    await this.syncConsumers();
    if (this.jobs && !this.life.stopping) await this.jobs.open(conn);
  }

  /** Whether this process reads the home queue and routes it to the partitions. */
  private get routes(): boolean {
    return !!this.partition && this.o.worker === 0;
  }

  /** Brings the consumers to what they should be now: consuming unless stopping or held by a fault. */
  private syncConsumers(): Promise<void> {
    this.consumerSync = this.consumerSync
      .then(async () => {
        const want = !this.life.stopping && !this.pause.paused;
        const ch = this.ch;
        const pipeline = this.pipeline;
        if (pipeline && ch && !this.life.isLost(ch)) await this.consumer.set(ch, want, (msg) => pipeline.enqueue(ch, msg));
        const router = this.router;
        const partition = this.partition;
        if (this.routes && partition && router && !this.life.isLost(router))
          await this.routerConsumer.set(router, want, (msg: ConsumeMessage) => partition.route(router, msg));
      })
      .catch((e: Error) => this.o.logger.warn({ err: e.message }, 'cannot start or cancel a consumer; the next reconnect sets it right'));
    return this.consumerSync;
  }

  /** The open event channel, or BrokerUnavailable (a task calling this is retried). */
  private channel(): EventChannel {
    const ch = this.ch;
    if (!ch || this.life.isLost(ch)) throw new BrokerUnavailable('not connected to the broker');
    return ch;
  }

  /** Publishes raw to an exchange with a confirm (for the message dispatcher). */
  publishRaw(exchange: string, routingKey: string, body: Buffer): Promise<void> {
    return this.publishOrUnavailable(exchange, routingKey, body);
  }

  /** Sends a job to Dispatcher_<name>; a broker fault throws BrokerUnavailable (a task calling it is retried). */
  dispatch(job: unknown): Promise<void> {
    return this.publishOrUnavailable('', dispatcherQueue(this.o.config.name), Buffer.from(JSON.stringify(job ?? null)));
  }

  /** Publishes an event of a beat or a job to the next queues (or those of the engines named), each confirmed. */
  async emit(event: Event, engines?: string[]): Promise<void> {
    const body = Buffer.from(JSON.stringify(event));
    for (const queue of engines ? engines.map(engineQueue) : this.targets) await this.publishOrUnavailable('', queue, body);
  }

  /** One confirmed publish for a task; the broker's refusal becomes BrokerUnavailable, so the task is retried. */
  private async publishOrUnavailable(exchange: string, key: string, body: Buffer): Promise<void> {
    await this.publisher.publish(this.channel(), exchange, key, body).catch((e: Error) => {
      throw new BrokerUnavailable(`the broker refused a publish to ${exchange || key}: ${e.message}`, { cause: e });
    });
  }

  /** A perf event about this process, as Canopsis engines publish: rate, time per event, queue depth. */
  private async publishStats(everySeconds: number): Promise<void> {
    const ch = this.ch;
    if (!ch || this.life.stopping) return;
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
    await this.publisher
      .publish(ch, this.names.eventsExchange, routingKey(event), Buffer.from(JSON.stringify(event)))
      .catch(() => undefined);
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
      this.life.stopping = true;
      // No beat starts from now on; the one running, if any, is waited for with the events in flight.
      const beatsStopped = this.beats?.stop();
      clearInterval(this.statsTimer);
      // A retry in its backoff ends now; what it held stays unacked for the broker to redeliver.
      this.life.wake();
      const ch = this.ch;
      await this.syncConsumers();
      await this.jobs?.cancel();
      const drained = (async () => {
        await this.pipeline?.idle();
        await beatsStopped;
        await this.inFlight.drained();
      })();
      const bound = this.o.stopTimeoutMs ?? 20_000;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        drained.then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), bound))),
      ]);
      clearTimeout(timer);
      if (timedOut)
        this.o.logger.warn({ pending: this.inFlight.size }, `events still in flight after ${bound} ms; the broker will redeliver them`);
      const router = this.router;
      await this.link.close(async () => {
        await router?.close().catch(() => undefined);
        await ch?.close().catch(() => undefined);
        await this.jobs?.close();
      });
      await this.dispatcherSet?.close();
      if (this.o.closesStore !== false) await this.storeOpened?.then((s) => s.close()).catch(() => undefined);
      this.o.logger.info({ ...this.stats }, 'engine stopped');
    })();
    return this.stopped;
  }
}
