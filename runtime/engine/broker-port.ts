import type { Channel, ConfirmChannel } from 'amqplib';
import { BrokerConnection } from '../amqp/connection.js';
import type { BrokerConfig } from '../config/files.js';
import type { Logger } from '../log.js';

/*
 * What an engine sees of the broker, and nothing more: a link that
 * (re)connects and hands each new connection to the engine's setup, and
 * the few channel operations the engine's rules use. amqplib's channels
 * satisfy it as they are; the tests' in-memory broker
 * (test/helpers/memory-broker.ts) does too, so the ack, confirm, retry and
 * dead-letter rules run in-process.
 */

/** A confirm channel: events are consumed and published on it. */
export type EventChannel = Pick<
  ConfirmChannel,
  | 'assertQueue'
  | 'assertExchange'
  | 'bindQueue'
  | 'checkQueue'
  | 'prefetch'
  | 'consume'
  | 'cancel'
  | 'ack'
  | 'nack'
  | 'publish'
  | 'close'
  | 'on'
  | 'once'
  | 'removeListener'
>;

/** A plain channel: Dispatcher_<name> jobs are consumed on it, one at a time. */
export type JobChannel = Pick<Channel, 'prefetch' | 'consume' | 'cancel' | 'ack' | 'close' | 'on'>;

export interface EngineConnection {
  createConfirmChannel(): Promise<EventChannel>;
  createChannel(): Promise<JobChannel>;
}

export interface BrokerLink {
  readonly connected: boolean;
  /** Resolves once the first setup went through; reconnects and sets up again after a loss. */
  start(): Promise<void>;
  /** Drops the current connection: the link connects again (the next node first) and sets up afresh. */
  reconnect?(why: string): void;
  /** For good; `beforeClose` runs while the connection is still open (channels close there). */
  close(beforeClose?: () => Promise<void>): Promise<void>;
}

export type OpenLink = (setup: (conn: EngineConnection) => Promise<void>) => BrokerLink;

/** The real one: amqplib through the process's one BrokerConnection. */
export const amqpLink =
  (broker: BrokerConfig, logger: Logger): OpenLink =>
  (setup) =>
    new BrokerConnection({ urls: broker.urls, wheres: broker.wheres, logger, setup });
