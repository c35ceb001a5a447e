import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import {
  CANONICAL_TYPES,
  type Exception,
  type Exdate,
  PBEHAVIOR_EXCEPTIONS,
  PBEHAVIOR_REASONS,
  PBEHAVIOR_TYPES,
  PBEHAVIORS,
  type PBehavior,
  type PbhType,
  type Reason,
} from '../../pbehavior/model.js';
import { checkPattern } from '../../pbehavior/pattern.js';
import { checkRrule } from '../../pbehavior/resolve.js';
import { ensureDefaults } from '../../pbehavior/store.js';
import type { Collection, Store } from '../../store/types.js';
import { NOT_FOUND } from './alarms.js';
import { type Body, crudRoutes, type Errors, text } from './crud.js';

/*
 * Maintenance windows through the API, as Canopsis v4 serves them
 * (release-22.10, lib/api/pbehavior, pbehaviortype, pbehaviorreason,
 * pbehaviorexception: models.go and api.go; routes in lib/api/router.go):
 * list (paged, search on name), create (201, the document answered with its
 * type, reason and exceptions expanded), get, update (200), delete (204),
 * 404 {"error":"Not found"}, 400 {errors: {field: message}}. A change asks
 * the pbehavior engine to recompute (a job on Dispatcher_pbehavior).
 */

