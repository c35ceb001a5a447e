import type { FastifyInstance, FastifyReply } from 'fastify';
import type { StoredAlarm } from '../../alarm/model.js';
import { alarmMatches } from '../../alarm/pattern.js';
import { ALARMS } from '../../engines/axe.js';
import { ENTITIES, type Entity, matchableEntity } from '../../engines/che.js';
import { matches, pbehaviorMatches } from '../../pbehavior/pattern.js';
import type { Store } from '../../store/types.js';
import { AlarmPages } from '../alarm-pages.js';
import { type AlarmsQuery, alarmsQuery, Invalid, PageOutOfRange, type Patterns, pageMeta, type Query } from '../alarms-query.js';
import { alarmView, alarmViewJson } from '../views.js';

/*
 * Reading alarms as Canopsis v4 serves them (release-22.10,
 * lib/api/alarm/api.go): GET /api/v4/alarms (List), GET /api/v4/alarms/{id}
 * (Get) and POST /api/v4/alarm-details (GetDetails, 207 with one answer per
 * request, steps paged).
 */

export const NOT_FOUND = { error: 'Not found' };
/** What Fastify says of the JSON it serialises itself. */
const JSON_TYPE = 'application/json; charset=utf-8';

const now = () => Math.floor(Date.now() / 1000);

/** The entities of these alarms, by id, in one query. */
export async function entitiesOf(store: Store, ids: string[]): Promise<Map<string, Entity>> {
  if (ids.length === 0) return new Map();
  const found = await store.collection<Entity>(ENTITIES).find({ key: { $in: [...new Set(ids)] } });
  return new Map(found.map((e) => [e.key, e]));
}

/** A bad query as Canopsis answers it: 400 with {errors} for a field, {error} for a page out of range. */
export function badQuery(e: unknown, reply: FastifyReply): FastifyReply | undefined {
  if (e instanceof Invalid) return reply.status(400).send({ errors: e.errors });
  if (e instanceof PageOutOfRange) return reply.status(400).send({ error: e.message });
  return undefined;
}

/**
 * A page of the alarms the filter finds and the patterns select. Patterns
 * are matched here, on every alarm the filter finds, as Canopsis matches
 * them in its aggregation: the count is of the matching alarms.
 */
async function withPatterns(store: Store, q: AlarmsQuery, p: Patterns, now: number) {
  const { skip = 0, limit = 10, ...order } = q.options;
  const found = await store.collection<StoredAlarm>(ALARMS).find(q.filter, order);
  const entities = p.entity
    ? await entitiesOf(
        store,
        found.map((a) => a.d),
      )
    : new Map<string, Entity>();
  const selected = found.filter(
    (a) =>
      (!p.alarm || alarmMatches(p.alarm, a, now)) &&
      (!p.pbehavior || pbehaviorMatches(p.pbehavior, a.v.pbehavior_info)) &&
      (!p.entity || matches(p.entity, matchableEntity(a.d, entities.get(a.d)), now)),
  );
  const data = selected.slice(skip, skip + limit);
  return {
    data,
    total: selected.length,
    entities: p.entity
      ? entities
      : await entitiesOf(
          store,
          data.map((a) => a.d),
        ),
  };
}

export function alarmReadRoutes(app: FastifyInstance, store: Store): void {
  const alarms = () => store.collection<StoredAlarm>(ALARMS);
  const pages = new AlarmPages(store);

  app.get('/api/v4/alarms', async (req, reply) => {
    try {
      const t = now();
      const q = alarmsQuery(req.query as Query, t);
      const { data, total, entities } = q.patterns
        ? await withPatterns(store, q, q.patterns, t)
        : await (async () => {
            const { data, total } = await pages.page(q.filter, q.options);
            return { data, total, entities: await pages.entitiesOf(data.map((a) => a.d)) };
          })();
      const meta = pageMeta(q, total);
      // The text JSON.stringify({data, meta}) would give, from each alarm's pre-serialised text.
      const views = data.map((a) => alarmViewJson(a, entities.get(a.d), { now: t, steps: q.withSteps }));
      return reply.type(JSON_TYPE).send(`{"data":[${views.join(',')}],"meta":${JSON.stringify(meta)}}`);
    } catch (e) {
      const sent = badQuery(e, reply);
      if (sent) return sent;
      throw e;
    }
  });

  app.get('/api/v4/alarms/:id', async (req, reply) => {
    const { id } = req.params as { id: string };
    const a = await alarms().get(id);
    if (!a) return reply.status(404).send(NOT_FOUND);
    const entities = await entitiesOf(store, [a.d]);
    return alarmView(a, entities.get(a.d), { now: now(), steps: true });
  });

  app.post('/api/v4/alarm-details', async (req, reply) => {
    if (!Array.isArray(req.body))
      return reply.status(400).send({ error: 'the body should be an array of {_id, steps: {page, limit, reversed}}' });
    const out = [];
    for (const item of req.body as unknown[]) out.push(await details(store, item));
    return reply.status(207).send(out);
  });
}

async function details(store: Store, item: unknown): Promise<Record<string, unknown>> {
  if (!item || typeof item !== 'object' || Array.isArray(item)) return { status: 400, error: 'Request has invalid structure' };
  const r = item as { _id?: unknown; opened?: unknown; steps?: { page?: unknown; limit?: unknown; reversed?: unknown } };
  if (typeof r._id !== 'string' || r._id === '') return { status: 400, errors: { _id: 'ID is missing.' } };
  const a = await store.collection<StoredAlarm>(ALARMS).get(r._id);
  const openWanted = r.opened === true ? true : r.opened === false ? false : undefined;
  if (!a || (openWanted !== undefined && (a.v.resolved === undefined) !== openWanted))
    return { _id: r._id, status: 404, error: 'Not found' };
  const data: Record<string, unknown> = {};
  if (r.steps) {
    const page = Number(r.steps.page ?? 1) || 1;
    const limit = Number(r.steps.limit ?? 10) || 10;
    if (page < 1 || limit < 1) return { _id: r._id, status: 400, errors: { 'steps.page': 'Page should be greater than 0.' } };
    const all = r.steps.reversed === true ? [...a.v.steps].reverse() : a.v.steps;
    data.steps = {
      data: all.slice((page - 1) * limit, page * limit),
      meta: { page, per_page: limit, page_count: Math.max(1, Math.ceil(all.length / limit)), total_count: all.length },
    };
  }
  return { _id: r._id, status: 200, data };
}
