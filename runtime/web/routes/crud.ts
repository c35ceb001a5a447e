import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
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
  /** The bulk route (/api/v4/bulk/...): POST creates, PUT updates, DELETE deletes, an array each. */
  bulk?: string;
  /** PATCH /route/:id: the fields given replace the stored ones, then the whole is checked as a PUT (lib/api/pbehavior PatchRequest). */
  patch?: boolean;
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
  /** One create, update or delete, as an outcome both the single and the bulk routes answer from. */
  type Outcome = { status: 200 | 201 | 204; id: string; doc?: T } | { status: 400; errors?: Errors; error?: string } | { status: 404 };
  const write = async (op: 'create' | 'update' | 'delete', id: string | undefined, body: Body, author: string): Promise<Outcome> => {
    await o.before?.();
    if (op !== 'create' && !id) return { status: 400, errors: { _id: 'ID is missing.' } };
    const key = id ?? randomUUID();
    const current = await c().get(key);
    if (op === 'create' && current) return { status: 400, errors: { _id: 'ID already exists.' } };
    if (op !== 'create' && !current) return { status: 404 };
    if (op === 'delete') {
      if (await o.inUse?.(key)) return { status: 400, error: `${key} is used by ${o.usedBy ?? 'another document'}` };
      await c().delete({ key });
    } else {
      const existing = current ? (({ key: _k, ...d }) => d as unknown as T)(current) : undefined;
      const r = await o.check(body, author, existing);
      if (!r.doc) return { status: 400, errors: r.errors };
      await c().put(key, r.doc);
      if (o.version) await bumpVersion(o.store, o.version);
      await o.changed?.();
      return { status: op === 'create' ? 201 : 200, id: key, doc: r.doc };
    }
    if (o.version) await bumpVersion(o.store, o.version);
    await o.changed?.();
    return { status: 204, id: key };
  };
  const answer = async (r: Outcome, reply: FastifyReply) => {
    if (r.status === 404) return reply.status(404).send(NOT_FOUND);
    if (r.status === 400) return reply.status(400).send(r.errors ? { errors: r.errors } : { error: r.error });
    if (r.status === 204) return reply.status(204).send();
    return reply.status(r.status).send(await view(r.id, r.doc!));
  };
  const bodyOf = (v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Body) : {});
  app.post(o.route, async (req, reply) => {
    const b = bodyOf(req.body);
    return answer(await write('create', typeof b._id === 'string' && b._id ? b._id : undefined, b, req.principal!.name), reply);
  });
  app.put(`${o.route}/:id`, async (req, reply) =>
    answer(await write('update', (req.params as { id: string }).id, bodyOf(req.body), req.principal!.name), reply),
  );
  if (o.patch)
    app.patch(`${o.route}/:id`, async (req, reply) => {
      const id = (req.params as { id: string }).id;
      const current = await c().get(id);
      if (!current) return reply.status(404).send(NOT_FOUND);
      const { key: _k, ...stored } = current;
      // A null clears an optional field (tstop: null, no end), as PatchRequest's NullableTime.
      const merged: Body = { ...(stored as Body) };
      for (const [k, v] of Object.entries(bodyOf(req.body))) {
        if (v === null) delete merged[k];
        else merged[k] = v;
      }
      return answer(await write('update', id, merged, req.principal!.name), reply);
    });
  app.delete(`${o.route}/:id`, async (req, reply) =>
    answer(await write('delete', (req.params as { id: string }).id, {}, req.principal!.name), reply),
  );

  // The bulk routes (lib/api/bulk/handler.go): an array in, 207 out, one {id, status, item} or {status, item, error(s)} per item.
  if (!o.bulk) return;
  const bulk = (op: 'create' | 'update' | 'delete') => async (req: FastifyRequest, reply: FastifyReply) => {
    if (!Array.isArray(req.body)) return reply.status(400).send({ error: 'the body should be an array' });
    const out: Array<Record<string, unknown>> = [];
    for (const item of req.body as unknown[]) {
      if (!item || typeof item !== 'object' || Array.isArray(item)) {
        out.push({ status: 400, item, error: 'request has invalid structure' });
        continue;
      }
      const b = item as Body;
      const id = typeof b._id === 'string' && b._id ? b._id : undefined;
      const r = await write(op, id, b, req.principal!.name);
      if (r.status === 404) out.push({ status: 404, item, error: NOT_FOUND.error });
      else if (r.status === 400) out.push({ status: 400, item, ...(r.errors ? { errors: r.errors } : { error: r.error }) });
      else out.push({ id: r.id, status: 200, item });
    }
    return reply.status(207).send(out);
  };
  app.post(o.bulk, bulk('create'));
  app.put(o.bulk, bulk('update'));
  app.delete(o.bulk, bulk('delete'));
}
