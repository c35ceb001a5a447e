import { entityId } from '../event/canopsis-event.js';
import { fromPerfDataArray, type Metric, type MetricType, parsePerfData, type Skipped } from '../perfdata/parse.js';
import type { Collection } from '../store/types.js';
import { once } from '../tasks/state.js';
import type { EngineHandle, Event, TaskModule } from '../tasks/types.js';

/*
 * perfdata: the metrics an event carries (perf_data, the Nagios string, and
 * perf_data_array, shared/notes/canopsis-events.md), any event_type, are
 * stored one sample per document in `metrics`, under
 * `<entity>|<metric>|<timestamp>` (a redelivered event rewrites the same
 * documents: no duplicates); `metrics_latest` holds the newest sample per
 * `<entity>|<metric>`. Items that cannot be read are skipped and reported
 * (perfdata_skipped), the others are kept. The event passes on unchanged.
 * On beat, samples older than [perfdata] retention seconds are deleted, and
 * so are latest documents older than that (a metric no longer reported);
 * a retention of 0 keeps everything.
 */

export const METRICS = 'metrics';
export const METRICS_LATEST = 'metrics_latest';

export interface MetricSample {
  /** entityId: resource/component, or component. */
  entity: string;
  component: string;
  resource?: string;
  metric: string;
  value: number;
  type: MetricType;
  unit?: string;
  warn?: number;
  crit?: number;
  min?: number;
  max?: number;
  /** Unix seconds (the event's). */
  timestamp: number;
}

interface Collections {
  samples: Collection<MetricSample>;
  latest: Collection<MetricSample>;
}

const collections = (engine: EngineHandle): Promise<Collections> =>
  once(engine, 'perfdata', async () => {
    const store = await engine.store();
    const c = { samples: store.collection<MetricSample>(METRICS), latest: store.collection<MetricSample>(METRICS_LATEST) };
    for (const f of [['entity', 'timestamp'], ['entity', 'metric', 'timestamp'], ['timestamp']]) await c.samples.ensureIndex(f);
    for (const f of [['entity'], ['timestamp']]) await c.latest.ensureIndex(f);
    return c;
  });

export const sampleKey = (entity: string, metric: string, timestamp: number) => `${entity}|${metric}|${timestamp}`;
export const latestKey = (entity: string, metric: string) => `${entity}|${metric}`;

/** The metrics of an event, perf_data first then perf_data_array (a name in both: the array's wins). */
export function eventMetrics(event: Event): { metrics: Metric[]; skipped: Skipped[] } {
  const a =
    event.perf_data === undefined || event.perf_data === null || event.perf_data === ''
      ? { metrics: [], skipped: [] }
      : parsePerfData(event.perf_data as string);
  const b = fromPerfDataArray(event.perf_data_array);
  return { metrics: [...a.metrics, ...b.metrics], skipped: [...a.skipped, ...b.skipped] };
}

const isText = (v: unknown): v is string => typeof v === 'string' && v !== '';
/** Reported skipped items per event, at most. */
const MAX_REPORTED = 20;

export const perfdata: TaskModule = {
  name: 'canopsis.perfdata.process',
  event_processing: async (engine, event: Event) => {
    const hasData =
      (event.perf_data !== undefined && event.perf_data !== null && event.perf_data !== '') ||
      (event.perf_data_array !== undefined && event.perf_data_array !== null);
    if (!hasData) return event;
    const { metrics, skipped } = eventMetrics(event);
    const resource = event.source_type === 'resource' && isText(event.resource) ? event.resource : undefined;
    const component = isText(event.component) ? event.component : undefined;
    if (!component) {
      await engine.report('warning', 'perfdata_skipped', {
        reason: 'event without a component: its metrics are not stored',
        extra: { metrics: metrics.length },
      });
      return event;
    }
    const entity = entityId(event);
    if (skipped.length) {
      await engine.report('warning', 'perfdata_skipped', {
        timestamp: Number(event.timestamp) || Math.floor(Date.now() / 1000),
        reason: skipped.length === 1 ? skipped[0]!.reason : `${skipped.length} items skipped (first: ${skipped[0]!.reason})`,
        extra: { entity, skipped: skipped.slice(0, MAX_REPORTED), kept: metrics.length },
      });
    }
    if (!metrics.length) return event;
    const ts =
      typeof event.timestamp === 'number' && Number.isFinite(event.timestamp) ? Math.floor(event.timestamp) : Math.floor(Date.now() / 1000);
    const c = await collections(engine);
    for (const m of metrics) {
      const doc: MetricSample = { entity, component, metric: m.name, value: m.value, type: m.type ?? 'GAUGE', timestamp: ts };
      if (resource !== undefined) doc.resource = resource;
      for (const k of ['unit', 'warn', 'crit', 'min', 'max'] as const)
        if (m[k] !== undefined) (doc as unknown as Record<string, unknown>)[k] = m[k];
      await c.samples.put(sampleKey(entity, m.name, ts), doc);
      // Out-of-order samples (a late event, a replayed dead letter) never move latest back.
      await c.latest.modify(latestKey(entity, m.name), (cur) => (cur && cur.timestamp > ts ? undefined : doc));
    }
    return event;
  },
  beat_processing: async (engine) => {
    const retention = engine.runtime.perfdataRetention;
    if (!(retention > 0)) return;
    const c = await collections(engine);
    const before = Math.floor(Date.now() / 1000) - retention;
    const samples = await c.samples.delete({ timestamp: { $lt: before } });
    const latest = await c.latest.delete({ timestamp: { $lt: before } });
    if (samples || latest) await engine.report('debug', 'perfdata_expired', { extra: { samples, latest, before } });
  },
};
