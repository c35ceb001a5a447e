import { EventEmitter } from 'node:events';
import type { ConsumeMessage, Options } from 'amqplib';
import type { BrokerLink, EngineConnection, EventChannel, OpenLink } from '../../runtime/engine/broker-port.js';

/*
 * A FAKE broker, in memory, for the engine's own rules run in-process
 * (test/runtime/engine-rules.test.ts): queues, a default, direct and topic
 * ('#' or exact) exchanges, prefetch, ack/nack, dead-lettering by queue
 * arguments, publisher confirms that the test can hold back or refuse, and a
 * dropped connection that requeues what was unacked. It is not RabbitMQ:
 * what only the real broker can show (redelivery after kill -9, real
 * confirms under load, reconnecting to a restarted node) is tested against
 * it in test/runtime/*.test.ts and test/e2e/.
 */

export interface Stored {
  body: Buffer;
  headers: Record<string, unknown>;
  exchange: string;
  routingKey: string;
  redelivered: boolean;
}

interface Queue {
  name: string;
  ready: Stored[];
  args: Record<string, unknown>;
  consumers: Array<{ ch: MemoryChannel; tag: string; cb: (msg: ConsumeMessage | null) => void }>;
  next: number;
}

interface Unacked {
  queue: Queue;
  stored: Stored;
}

export class MemoryBroker {
  readonly queues = new Map<string, Queue>();
  private readonly exchanges = new Map<string, { type: string; bindings: Array<{ queue: string; pattern: string }> }>();
  private readonly channels = new Set<MemoryChannel>();
  private readonly refusals = new Map<string, number>();
  private held: Array<() => void> | undefined;
  private tags = 0;
  private links: MemoryLink[] = [];

  /** A link per engine, as amqpLink gives one per process. */
  link: OpenLink = (setup) => {
    const l = new MemoryLink(this, setup);
    this.links.push(l);
    return l;
  };

  /** The next `times` publishes routed to `queue` are refused (nacked) by the broker. */
  refuse(queue: string, times: number): void {
    this.refusals.set(queue, times);
  }

  /** Confirms wait until releaseConfirms(). */
  holdConfirms(): void {
    this.held ??= [];
  }

