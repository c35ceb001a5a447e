import type { FastifyInstance } from 'fastify';
import type { StoredAlarm } from '../../alarm/model.js';
import { ALARMS } from '../../engines/axe.js';
import { ENTITIES, type Entity } from '../../engines/che.js';
import type { Filter, FindOptions, Store } from '../../store/types.js';
import { Invalid, pageMeta, pageOf, type Query } from '../alarms-query.js';
import { entityView } from '../views.js';
import { badQuery, NOT_FOUND } from './alarms.js';

/*
 * Entities as Canopsis v4 lists them (release-22.10, lib/api/entity:
 * models.go ListRequest, store.go; lib/api/entitybasic; the bodies of
 * tests/functional/features/api/core/entity_get.feature and
 * entitybasic_get.feature): search on name and type, type[], sort_by,
 * paging, and each entity's state, status and impact_state from its open
 * alarm (0 without one).
 */

const TYPES = ['connector', 'component', 'resource', 'service'];
const SORTABLE: Record<string, string> = { _id: 'key', name: 'name', type: 'type', last_event_date: 'last_event_date', created: 'created' };

function entitiesQuery(q: Query): { filter: Filter; options: FindOptions; page: number; limit: number } {
  const { page, limit } = pageOf(q);
  const errors: Record<string, string> = {};
  const filter: Filter = {};
  const raw = q['type[]'] ?? q.type;
  const types = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  const unknown = types.filter((t) => !TYPES.includes(t));
  if (unknown.length) errors.type = `Type must be one of [${TYPES.join(' ')}].`;
  else if (types.length) filter.type = { $in: types };
  const search = (typeof q.search === 'string' ? q.search : '').trim();
  if (search) filter.$or = [{ name: { $contains: search } }, { type: { $contains: search } }, { key: { $in: [search] } }];
  if (q['filters[]'] ?? q.filters) errors.filter = "Filter doesn't exist.";
  // No entity belongs to a category here.
  if (q.category) filter.key = { $in: [] };
  const by = typeof q.sort_by === 'string' && q.sort_by ? q.sort_by : 'name';
  const dir = typeof q.sort === 'string' && q.sort ? q.sort : 'asc';
  if (!(by in SORTABLE) && by !== 'impact_level')
    errors.sort_by = `SortBy must be one of [${[...Object.keys(SORTABLE), 'impact_level'].join(' ')}].`;
  if (dir !== 'asc' && dir !== 'desc') errors.sort = 'Sort must be one of [asc desc] or empty.';
  if (Object.keys(errors).length) throw new Invalid(errors);
  // impact_level is 1 for every entity here: sorting by it is the default order.
  const field = SORTABLE[by] ?? 'name';
  const sort: FindOptions['sort'] = [[field, dir === 'desc' ? -1 : 1]];
  if (field !== 'key') sort.push(['key', 1]);
  return { filter, options: { sort, skip: (page - 1) * limit, limit }, page, limit };
}

export function entityRoutes(app: FastifyInstance, store: Store): void {
  app.get('/api/v4/entities', async (req, reply) => {
    try {
      const q = entitiesQuery(req.query as Query);
      const c = store.collection<Entity>(ENTITIES);
      const [data, total] = await Promise.all([c.find(q.filter, q.options), c.count(q.filter)]);
      const meta = pageMeta(q, total);
      const open = data.length
        ? await store.collection<StoredAlarm>(ALARMS).find({ d: { $in: data.map((e) => e.key) }, 'v.resolved': null })
        : [];
      const byEntity = new Map(open.map((a) => [a.d, a]));
      return {
        data: data.map((e) => {
          const a = byEntity.get(e.key);
          const state = a?.v.state.val ?? 0;
          return {
            ...entityView(e.key, e),
            old_entity_patterns: null,
            ok_events: 0,
            ko_events: 0,
            state,
            status: a?.v.status.val ?? 0,
            impact_state: state,
            ...(a?.v.ack ? { ack: a.v.ack } : {}),
            ...(a?.v.snooze ? { snooze: a.v.snooze } : {}),
            ...(a ? { alarm_last_update_date: a.v.last_update_date } : {}),
          };
        }),
        meta,
      };
    } catch (e) {
      const sent = badQuery(e, reply);
      if (sent) return sent;
      throw e;
    }
  });

  app.get('/api/v4/entitybasics', async (req, reply) => {
    const id = (req.query as Query)._id;
    if (typeof id !== 'string' || id === '') return reply.status(400).send({ errors: { _id: 'ID is missing.' } });
    const e = await store.collection<Entity>(ENTITIES).get(id);
    if (!e) return reply.status(404).send(NOT_FOUND);
    return { ...entityView(id, e), old_entity_patterns: null, changeable_depends: e.depends ?? [], changeable_impact: [] };
  });
}
