import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Alarm } from '../alarm/model.js';
import { ALARMS } from '../engines/axe.js';
import { ENTITIES, type Entity } from '../engines/che.js';
import { checkEvent, MAX_EVENT_DEPTH, nestedDeeperThan } from '../event/canopsis-event.js';
import type { Filter, Store } from '../store/types.js';
import type { Event } from '../tasks/types.js';
import { alarmsQuery, BadQuery, repeatedParameter } from './alarms-query.js';
import { authenticate, type Credentials, type Principal, presented } from './auth.js';

/*
 * The REST API, after Canopsis v4's routes so that its clients work.
 * Authentication is the application's: the API key (header
 * x-canopsis-authkey or ?authkey=), read-only keys, users over HTTP basic.
 * Every answer is JSON; errors never carry a stack trace. Failed logins are
 * counted per client address: past the limit the address gets 429 for the
 * rest of the window, and no password is checked for it meanwhile.
 */

export interface QueueStat {
  engine: string;
  queue: string;
  messages: number;
  consumers: number;
  dead: number;
}

export interface ServerDeps {
  store: Store;
  credentials: Credentials;
  /** Publishes one event to canopsis.events with a confirm. */
  publish: (event: Event) => Promise<void>;
  brokerReady: () => Promise<boolean>;
  queueStats: () => Promise<QueueStat[]>;
  bodyLimit?: number;
  logger?: boolean | object;
  /** PEM certificate (chain) and key: HTTPS. Absent: plain HTTP. */
  https?: { cert: string | Buffer; key: string | Buffer };
  /** Failed logins allowed per client address and window before 429 (default 10 per minute). */
  authFailures?: { max: number; windowMs: number };
}

export const AUTH_FAILURES = { max: 10, windowMs: 60_000 };

const PUBLIC = new Set(['/api/v4/healthcheck']);
const ALARM_ACTIONS = ['ack', 'ackremove', 'cancel', 'uncancel', 'snooze', 'comment'] as const;

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

/** The label of a request in /metrics: its route pattern, never the URL a client typed (it may carry ?authkey=). */
const routeLabel = (req: FastifyRequest) => (req.is404 || !req.routeOptions.url ? 'unmatched' : req.routeOptions.url);

const pageMeta = (page: number, limit: number, total: number) => ({
  page,
  page_count: Math.max(1, Math.ceil(total / limit)),
  per_page: limit,
  total_count: total,
});