  releaseConfirms(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const confirm of held) confirm();
  }

  /** Messages ready in a queue (not delivered yet), oldest first. */
  ready(queue: string): Stored[] {
    return [...(this.queues.get(queue)?.ready ?? [])];
  }

  /** Delivered and not acked yet, over every channel. */
  unacked(queue: string): number {
    let n = 0;
    for (const ch of this.channels) for (const u of ch.unacked.values()) if (u.queue.name === queue) n++;
    return n;
  }

  consumers(queue: string): number {
    return this.queues.get(queue)?.consumers.length ?? 0;
  }

  /** The connection drops: every channel closes, its unacked messages go back to their queues, the links reconnect. */
  dropConnections(): void {
    for (const ch of [...this.channels]) ch.lose();
    for (const l of this.links) l.reconnect();
  }

  publishTo(queue: string, body: string | Buffer, headers: Record<string, unknown> = {}): void {
    this.route('', queue, Buffer.from(body), headers);
  }

  // --- used by channels ---

  register(ch: MemoryChannel): void {
    this.channels.add(ch);
  }

  unregister(ch: MemoryChannel): void {
    this.channels.delete(ch);
    for (const q of this.queues.values()) q.consumers = q.consumers.filter((c) => c.ch !== ch);
  }

  newTag(): string {
    return `ctag-${++this.tags}`;
  }

  assertQueue(name: string, args: Record<string, unknown> = {}): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = { name, ready: [], args, consumers: [], next: 0 };
      this.queues.set(name, q);
    }
    return q;
  }

  assertExchange(name: string, type: string): void {
    if (!this.exchanges.has(name)) this.exchanges.set(name, { type, bindings: [] });
  }

  bind(queue: string, exchange: string, pattern: string): void {
    const ex = this.exchanges.get(exchange);
    if (!ex) throw new Error(`no exchange ${exchange}`);
    if (!ex.bindings.some((b) => b.queue === queue && b.pattern === pattern)) ex.bindings.push({ queue, pattern });
  }

  /** Routes a message to the queues bound; the error the broker refuses it with, if it does (refuse()). */
  route(exchange: string, key: string, body: Buffer, headers: Record<string, unknown>): Error | undefined {
    const targets =
      exchange === ''
        ? [key]
        : (this.exchanges.get(exchange)?.bindings ?? []).filter((b) => b.pattern === '#' || b.pattern === key).map((b) => b.queue);
    for (const t of targets) {
      const left = this.refusals.get(t) ?? 0;
      if (left > 0) {
        this.refusals.set(t, left - 1);
        return new Error(`refused by the fake broker (${t})`);
      }
    }
    for (const t of targets) {
      const q = this.queues.get(t);
      if (!q) continue;
      q.ready.push({ body, headers, exchange, routingKey: key, redelivered: false });
      this.deliver(q);
    }
    return undefined;
  }

  confirm(done: () => void): void {
    if (this.held) this.held.push(done);
    else setImmediate(done);
  }

  /** Gives ready messages to consumers with room under their channel's prefetch, round robin. */
  deliver(q: Queue): void {
    setImmediate(() => {
      while (q.ready.length && q.consumers.length) {
        const n = q.consumers.length;
        let given = false;
        for (let i = 0; i < n && q.ready.length; i++) {
          const c = q.consumers[(q.next + i) % n]!;
          if (!c.ch.hasRoom()) continue;
          q.next = (q.next + i + 1) % n;
          c.ch.give(q, c.tag, q.ready.shift()!, c.cb);
          given = true;
          break;
        }
        if (!given) return;
      }
    });
  }

  /** A message nacked without requeue: to the queue's dead-letter exchange and key, as RabbitMQ does. */
  deadLetter(q: Queue, s: Stored): void {
    const ex = q.args['x-dead-letter-exchange'] as string | undefined;
    if (ex === undefined) return;
    const key = (q.args['x-dead-letter-routing-key'] as string | undefined) ?? s.routingKey;
    this.route(ex, key, s.body, { ...s.headers, 'x-death': [{ queue: q.name, reason: 'rejected' }] });
  }
}

class MemoryChannel extends EventEmitter {
  readonly unacked = new Map<number, Unacked>();
  /** Publishes waiting for their confirm: a closing channel fails them, as amqplib does. */
  private readonly awaiting = new Set<(err: unknown) => void>();
  private limit = 0;
  private deliveries = 0;
  private closed = false;

  constructor(private readonly broker: MemoryBroker) {
    super();
    broker.register(this);
  }

  private check(): void {
    if (this.closed) throw new Error('Channel closed');
  }

  hasRoom(): boolean {
    return !this.closed && (this.limit === 0 || this.unacked.size < this.limit);
  }

  give(q: Queue, tag: string, stored: Stored, cb: (msg: ConsumeMessage | null) => void): void {
    const deliveryTag = ++this.deliveries;
    this.unacked.set(deliveryTag, { queue: q, stored });
    cb({
      content: stored.body,
      fields: { deliveryTag, redelivered: stored.redelivered, exchange: stored.exchange, routingKey: stored.routingKey, consumerTag: tag },
      properties: { headers: stored.headers } as ConsumeMessage['properties'],
    });
  }

  async assertQueue(queue: string, options?: Options.AssertQueue) {
    this.check();
    this.broker.assertQueue(queue, options?.arguments ?? {});
    return { queue, messageCount: 0, consumerCount: 0 };
  }

  async assertExchange(exchange: string, type: string) {
    this.check();
    this.broker.assertExchange(exchange, type);
    return { exchange };
  }

  async bindQueue(queue: string, source: string, pattern: string) {
    this.check();
    this.broker.bind(queue, source, pattern);
    return {};
  }

  async checkQueue(queue: string) {
    this.check();
    const q = this.broker.queues.get(queue);
    if (!q) throw new Error(`NOT_FOUND - no queue '${queue}'`);
    return { queue, messageCount: q.ready.length, consumerCount: q.consumers.length };
  }

