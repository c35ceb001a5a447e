/*
 * The names both sides of the appliance use on the broker: the installer
 * declares them (definitions.json, amqp.conf, the che drop-in's
 * -publishQueue) and the runtime consumes and publishes with them.
 */

export const EXCHANGES = {
  /** Where sources publish events (topic). */
  events: 'canopsis.events',
  /** Where engines dead-letter what they refuse (direct). */
  dead: 'canopsis.dead',
  /** Where collectd's amqp plugin publishes host metrics (topic). */
  collectd: 'canopsis.collectd',
  /** Where the message dispatcher publishes alarm changes (topic). */
  alerts: 'canopsis.alerts',
} as const;

export const DEFAULT_VHOST = 'canopsis';

export const engineQueue = (name: string) => `Engine_${name}`;
export const dispatcherQueue = (name: string) => `Dispatcher_${name}`;
export const deadQueue = (queue: string) => `${queue}.dead`;
export const partitionQueue = (queue: string, n: number) => `${queue}.${n}`;
