import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { StoredAlarm } from '../../alarm/model.js';
import { checkDuration, durationSeconds } from '../../durations.js';
import { ALARMS } from '../../engines/axe.js';
import { checkEvent } from '../../event/canopsis-event.js';
import type { Store } from '../../store/types.js';
import type { Event } from '../../tasks/types.js';
import { NOT_FOUND } from './alarms.js';

/*
 * Acting on alarms as Canopsis v4 does (capensis/canopsis release-24.10,
 * lib/api/alarmaction: api.go, models.go, store.go; routes in
 * lib/api/router.go): PUT /api/v4/alarms/{id}/<action> answers 204, or 404
 * when the alarm is not open or the action cannot apply (ackremove of an
 * alarm not acked, snooze of a snoozed one, cancel of a cancelled one...),
 * and PUT /api/v4/bulk/alarms/<action> takes [{_id, ...}] and answers 207
 * with {id, status, item} or {status, item, error(s)} per item. The action
 * becomes an event through the pipeline: axe stays the only writer.
 */

type Body = Record<string, unknown>;
type Checked = { errors: Record<string, string> } | { event: Partial<Event> };

interface ActionSpec {
  /** What the request body must hold; the event fields it gives. */
  check(body: Body): Checked;
  /** Whether the action applies to this open alarm (store.go's findAlarm match). */
  applies(a: StoredAlarm): boolean;
}

const comment = (body: Body, required = false): Record<string, string> | string => {
  const c = body.comment;
  if (c === undefined || c === null || c === '') return required ? { comment: 'Comment is missing.' } : '';
  if (typeof c !== 'string') return { comment: 'Comment must be a string.' };
  if ([...c].length > 255) return { comment: 'Comment should be 255 or less.' };
  return c;
};
const withComment = (body: Body, required = false): Checked => {
  const c = comment(body, required);
  return typeof c === 'string' ? { event: { output: c } } : { errors: c };
};

export const ACTIONS: Record<string, ActionSpec> = {
  ack: { check: (b) => withComment(b), applies: () => true },
  ackremove: { check: (b) => withComment(b), applies: (a) => a.v.ack !== undefined },
  snooze: {
    check: (b) => {
      const c = comment(b);
      if (typeof c !== 'string') return { errors: c };
      const errors: Record<string, string> = {};
      const d = checkDuration(b.duration, 'duration', errors, 'Duration is missing.');
      return d ? { event: { output: c, duration: durationSeconds(d) } } : { errors };
    },
    applies: (a) => a.v.snooze === undefined,
  },
  cancel: { check: (b) => withComment(b), applies: (a) => a.v.canceled === undefined },
  uncancel: { check: (b) => withComment(b), applies: (a) => a.v.canceled !== undefined },
  assocticket: {
    check: (b) => {
      const c = comment(b);
      if (typeof c !== 'string') return { errors: c };
      if (typeof b.ticket !== 'string' || b.ticket === '') return { errors: { ticket: 'Ticket is missing.' } };
      const data = b.data && typeof b.data === 'object' && !Array.isArray(b.data) ? b.data : undefined;
      return { event: { output: c || b.ticket, ticket: b.ticket, ...(data ? { ticket_data: data } : {}) } };
    },
    applies: () => true,
  },
  comment: { check: (b) => withComment(b, true), applies: () => true },
  changestate: {
    check: (b) => {
      const c = comment(b);
      if (typeof c !== 'string') return { errors: c };
      if (b.state === undefined || b.state === null) return { errors: { state: 'State is missing.' } };
      if (!Number.isInteger(b.state) || (b.state as number) < 0 || (b.state as number) > 3)
        return { errors: { state: 'State must be one of [0 1 2 3].' } };
      return { event: { output: c, state: b.state } };
    },
    applies: (a) => a.v.state.val !== 0,
  },
};

export interface ActionDeps {
  store: Store;
  publish: (event: Event) => Promise<void>;
}

type Outcome = { status: 204 } | { status: 400; errors: Record<string, string> } | { status: 404 };

/** One action on one alarm: validated, matched against the alarm, published. */
async function act(d: ActionDeps, req: FastifyRequest, action: string, id: string, body: Body): Promise<Outcome> {
  const spec = ACTIONS[action]!;
  const checked = spec.check(body);
  if ('errors' in checked) return { status: 400, errors: checked.errors };
  const a = await d.store.collection<StoredAlarm>(ALARMS).get(id);
  if (!a || a.v.resolved !== undefined || !spec.applies(a)) return { status: 404 };
  const p = req.principal!;
  const event: Event = {
    connector: a.v.connector,
    connector_name: a.v.connector_name,
    event_type: action,
    source_type: a.v.resource ? 'resource' : a.d === `${a.v.connector}/${a.v.connector_name}` ? 'connector' : 'component',
    component: a.v.component,
    ...(a.v.resource ? { resource: a.v.resource } : {}),
    author: p.name,
    user_id: p.name,
    initiator: 'user',
    output: '',
    timestamp: Math.floor(Date.now() / 1000),
    ...checked.event,
  };
  const r = checkEvent(event);
  if (!r.ok) return { status: 400, errors: { event: r.reason } };
  await d.publish(r.event);
  return { status: 204 };
}

export function alarmActionRoutes(app: FastifyInstance, d: ActionDeps): void {
  for (const action of Object.keys(ACTIONS)) {
    app.put(`/api/v4/alarms/:id/${action}`, async (req, reply) => {
      const { id } = req.params as { id: string };
      const body = (req.body ?? {}) as Body;
      if (typeof body !== 'object' || Array.isArray(body)) return reply.status(400).send({ error: 'request has invalid structure' });
      const r = await act(d, req, action, id, body);
      if (r.status === 204) return reply.status(204).send();
      if (r.status === 404) return reply.status(404).send(NOT_FOUND);
      return reply.status(400).send({ errors: r.errors });
    });

    app.put(`/api/v4/bulk/alarms/${action}`, async (req, reply) => {
      if (!Array.isArray(req.body)) return reply.status(400).send({ error: 'the body should be an array' });
      const out: Array<Record<string, unknown>> = [];
      for (const item of req.body as unknown[]) {
        if (!item || typeof item !== 'object' || Array.isArray(item)) {
          out.push({ status: 400, item, error: 'request has invalid structure' });
          continue;
        }
        const id = (item as Body)._id;
        if (typeof id !== 'string' || id === '') {
          out.push({ status: 400, item, errors: { _id: 'ID is missing.' } });
          continue;
        }
        const r = await act(d, req, action, id, item as Body);
        if (r.status === 204) out.push({ id, status: 200, item });
        else if (r.status === 404) out.push({ status: 404, item, error: NOT_FOUND.error });
        else out.push({ status: 400, item, errors: r.errors });
      }
      return reply.status(207).send(out);
    });
  }
}