export async function buildServer(d: ServerDeps): Promise<FastifyInstance> {
  const options = { bodyLimit: d.bodyLimit ?? 1024 * 1024, logger: d.logger ?? false, return503OnClosing: true };
  // Same instance either way; only the type of the underlying server differs.
  const app = (d.https ? Fastify({ ...options, https: d.https }) : Fastify(options)) as unknown as FastifyInstance;
  const counters = { requests: new Map<string, { method: string; route: string; n: number }>(), eventsSent: 0, eventsFailed: 0 };

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err: err.message }, 'request failed');
    const message =
      status === 413 ? `body larger than ${d.bodyLimit ?? 1024 * 1024} bytes` : status >= 500 ? 'internal error' : err.message;
    void reply.status(status).send({ error: message });
  });
  app.setNotFoundHandler((_req, reply) => void reply.status(404).send({ error: 'not found' }));

  // A body nested deeper than an event may be is refused before parsing: it could not be serialised to the
  // broker (JSON.stringify overflows its stack) and would end as a 500. Fastify's own parser does the rest.
  const json = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (nestedDeeperThan(Buffer.from(body as string), MAX_EVENT_DEPTH + 1)) {
      done(
        Object.assign(new Error(`body nested too deep: an event has at most ${MAX_EVENT_DEPTH} levels of arrays or objects`), {
          statusCode: 400,
        }),
        undefined,
      );
      return;
    }
    json(req, body as string, done);
  });

  // The plugin's store and window, driven by hand: only a failed login counts.
  const limits = d.authFailures ?? AUTH_FAILURES;
  await app.register(rateLimit, { global: false, max: limits.max, timeWindow: limits.windowMs });
  const failures = app.createRateLimit();
  const tooMany = (req: FastifyRequest, reply: FastifyReply, ttlSeconds: number) =>
    reply
      .status(429)
      .header('retry-after', String(Math.max(1, ttlSeconds)))
      .send({ error: `too many failed logins from ${req.ip}: retry in ${Math.max(1, ttlSeconds)} s` });

  app.addHook('onRequest', async (req, reply) => {
    const method = req.method;
    const route = routeLabel(req);
    const counted = counters.requests.get(`${method} ${route}`) ?? { method, route, n: 0 };
    counted.n += 1;
    counters.requests.set(`${method} ${route}`, counted);
    const repeated = repeatedParameter(req.query);
    if (repeated !== undefined) return reply.status(400).send({ error: `query parameter ${repeated} given more than once: give it once` });
    if (PUBLIC.has(route)) return;
    const key = (req.headers['x-canopsis-authkey'] as string | undefined) ?? (req.query as Record<string, string | undefined>)?.authkey;
    const kind = presented(key, req.headers.authorization);
    // A blocked address gets no password checked; an API key is still checked:
    // a random key cannot be guessed at any rate, and our own tools keep working.
    if (kind === 'basic') {
      const now = await failures(req, { increment: false });
      if (!now.isAllowed && now.isExceeded) return tooMany(req, reply, now.ttlInSeconds);
    }
    const principal = await authenticate(d.credentials, key, req.headers.authorization);
    if (!principal) {
      if (kind) {
        const after = await failures(req);
        if (!after.isAllowed && after.isExceeded) return tooMany(req, reply, after.ttlInSeconds);
      }
      return reply
        .status(401)
        .header('www-authenticate', 'Basic realm="canopsis"')
        .send({ error: 'authentication required: x-canopsis-authkey header, ?authkey= or HTTP basic' });
    }
    if (req.method !== 'GET' && req.method !== 'HEAD' && principal.role !== 'admin') {
      return reply.status(403).send({ error: `${principal.name} is read-only` });
    }
    req.principal = principal;
  });

  app.get('/api/v4/healthcheck', async (_req, reply) => {
    const [broker, store] = await Promise.all([
      d.brokerReady().catch(() => false),
      d.store.ping().then(
        () => true,
        () => false,
      ),
    ]);
    return reply.status(broker && store ? 200 : 503).send({ broker, store });
  });

  app.post('/api/v4/event', async (req: FastifyRequest, reply) => {
    const body = req.body as unknown;
    if (body === null || typeof body !== 'object')
      return reply.status(400).send({ error: 'expected an event object or an array of events' });
    const events = Array.isArray(body) ? body : [body];
    const sent: Event[] = [];
    const failed: Array<{ event: unknown; error: string }> = [];
    const retry: Array<{ event: unknown; error: string }> = [];
    for (const e of events) {
      const r = checkEvent(e);
      if (!r.ok) {
        failed.push({ event: e, error: r.reason });
        continue;
      }
      try {
        await d.publish(r.event);
        sent.push(r.event);
      } catch (err) {
        retry.push({ event: e, error: `not published: ${(err as Error).message}` });
      }
    }
    counters.eventsSent += sent.length;
    counters.eventsFailed += failed.length;
    return reply
      .status(failed.length && !sent.length && !retry.length ? 400 : 200)
      .send({ sent_events: sent, failed_events: failed, retry_events: retry });
  });

  app.get('/api/v4/alarms', async (req, reply) => {
    let q: ReturnType<typeof alarmsQuery>;
    try {
      q = alarmsQuery(req.query as Record<string, string | undefined>);
    } catch (e) {
      if (e instanceof BadQuery) return reply.status(400).send({ error: e.message });
      throw e;
    }
    const c = d.store.collection<Alarm>(ALARMS);
    const [data, total] = await Promise.all([c.find(q.filter, q.options), c.count(q.filter)]);
    return { data: data.map(({ steps: _s, ...a }) => ({ ...a, _id: a.id })), meta: pageMeta(q.page, q.limit, total) };
  });

  app.get('/api/v4/alarms/:id', async (req, reply) => {
    const { id } = req.params as { id: string };
    const a = await d.store.collection<Alarm>(ALARMS).get(id);
    if (!a) return reply.status(404).send({ error: `no alarm ${id}` });
    return { ...a, _id: a.id };
  });

  for (const action of ALARM_ACTIONS) {
    app.put(`/api/v4/alarms/:id/${action}`, async (req, reply) => {
      const { id } = req.params as { id: string };
      const a = await d.store.collection<Alarm>(ALARMS).get(id);
      if (!a) return reply.status(404).send({ error: `no alarm ${id}` });
      if (a.resolved !== null) return reply.status(409).send({ error: `alarm ${id} is resolved` });
      const body = (req.body ?? {}) as { comment?: string; duration?: number };
      // Through the pipeline, like any source: axe stays the only writer of alarms.
      const event: Event = {
        connector: a.connector,
        connector_name: a.connector_name,
        event_type: action,
        source_type: a.resource ? 'resource' : 'component',
        component: a.component,
        ...(a.resource ? { resource: a.resource } : {}),
        author: req.principal!.name,
        output: body.comment ?? '',
        timestamp: Math.floor(Date.now() / 1000),
        ...(action === 'snooze' ? { duration: body.duration } : {}),
      };
      const r = checkEvent(event);
      if (!r.ok) return reply.status(400).send({ error: r.reason });
      await d.publish(r.event);
      return reply.status(202).send({ accepted: true, event: r.event });
    });
  }

  app.get('/api/v4/entities', async (req, reply) => {
    const query = req.query as Record<string, string | undefined>;
    let page = 1;
    let limit = 10;
    try {
      const q = alarmsQuery({ page: query.page, limit: query.limit });
      page = q.page;
      limit = q.limit;
    } catch (e) {
      return reply.status(400).send({ error: (e as Error).message });
    }
    const filter: Filter = query.type ? { type: query.type } : {};
    const c = d.store.collection<Entity>(ENTITIES);
    const [data, total] = await Promise.all([c.find(filter, { sort: [['key', 1]], skip: (page - 1) * limit, limit }), c.count(filter)]);
    return { data: data.map((e) => ({ ...e, _id: e.key })), meta: pageMeta(page, limit, total) };
  });

  app.get('/metrics', async (_req, reply) => {
    const lines: string[] = [];
    const metric = (name: string, help: string, type: 'gauge' | 'counter', samples: Array<[Record<string, string>, number]>) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of samples) {
        const l = Object.entries(labels)
          .map(([k, x]) => `${k}="${x.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
          .join(',');
        lines.push(`${name}${l ? `{${l}}` : ''} ${v}`);
      }
    };
    const stats = await d.queueStats().catch(() => [] as QueueStat[]);
    metric(
      'canopsis_engine_queue_messages',
      'Events waiting in the engine queue',
      'gauge',
      stats.map((s) => [{ engine: s.engine }, s.messages]),
    );
    metric(
      'canopsis_engine_consumers',
      'Processes consuming the engine queue',
      'gauge',
      stats.map((s) => [{ engine: s.engine }, s.consumers]),
    );
    metric(
      'canopsis_engine_dead_letters',
      'Events in the engine dead-letter queue',
      'gauge',
      stats.map((s) => [{ engine: s.engine }, s.dead]),
    );
    metric(
      'canopsis_engine_ready',
      'Whether at least one process consumes the engine queue (1) or none (0)',
      'gauge',
      stats.map((s) => [{ engine: s.engine }, s.consumers > 0 ? 1 : 0]),
    );
    const alarms = d.store.collection<Alarm>(ALARMS);
    const open = await Promise.all(
      [0, 1, 2, 3].map(
        async (state) =>
          [{ state: String(state) }, await alarms.count({ resolved: null, 'state.val': state })] as [Record<string, string>, number],
      ),
    );
    metric('canopsis_alarms_open', 'Open alarms by state', 'gauge', open);
    metric('canopsis_api_events_total', 'Events received by POST /api/v4/event', 'counter', [
      [{ result: 'sent' }, counters.eventsSent],
      [{ result: 'failed' }, counters.eventsFailed],
    ]);
    metric(
      'canopsis_api_requests_total',
      'API requests by method and route pattern (unknown URLs: route="unmatched")',
      'counter',
      [...counters.requests.values()].map(({ method, route, n }) => [{ method, route }, n]),
    );
    return reply.type('text/plain; version=0.0.4').send(`${lines.join('\n')}\n`);
  });

  return app;
}
