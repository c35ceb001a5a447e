import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { StoredAlarm } from '../alarm/model.js';
import { ALARMS } from '../engines/axe.js';
import { RECOMPUTE_JOB } from '../engines/pbehavior.js';
import { MAX_EVENT_DEPTH, nestedDeeperThan } from '../event/canopsis-event.js';
import type { Store } from '../store/types.js';
import type { Event } from '../tasks/types.js';
import { repeatedParameter } from './alarms-query.js';
import { authenticate, type Credentials, type Principal, presented } from './auth.js';
import { consolePage, consoleRoutes, isApi, isConsolePage } from './console.js';
import { liveRoutes } from './live.js';
import { alarmActionRoutes } from './routes/alarm-actions.js';
import { alarmReadRoutes } from './routes/alarms.js';
import { entityRoutes } from './routes/entities.js';
import { eventRoutes } from './routes/events.js';
import { idleRuleRoutes } from './routes/idle-rules.js';
import { pbehaviorRoutes } from './routes/pbehaviors.js';
import { type DeadLetterAccess, type ProcessState, platformRoutes, reachable } from './routes/platform.js';
import { scenarioRoutes } from './routes/scenarios.js';
import { sessionRoutes } from './routes/session.js';
import { bearer, REVOKED_TOKENS, TOKEN_TTL, Tokens } from './tokens.js';

/*
 * The REST API, speaking Canopsis v4 (docs/canopsis-compatibility.md says
 * route by route what matches and where it comes from). Authentication:
 * the API key (header x-canopsis-authkey or ?authkey=), read-only keys,
 * users over HTTP basic or with the token of POST /api/v4/login
 * (Authorization: Bearer). Every answer is JSON; errors never carry a stack
 * trace. Failed logins are counted per client address: past the limit the
 * address gets 429 for the rest of the window, and no password is checked
 * for it meanwhile.
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
  /** The appliance's version, for /api/v4/app-info. */
  version?: string;
  /** Seconds a login token lasts (default 24 h). */
  tokenTtl?: number;
  /** Sends a job to Dispatcher_<engine> when that engine is in the chain (a pbehavior change asks for a recompute). */
  dispatchJob?: (engine: string, job: unknown) => Promise<void>;
  /** The engines of the chain, for the platform page. */
  engines?: string[];
  deadLetters?: DeadLetterAccess;
  processes?: () => Promise<ProcessState[] | undefined>;
  /** The built console (index.html and its assets), served under `/`; absent: no console. */
  consoleDir?: string;
}

export const AUTH_FAILURES = { max: 10, windowMs: 60_000 };

const PUBLIC = new Set(['/api/v4/healthcheck', '/api/v4/login', '/api/v4/logout']);
/** POST routes that only read: a read-only caller may use them. */
const READS = new Set(['/api/v4/alarm-details']);

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