  async prefetch(count: number) {
    this.check();
    this.limit = count;
    return {};
  }

  async consume(queue: string, cb: (msg: ConsumeMessage | null) => void) {
    this.check();
    const q = this.broker.queues.get(queue);
    if (!q) throw new Error(`NOT_FOUND - no queue '${queue}'`);
    const consumerTag = this.broker.newTag();
    q.consumers.push({ ch: this, tag: consumerTag, cb });
    this.broker.deliver(q);
    return { consumerTag };
  }

  async cancel(consumerTag: string) {
    this.check();
    for (const q of this.broker.queues.values()) q.consumers = q.consumers.filter((c) => c.tag !== consumerTag);
    return { consumerTag };
  }

  ack(msg: ConsumeMessage): void {
    this.check();
    const u = this.unacked.get(msg.fields.deliveryTag);
    if (!u) throw new Error(`PRECONDITION_FAILED - unknown delivery tag ${msg.fields.deliveryTag}`);
    this.unacked.delete(msg.fields.deliveryTag);
    this.redeliverAll();
  }

  nack(msg: ConsumeMessage, _allUpTo?: boolean, requeue = true): void {
    this.check();
    const u = this.unacked.get(msg.fields.deliveryTag);
    if (!u) throw new Error(`PRECONDITION_FAILED - unknown delivery tag ${msg.fields.deliveryTag}`);
    this.unacked.delete(msg.fields.deliveryTag);
    if (requeue) u.queue.ready.unshift({ ...u.stored, redelivered: true });
    else this.broker.deadLetter(u.queue, u.stored);
    this.redeliverAll();
  }

  publish(exchange: string, key: string, content: Buffer, options?: Options.Publish, cb?: (err: unknown, ok: unknown) => void): boolean {
    this.check();
    const refused = this.broker.route(exchange, key, content, (options?.headers as Record<string, unknown>) ?? {});
    const answer = (err: unknown) => {
      if (!this.awaiting.delete(answer)) return;
      cb?.(err, undefined);
    };
    this.awaiting.add(answer);
    this.broker.confirm(() => answer(refused ?? null));
    return true;
  }

  async close(): Promise<void> {
    this.lose();
  }

  /** Closed (by the test or the broker): unacked messages go back to the front of their queues, flagged redelivered. */
  lose(): void {
    if (this.closed) return;
    this.closed = true;
    this.broker.unregister(this);
    const back = [...this.unacked.values()].reverse();
    this.unacked.clear();
    for (const u of back) u.queue.ready.unshift({ ...u.stored, redelivered: true });
    for (const u of back) this.broker.deliver(u.queue);
    for (const answer of [...this.awaiting]) answer(new Error('channel closed'));
    this.emit('close');
  }

  private redeliverAll(): void {
    for (const q of this.broker.queues.values()) if (q.ready.length) this.broker.deliver(q);
  }
}

class MemoryLink implements BrokerLink {
  connected = false;
  private closing = false;
  private first: Promise<void> | undefined;

  constructor(
    private readonly broker: MemoryBroker,
    private readonly setup: (conn: EngineConnection) => Promise<void>,
  ) {}

  private opened: MemoryChannel[] = [];

  private connection(): EngineConnection {
    const open = () => {
      const ch = new MemoryChannel(this.broker);
      this.opened.push(ch);
      return ch as unknown as EventChannel;
    };
    return { createConfirmChannel: async () => open(), createChannel: async () => open() };
  }

  start(): Promise<void> {
    this.first ??= this.connect();
    return this.first;
  }

  private async connect(): Promise<void> {
    await this.setup(this.connection());
    this.connected = true;
  }

  /** The connection dropped (by the broker, or by the engine): its channels close, their unacked messages go back. */
  reconnect(): void {
    if (this.closing || !this.connected) return;
    for (const ch of this.opened.splice(0)) ch.lose();
    this.connected = false;
    setImmediate(() => void this.connect());
  }

  async close(beforeClose?: () => Promise<void>): Promise<void> {
    this.closing = true;
    await beforeClose?.().catch(() => undefined);
    this.connected = false;
  }
}
