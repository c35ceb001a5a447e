import { engineQueue, partitionQueue } from '../contract/names.js';
import type { Event } from '../tasks/types.js';

/*
 * The perf event an engine publishes about itself, as Canopsis engines do:
 * events per second, seconds per event and its queue's depth since the
 * previous one. Pure: the engine passes its counters and the clock.
 */

export interface StatsSample {
  /** performance.now() when taken. */
  at: number;
  processed: number;
  busyMs: number;
}

export interface StatsSubject {
  engine: string;
  worker: number;
  host: string;
}

export function statsEvent(
  subject: StatsSubject,
  prev: StatsSample,
  now: StatsSample,
  queueDepth: number,
  everySeconds: number,
  nowMs = Date.now(),
): Event {
  const n = now.processed - prev.processed;
  const busy = now.busyMs - prev.busyMs;
  const seconds = (now.at - prev.at) / 1000 || everySeconds;
  return {
    connector: 'Engine',
    connector_name: 'engine',
    event_type: 'perf',
    source_type: 'resource',
    component: subject.host,
    resource: partitionQueue(engineQueue(subject.engine), subject.worker),
    timestamp: Math.floor(nowMs / 1000),
    perf_data_array: [
      { metric: 'cps_evt_per_sec', value: n / seconds, unit: 'evt', type: 'GAUGE' },
      { metric: 'cps_sec_per_evt', value: n ? busy / 1000 / n : 0, unit: 's', type: 'GAUGE' },
      { metric: 'cps_queue_size', value: queueDepth, unit: 'evt', type: 'GAUGE' },
    ],
  };
}