/** The label of a request in /metrics: its route pattern, never the URL a client typed (it may carry ?authkey=). */
const routeLabel = (req: FastifyRequest) => (req.is404 || !req.routeOptions.url ? 'unmatched' : req.routeOptions.url);

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
  // Any page of the console that is not a file (a reload on /alarms) is its index.html; the API's unknown URLs are JSON 404s.
  app.setNotFoundHandler((req, reply) =>
    d.consoleDir && isConsolePage(req.method, req.url) ? consolePage(reply) : reply.status(404).send({ error: 'Not found' }),
  );

  // A body nested deeper than an event may be is refused before parsing: it could not be serialised to the
  // broker (JSON.stringify overflows its stack) and would end as a 500. Fastify's own parser does the rest.
  // JSON only: Fastify would also parse text/plain, a body a cross-site form can send without a preflight.
  app.removeContentTypeParser('text/plain');
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

  const tokens = new Tokens(d.credentials.authkey, d.store.collection(REVOKED_TOKENS), d.tokenTtl ?? TOKEN_TTL);

  /** Who is calling: an API key, a login token, or HTTP basic; undefined for none or a bad one. */
  const principalOf = async (req: FastifyRequest, key: string | undefined): Promise<Principal | undefined> => {
    const token = key ? undefined : bearer(req.headers.authorization);
    if (!token) return authenticate(d.credentials, key, req.headers.authorization);
    const t = await tokens.verify(token);
    // The user's current role: a user removed from api-users.ini loses its tokens with it.
    const user = t ? d.credentials.users.get(t.name) : undefined;
    return t && user ? { name: t.name, role: user.role, expires: t.exp } : undefined;
  };

  app.addHook('onRequest', async (req, reply) => {
    const method = req.method;
    const route = routeLabel(req);
    const counted = counters.requests.get(`${method} ${route}`) ?? { method, route, n: 0 };
    counted.n += 1;
    counters.requests.set(`${method} ${route}`, counted);
    const repeated = repeatedParameter(req.query);
    if (repeated !== undefined) return reply.status(400).send({ error: `query parameter ${repeated} given more than once: give it once` });
    // The console's files are public (its login page among them); every API call it makes is authenticated.
    // Judged on the route the router matched, never on the raw URL: /%61pi/v4/alarms or an absolute-form
    // target (GET http://x/api/v4/alarms) reach the API's routes too. An unmatched URL outside /api is a
    // console page or a 404, which hold nothing.
    if (PUBLIC.has(route) || (route === 'unmatched' ? !isApi(req.url) : !isApi(route))) return;
    const key = (req.headers['x-canopsis-authkey'] as string | undefined) ?? (req.query as Record<string, string | undefined>)?.authkey;
    const kind = presented(key, req.headers.authorization);
    // A blocked address gets no password checked; an API key is still checked:
    // a random key cannot be guessed at any rate, and our own tools keep working.
    if (kind === 'basic') {
      const now = await failures(req, { increment: false });
      if (!now.isAllowed && now.isExceeded) return tooMany(req, reply, now.ttlInSeconds);
    }
    const principal = await principalOf(req, key);
    if (!principal) {
      if (kind) {
        const after = await failures(req);
        if (!after.isAllowed && after.isExceeded) return tooMany(req, reply, after.ttlInSeconds);
      }
      // The Basic challenge only to who may answer it: a browser shows its own login dialog on it, which the
      // console's calls (Bearer) must never trigger; credentials typed there would be sent by the browser
      // on every later request, cross-site ones too.
      if (!bearer(req.headers.authorization)) reply.header('www-authenticate', 'Basic realm="canopsis"');
      return reply
        .status(401)
        .send({ error: 'authentication required: x-canopsis-authkey header, ?authkey=, a login token (Bearer) or HTTP basic' });
    }
    if (req.method !== 'GET' && req.method !== 'HEAD' && !READS.has(route) && principal.role !== 'admin') {
      return reply.status(403).send({ error: `${principal.name} is read-only` });
    }
    req.principal = principal;
  });

  app.get('/api/v4/healthcheck', async (_req, reply) => {
    const { broker, store } = await reachable(d);
    return reply.status(broker && store ? 200 : 503).send({ broker, store });
  });

  eventRoutes(app, d.publish, counters);
  liveRoutes(app, d.store);
  platformRoutes(app, {
    store: d.store,
    engines: d.engines ?? [],
    brokerReady: d.brokerReady,
    queueStats: d.queueStats,
    ...(d.deadLetters ? { deadLetters: d.deadLetters } : {}),
    ...(d.processes ? { processes: d.processes } : {}),
    version: d.version ?? 'unknown',
  });
  if (d.consoleDir) await consoleRoutes(app, d.consoleDir);
  alarmReadRoutes(app, d.store);
  alarmActionRoutes(app, { store: d.store, publish: d.publish });
  entityRoutes(app, d.store);
  idleRuleRoutes(app, d.store);
  scenarioRoutes(app, d.store);
  pbehaviorRoutes(app, {
    store: d.store,
    recompute: async () => {
      // The engine also recomputes on its own every minute: a job that cannot be sent only delays the change.
      await d
        .dispatchJob?.('pbehavior', RECOMPUTE_JOB)
        .catch((e: Error) => app.log.warn({ err: e.message }, 'pbehavior recompute job not sent'));
    },
  });
  sessionRoutes(app, {
    credentials: d.credentials,
    tokens,
    version: d.version ?? 'unknown',
    limiter: {
      blocked: async (req, reply) => {
        const now = await failures(req, { increment: false });
        if (now.isAllowed || !now.isExceeded) return false;
        await tooMany(req, reply, now.ttlInSeconds);
        return true;
      },
      failed: async (req, reply) => {
        const after = await failures(req);
        if (after.isAllowed || !after.isExceeded) return false;
        await tooMany(req, reply, after.ttlInSeconds);
        return true;
      },
    },
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
    const alarms = d.store.collection<StoredAlarm>(ALARMS);
    const open = await Promise.all(
      [0, 1, 2, 3].map(
        async (state) =>
          [{ state: String(state) }, await alarms.count({ 'v.resolved': null, 'v.state.val': state })] as [Record<string, string>, number],
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
