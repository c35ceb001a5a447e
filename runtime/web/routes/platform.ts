import type { FastifyInstance } from 'fastify';
import { METRICS, type MetricSample } from '../../engines/perfdata.js';
import type { Store } from '../../store/types.js';
import type { QueueStat } from '../server.js';

/*
 * The platform as the console shows it (the appliance's own routes; Canopsis
 * has no equivalent): the broker, the store and each engine's queue
 * (depth, consumers, dead letters), the engines' events per second over
 * the last hour (their self-stats perf events, stored by perfdata), and the
 * dead letters with their reasons, which an admin can replay.
 */

export interface DeadLetterView {
  index: number;
  reason: string;
  deadAt: string;
  event: unknown;
}

export interface DeadLetterAccess {
  list: (engine: string, limit: number) => Promise<DeadLetterView[]>;
  /** Replays the letters whose reason is `reason` (all when absent). */
  replay: (engine: string, reason: string | undefined) => Promise<{ replayed: number; kept: number }>;
}

/** One process as supervisord reports it (what hypcontrol status reads). */
export interface ProcessState {
  name: string;
  state: string;
  description: string;
}

export interface PlatformDeps {
  /** supervisord's processes, or undefined when supervisord does not run this platform (systemd). */
  processes?: () => Promise<ProcessState[] | undefined>;
  store: Store;
  engines: string[];
  brokerReady: () => Promise<boolean>;
  queueStats: () => Promise<QueueStat[]>;
  deadLetters?: DeadLetterAccess;
  version: string;
}

/** Whether the broker link is up and the store answers: the healthcheck's answer and the platform page's. */
export async function reachable(d: { brokerReady: () => Promise<boolean>; store: Store }): Promise<{ broker: boolean; store: boolean }> {
  const [broker, store] = await Promise.all([
    d.brokerReady().catch(() => false),
    d.store.ping().then(
      () => true,
      () => false,
    ),
  ]);
  return { broker, store };
}

/** `Engine_axe.0` (a partition queue) or `Engine_axe`: the engine's name. */
const engineOf = (resource: string | undefined) => (resource ?? '').replace(/^Engine_/, '').replace(/\.\d+$/, '');

export function platformRoutes(app: FastifyInstance, d: PlatformDeps): void {
  app.get('/api/v4/platform', async () => {
    const [processes, { broker, store }, stats] = await Promise.all([
      d.processes ? d.processes().catch(() => undefined) : undefined,
      reachable(d),
      d.queueStats().catch(() => [] as QueueStat[]),
    ]);
    const byEngine = new Map(stats.map((s) => [s.engine, s]));
    return {
      version: d.version,
      processes: processes ?? null,
      services: [
        { service: 'broker', running: broker, detail: broker ? 'connected' : 'not connected' },
        { service: 'store', running: store, detail: store ? 'answers' : 'does not answer' },
        { service: 'webserver', running: true, detail: 'answering this request' },
        ...d.engines.map((engine) => {
          const s = byEngine.get(engine);
          const consumers = s?.consumers ?? 0;
          return {
            service: `engine-${engine}`,
            running: consumers > 0,
            detail: s ? `${consumers} consumer${consumers === 1 ? '' : 's'}` : 'queue not readable',
          };
        }),
      ],
      queues: d.engines.map((engine) => {
        const s = byEngine.get(engine);
        return {
          engine,
          queue: s?.queue ?? `Engine_${engine}`,
          messages: s?.messages ?? null,
          consumers: s?.consumers ?? null,
          dead: s?.dead ?? null,
        };
      }),
    };
  });

  // Events per second per engine, per minute of the last hour: the sum over the engine's processes.
  app.get('/api/v4/platform/rates', async () => {
    const now = Math.floor(Date.now() / 1000);
    const from = now - 3600;
    const samples = await d.store
      .collection<MetricSample>(METRICS)
      .find({ metric: 'cps_evt_per_sec', timestamp: { $gte: from } }, { sort: [['timestamp', 1]] });
    // A process may report twice in a minute (a shorter --stats-interval, a drifting timer): its samples of a
    // minute are averaged, then the processes of an engine added up.
    const perProcess = new Map<string, { engine: string; minute: number; sum: number; n: number }>();
    for (const s of samples) {
      const engine = engineOf(s.resource);
      if (!d.engines.includes(engine)) continue;
      const minute = Math.floor(s.timestamp / 60) * 60;
      const k = `${s.entity}|${minute}`;
      const cur = perProcess.get(k) ?? { engine, minute, sum: 0, n: 0 };
      cur.sum += s.value;
      cur.n += 1;
      perProcess.set(k, cur);
    }
    // Samples come oldest first, so each engine's minutes are set in order.
    const series = new Map<string, Map<number, number>>();
    for (const p of perProcess.values()) {
      const points = series.get(p.engine) ?? new Map<number, number>();
      points.set(p.minute, (points.get(p.minute) ?? 0) + p.sum / p.n);
      series.set(p.engine, points);
    }
    return {
      from,
      to: now,
      engines: Object.fromEntries(
        [...series].map(([engine, points]) => [engine, [...points].map(([t, v]) => [t, Math.round(v * 100) / 100])]),
      ),
    };
  });

  app.get('/api/v4/platform/dead-letters/:engine', async (req, reply) => {
    const { engine } = req.params as { engine: string };
    if (!d.engines.includes(engine)) return reply.status(404).send({ error: `no engine ${engine} in the chain` });
    if (!d.deadLetters) return reply.status(503).send({ error: 'the broker is not connected' });
    const limit = Math.min(Number((req.query as { limit?: string }).limit ?? 100) || 100, 1000);
    return { engine, data: await d.deadLetters.list(engine, limit) };
  });

  app.post('/api/v4/platform/dead-letters/:engine/replay', async (req, reply) => {
    const { engine } = req.params as { engine: string };
    if (!d.engines.includes(engine)) return reply.status(404).send({ error: `no engine ${engine} in the chain` });
    if (!d.deadLetters) return reply.status(503).send({ error: 'the broker is not connected' });
    const b = (req.body ?? {}) as { reason?: unknown };
    if (b.reason !== undefined && typeof b.reason !== 'string')
      return reply.status(400).send({ errors: { reason: 'Reason must be a string.' } });
    return { engine, ...(await d.deadLetters.replay(engine, b.reason)) };
  });
}
