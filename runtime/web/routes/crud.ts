import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Store } from '../../store/types.js';
import { bumpVersion } from '../../store/versions.js';
import { pageMeta, pageOf, type Query } from '../alarms-query.js';
import { badQuery, NOT_FOUND } from './alarms.js';

/*
 * The routes Canopsis v4 gives its simple configuration documents (types,
 * reasons, exceptions, idle rules: lib/api/pbehaviortype, idlerule, ...):
 * GET list (paged, search on name), GET one, POST (201; `_id` may be
 * given), PUT (200), DELETE (204), 404 {"error": "Not found"}, 400 with
 * {errors} from the document's check.
 */

export type Body = Record<string, unknown>;
export type Errors = Record<string, string>;

/** A required (or optional) string of at most 255 characters, with Canopsis' messages. */
export const text = (b: Body, field: string, errors: Errors, title: string, required = true): string => {
  const v = b[field];
  if (v === undefined || v === null || v === '') {
    if (required) errors[field] = `${title} is missing.`;
    return '';
  }
  if (typeof v !== 'string') errors[field] = `${title} must be a string.`;
  else if ([...v].length > 255) errors[field] = `${title} should be 255 or less.`;
  return typeof v === 'string' ? v : '';
};

export interface CrudOptions<T extends object> {
  store: Store;
  route: string;
  collection: string;
  /** The config_versions counter bumped on every write, so that engines caching these documents reload them. */
  version?: string;
  /** The document a request body makes (with the caller's name for `author`), or why not. */
  check: (b: Body, author: string, existing?: T) => Promise<{ doc?: T; errors: Errors }>;
  /** Whether something still refers to the document (then it cannot be deleted). */
  inUse?: (id: string) => Promise<boolean>;
  /** After every write. */
  changed?: () => Promise<void>;
  /** Before every read (defaults put in place). */
  before?: () => Promise<void>;
  /** What refers to documents in use, for the refusal. */
  usedBy?: string;
  /** Sort of the list (default: by id). */
  sort?: Array<[string, 1 | -1]>;
  /** The answer for a document (default: the document with `_id`). */
  view?: (key: string, doc: T) => Promise<Record<string, unknown>> | Record<string, unknown>;
}

export function crudRoutes<T extends object>(app: FastifyInstance, o: CrudOptions<T>): void {
  const c = () => o.store.collection<T>(o.collection);
  const view = o.view ?? ((key: string, doc: T) => ({ _id: key, ...doc }));
  app.get(o.route, async (req, reply) => {
    try {
      await o.before?.();
      const q = req.query as Query;
      const page = pageOf(q);
      const search = typeof q.search === 'string' ? q.search : '';
      const filter = search ? { name: { $contains: search } } : {};
      const [data, total] = await Promise.all([
        c().find(filter, { sort: [...(o.sort ?? []), ['key', 1]], skip: (page.page - 1) * page.limit, limit: page.limit }),
        c().count(filter),
      ]);
      const meta = pageMeta(page, total);
      return { data: await Promise.all(data.map(({ key, ...doc }) => view(key, doc as T))), meta };
    } catch (e) {
      const sent = badQuery(e, reply);
      if (sent) return sent;
      throw e;
    }
  });
  app.get(`${o.route}/:id`, async (req, reply) => {
    await o.before?.();
    const doc = await c().get((req.params as { id: string }).id);
    if (!doc) return reply.status(404).send(NOT_FOUND);
    const { key, ...rest } = doc;
    return await view(key, rest as T);
  });
  const save = async (id: string, body: unknown, author: string, existing: T | undefined, reply: FastifyReply, status: 200 | 201) => {
    await o.before?.();
    const r = await o.check((body ?? {}) as Body, author, existing);
    if (!r.doc) return reply.status(400).send({ errors: r.errors });
    await c().put(id, r.doc);
    if (o.version) await bumpVersion(o.store, o.version);
    await o.changed?.();
    return reply.status(status).send(await view(id, r.doc));
  };
  app.post(o.route, async (req, reply) => {
    const b = (req.body ?? {}) as Body;
    const id = typeof b._id === 'string' && b._id ? b._id : randomUUID();
    if (await c().get(id)) return reply.status(400).send({ errors: { _id: 'ID already exists.' } });
    return save(id, b, req.principal!.name, undefined, reply, 201);
  });
  app.put(`${o.route}/:id`, async (req, reply) => {
    const { id } = req.params as { id: string };
    const existing = await c().get(id);
    if (!existing) return reply.status(404).send(NOT_FOUND);
    const { key: _k, ...doc } = existing;
    return save(id, req.body, req.principal!.name, doc as T, reply, 200);
  });
  app.delete(`${o.route}/:id`, async (req, reply) => {
    const { id } = req.params as { id: string };
    if (!(await c().get(id))) return reply.status(404).send(NOT_FOUND);
    if (await o.inUse?.(id)) return reply.status(400).send({ error: `${id} is used by ${o.usedBy ?? 'another document'}` });
    await c().delete({ key: id });
    if (o.version) await bumpVersion(o.store, o.version);
    await o.changed?.();
    return reply.status(204).send();
  });
}
