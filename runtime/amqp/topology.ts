import type { Channel, ChannelModel } from 'amqplib';

/** What declaring needs of a channel (amqplib's, or the tests' in-memory broker's). */
export type Declarer = Pick<Channel, 'assertQueue' | 'assertExchange' | 'bindQueue'>;

/*
 * Names and declarations of the broker objects an engine uses. Declaring is
 * idempotent, so every process re-applies its part after each (re)connect.
 */

// The names are the contract's (the installer renders them too).
import { deadQueue } from '../contract/names.js';

export { deadQueue, dispatcherQueue, engineQueue, partitionQueue } from '../contract/names.js';

/** A stable partition of a key (FNV-1a): the same entity always lands on the same process. */
export function partitionOf(key: string, count: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % count;
}

/**
 * Messages and consumers of a queue, zero for a queue that does not exist.
 * checkQueue on a missing queue closes its channel: one short-lived channel per look.
 */
export async function queueCounts(conn: ChannelModel, queue: string): Promise<{ messages: number; consumers: number }> {
  const ch = await conn.createChannel();
  ch.on('error', () => undefined);
  try {
    const q = await ch.checkQueue(queue);
    return { messages: q.messageCount, consumers: q.consumerCount };
  } catch {
    return { messages: 0, consumers: 0 };
  } finally {
    await ch.close().catch(() => undefined);
  }
}

export interface TopologyNames {
  eventsExchange: string;
  deadExchange: string;
  /** quorum on a cluster of three nodes or more: every queue is replicated (amqp.conf queue_type). */
  queueType?: 'classic' | 'quorum';
}

/**
 * A durable queue of ours, as a quorum queue on a cluster: a declaration
 * must repeat the type the queue was made with, or the broker refuses it.
 */
export const durableQueue = (queueType: TopologyNames['queueType'], args: Record<string, string> = {}) => ({
  durable: true,
  ...(queueType === 'quorum' || Object.keys(args).length
    ? { arguments: { ...args, ...(queueType === 'quorum' ? { 'x-queue-type': 'quorum' } : {}) } }
    : {}),
});

/** Arguments of an engine queue: what the broker itself rejects goes to its dead-letter queue. */
export const engineQueueArgs = (names: TopologyNames, queue: string) =>
  durableQueue(names.queueType, { 'x-dead-letter-exchange': names.deadExchange, 'x-dead-letter-routing-key': deadQueue(queue) });

export async function declareExchanges(ch: Declarer, names: TopologyNames): Promise<void> {
  await ch.assertExchange(names.eventsExchange, 'topic', { durable: true });
  await ch.assertExchange(names.deadExchange, 'direct', { durable: true });
}

export async function declareEngineQueue(ch: Declarer, names: TopologyNames, queue: string): Promise<void> {
  await ch.assertQueue(queue, engineQueueArgs(names, queue));
  await ch.assertQueue(deadQueue(queue), durableQueue(names.queueType));
  await ch.bindQueue(deadQueue(queue), names.deadExchange, deadQueue(queue));
}

export interface EngineTopology {
  /** The queue this process consumes. */
  consume: string;
  /** Queues it publishes to (declared so that nothing published is unroutable). */
  targets: string[];
  /** An exchange whose every message this queue takes (canopsis.events for the chain's entry, canopsis.collectd for the collectd gateway). */
  bindExchange?: string;
  dispatcher: string;
}

export async function declareEngineTopology(ch: Declarer, names: TopologyNames, t: EngineTopology): Promise<void> {
  await declareExchanges(ch, names);
  for (const q of new Set([t.consume, ...t.targets])) await declareEngineQueue(ch, names, q);
  // Events arrive with routing keys built from their fields, or none at all (Go-era API): take them all.
  if (t.bindExchange) {
    if (t.bindExchange !== names.eventsExchange) await ch.assertExchange(t.bindExchange, 'topic', { durable: true });
    await ch.bindQueue(t.consume, t.bindExchange, '#');
  }
  await ch.assertQueue(t.dispatcher, durableQueue(names.queueType));
}
