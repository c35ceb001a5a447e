import { partitionOf } from '../amqp/topology.js';
import { parseEventBody } from '../event/canopsis-event.js';
import type { Event } from '../tasks/types.js';

/*
 * Which partition an incoming message goes to when an engine runs ordered
 * by key with numprocs > 1: the events of one key always land in the same
 * partition, so one process sees them in arrival order. What cannot be read
 * or has no key goes to partition 0, whose worker dead-letters it with the
 * reason.
 */

export function partitionFor(body: Buffer, key: (e: Event) => string, count: number): number {
  const parsed = parseEventBody(body);
  if (!parsed.ok || parsed.value === null || typeof parsed.value !== 'object') return 0;
  try {
    return partitionOf(key(parsed.value as Event), count);
  } catch {
    return 0;
  }
}