const now = () => Math.floor(Date.now() / 1000);
const COLOR = /^(#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}|#[0-9a-fA-F]{8}|(rgb|rgba|hsl|hsla)\([^)]*\))$/;

const seconds = (v: unknown) => (Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : undefined);

async function exdatesOf(b: Body, errors: Errors, types: Collection<PbhType>): Promise<Exdate[]> {
  const raw = b.exdates ?? [];
  if (!Array.isArray(raw)) {
    errors.exdates = 'Exdates must be an array.';
    return [];
  }
  const out: Exdate[] = [];
  for (const [i, x] of raw.entries()) {
    const e = (x ?? {}) as Body;
    const begin = seconds(e.begin);
    const end = seconds(e.end);
    if (begin === undefined) errors[`exdates.${i}.begin`] = 'Begin is missing.';
    if (end === undefined) errors[`exdates.${i}.end`] = 'End is missing.';
    else if (begin !== undefined && end <= begin) errors[`exdates.${i}.end`] = 'End should be greater than Begin.';
    if (typeof e.type !== 'string' || !(await types.get(e.type))) errors[`exdates.${i}.type`] = "Type doesn't exist.";
    if (begin !== undefined && end !== undefined && typeof e.type === 'string') out.push({ begin, end, type: e.type });
  }
  return out;
}

/** An EditRequest checked against the stored types, reasons and exceptions. */
async function pbehaviorOf(store: Store, b: Body, author: string, existing?: PBehavior): Promise<{ doc?: PBehavior; errors: Errors }> {
  const errors: Errors = {};
  const name = text(b, 'name', errors, 'Name');
  if (typeof b.enabled !== 'boolean') errors.enabled = 'Enabled is missing.';
  const tstart = seconds(b.tstart);
  if (tstart === undefined) errors.tstart = 'Start is missing.';
  const tstop = b.tstop === undefined || b.tstop === null ? undefined : seconds(b.tstop);
  if (b.tstop !== undefined && b.tstop !== null && tstop === undefined) errors.tstop = 'Stop must be a unix timestamp.';
  if (tstart !== undefined && tstop !== undefined && tstop <= tstart) errors.tstop = 'Stop should be greater than Start.';
  const rrule = typeof b.rrule === 'string' ? b.rrule : '';
  if (rrule && tstop === undefined) errors.tstop = 'Stop is missing: a recurring pbehavior needs the length of its spans.';
  const rruleError = rrule ? checkRrule(rrule, tstart ?? 0) : undefined;
  if (rruleError) errors.rrule = rruleError;
  const types = store.collection<PbhType>(PBEHAVIOR_TYPES);
  if (typeof b.type !== 'string' || !b.type) errors.type = 'Type is missing.';
  else if (!(await types.get(b.type))) errors.type = "Type doesn't exist.";
  if (typeof b.reason !== 'string' || !b.reason) errors.reason = 'Reason is missing.';
  else if (!(await store.collection<Reason>(PBEHAVIOR_REASONS).get(b.reason))) errors.reason = "Reason doesn't exist.";
  const color = text(b, 'color', errors, 'Color');
  if (color && !COLOR.test(color)) errors.color = 'Color is not valid.';
  const exdates = await exdatesOf(b, errors, types);
  const exceptions = Array.isArray(b.exceptions) ? b.exceptions : [];
  for (const [i, id] of exceptions.entries())
    if (typeof id !== 'string' || !(await store.collection<Exception>(PBEHAVIOR_EXCEPTIONS).get(id)))
      errors[`exceptions.${i}`] = "Exception doesn't exist.";
  const patternError = b.entity_pattern === undefined ? 'EntityPattern is missing.' : checkPattern(b.entity_pattern);
  if (patternError) errors.entity_pattern = patternError;
  if (Object.keys(errors).length) return { errors };
  return {
    errors,
    doc: {
      author,
      name,
      enabled: b.enabled as boolean,
      tstart: tstart!,
      ...(tstop !== undefined ? { tstop } : {}),
      rrule,
      exdates,
      exceptions: exceptions as string[],
      type: b.type as string,
      reason: b.reason as string,
      entity_pattern: b.entity_pattern as PBehavior['entity_pattern'],
      color,
      // Comments have their own routes: an update keeps them.
      comments: existing?.comments ?? [],
      created: existing?.created ?? now(),
      updated: now(),
    },
  };
}

/** The Response of lib/api/pbehavior/models.go: type, reason, exceptions expanded. */
async function pbehaviorView(store: Store, key: string, p: PBehavior): Promise<Record<string, unknown>> {
  const types = store.collection<PbhType>(PBEHAVIOR_TYPES);
  const withId = async <T extends object>(c: Collection<T>, id: string) => {
    const d = await c.get(id);
    if (!d) return null;
    const { key: k, ...rest } = d;
    return { _id: k, ...rest };
  };
  return {
    _id: key,
    author: { _id: p.author, name: p.author },
    comments: p.comments.map((c) => commentView(c)),
    enabled: p.enabled,
    name: p.name,
    reason: await withId(store.collection<Reason>(PBEHAVIOR_REASONS), p.reason),
    rrule: p.rrule,
    tstart: p.tstart,
    tstop: p.tstop ?? null,
    created: p.created,
    updated: p.updated,
    type: await withId(types, p.type),
    color: p.color,
    exdates: await Promise.all(p.exdates.map(async (x) => ({ begin: x.begin, end: x.end, type: await withId(types, x.type) }))),
    exceptions: (await Promise.all(p.exceptions.map((id) => withId(store.collection<Exception>(PBEHAVIOR_EXCEPTIONS), id)))).filter(
      Boolean,
    ),
    entity_pattern: p.entity_pattern,
  };
}

export interface PbehaviorDeps {
  store: Store;
  /** Asks the pbehavior engine to recompute now (a job on Dispatcher_pbehavior); a failure only delays it to its next beat. */
  recompute: () => Promise<void>;
}

const simpleCrud = <T extends object>(
  app: FastifyInstance,
  d: PbehaviorDeps,
  route: string,
  name: string,
  check: (b: Body) => Promise<{ doc?: T; errors: Errors }>,
  inUse: (id: string) => Promise<boolean>,
) =>
  crudRoutes<T>(app, {
    store: d.store,
    route,
    collection: name,
    check,
    inUse,
    version: PBEHAVIORS,
    changed: d.recompute,
    before: () => ensureDefaults(d.store),
    usedBy: 'a pbehavior',
  });

export function pbehaviorRoutes(app: FastifyInstance, d: PbehaviorDeps): void {
  const pbhs = () => d.store.collection<PBehavior>(PBEHAVIORS);
  const used = (field: 'type' | 'reason') => async (id: string) => (await pbhs().count({ [field]: id })) > 0;

  simpleCrud<PbhType>(
    app,
    d,
    '/api/v4/pbehavior-types',
    PBEHAVIOR_TYPES,
    async (b) => {
      const errors: Errors = {};
      const name = text(b, 'name', errors, 'Name');
      const description = text(b, 'description', errors, 'Description');
      const icon = text(b, 'icon_name', errors, 'IconName', false);
      if (typeof b.type !== 'string' || !(CANONICAL_TYPES as string[]).includes(b.type))
        errors.type = `Type must be one of [${CANONICAL_TYPES.join(' ')}].`;
      if (!Number.isSafeInteger(b.priority)) errors.priority = 'Priority is missing.';
      else {
        const clash = await d.store.collection<PbhType>(PBEHAVIOR_TYPES).find({ priority: b.priority as number, name: { $ne: name } });
        if (clash.length) errors.priority = 'Priority already exists.';
      }
      if (Object.keys(errors).length) return { errors };
      return { errors, doc: { name, description, type: b.type as PbhType['type'], priority: b.priority as number, icon_name: icon } };
    },
    used('type'),
  );
  simpleCrud<Reason>(
    app,
    d,
    '/api/v4/pbehavior-reasons',
    PBEHAVIOR_REASONS,
    async (b) => {
      const errors: Errors = {};
      const name = text(b, 'name', errors, 'Name');
      const description = text(b, 'description', errors, 'Description');
      return Object.keys(errors).length ? { errors } : { errors, doc: { name, description, created: now() } };
    },
    used('reason'),
  );
  simpleCrud<Exception>(
    app,
    d,
    '/api/v4/pbehavior-exceptions',
    PBEHAVIOR_EXCEPTIONS,
    async (b) => {
      const errors: Errors = {};
      const name = text(b, 'name', errors, 'Name');
      const description = text(b, 'description', errors, 'Description');
      const exdates = await exdatesOf(b, errors, d.store.collection<PbhType>(PBEHAVIOR_TYPES));
      return Object.keys(errors).length ? { errors } : { errors, doc: { name, description, exdates, created: now() } };
    },
    async (id) => (await pbhs().find({})).some((p) => p.exceptions.includes(id)),
  );

  crudRoutes<PBehavior>(app, {
    store: d.store,
    route: '/api/v4/pbehaviors',
    bulk: '/api/v4/bulk/pbehaviors',
    collection: PBEHAVIORS,
    version: PBEHAVIORS,
    check: (b, author, existing) => pbehaviorOf(d.store, b, author, existing),
    patch: true,
    changed: d.recompute,
    before: () => ensureDefaults(d.store),
    sort: [['created', -1]],
    view: (key, p) => pbehaviorView(d.store, key, p),
  });

  commentRoutes(app, d);
}

type Comment = PBehavior['comments'][number];
/** pbehaviorcomment.Response: the author as {_id, name}. */
const commentView = (c: Comment) => ({ _id: c._id, author: { _id: c.author, name: c.author }, ts: c.ts, message: c.message });

/**
 * /api/v4/pbehavior-comments (lib/api/pbehaviorcomment): a comment is kept
 * in its pbehavior's `comments`, as Canopsis keeps it; POST answers 201
 * with the comment, DELETE 204, an unknown pbehavior or comment 404.
 */
function commentRoutes(app: FastifyInstance, d: PbehaviorDeps): void {
  const pbhs = () => d.store.collection<PBehavior>(PBEHAVIORS);
  app.post('/api/v4/pbehavior-comments', async (req, reply) => {
    const b = (req.body && typeof req.body === 'object' ? req.body : {}) as Body;
    const errors: Errors = {};
    const pbehavior = text(b, 'pbehavior', errors, 'Pbehavior');
    const message = text(b, 'message', errors, 'Message');
    if (message.length > 255) errors.message = 'Message should be 255 or less.';
    if (Object.keys(errors).length) return reply.status(400).send({ errors });
    const comment: Comment = { _id: randomUUID(), author: req.principal!.name, ts: now(), message };
    const { doc } = await pbhs().modify(pbehavior, (cur) => {
      if (!cur) return undefined;
      const { key: _k, ...p } = cur;
      return { ...p, comments: [...p.comments, comment] };
    });
    if (!doc) return reply.status(404).send(NOT_FOUND);
    return reply.status(201).send(commentView(comment));
  });
  app.delete('/api/v4/pbehavior-comments/:id', async (req, reply) => {
    const id = (req.params as { id: string }).id;
    const holder = (await pbhs().find({})).find((p) => p.comments.some((c) => c._id === id));
    if (!holder) return reply.status(404).send(NOT_FOUND);
    await pbhs().modify(holder.key, (cur) => {
      if (!cur) return undefined;
      const { key: _k, ...p } = cur;
      return { ...p, comments: p.comments.filter((c) => c._id !== id) };
    });
    return reply.status(204).send();
  });
}
