import type { FastifyInstance } from 'fastify';
import { checkEvent, derivedSourceType } from '../../event/canopsis-event.js';
import type { Event } from '../../tasks/types.js';

/*
 * POST /api/v4/event as Canopsis v4 answers it (release-22.10,
 * lib/api/event/api.go Send and processValue; the bodies of
 * tests/functional/features/api/core/event.feature): an event or an array,
 * always 200 with sent_events and failed_events holding the events
 * themselves; only a body that is neither is a 400. The source type is set
 * from the fields present, author and user_id from the caller when the event
 * has none. Beside Canopsis' three lists, failed_reasons says why each failed
 * event was refused (same order), and retry_events holds the valid events
 * the broker did not confirm: the client may send them again.
 */

export interface EventCounters {
  eventsSent: number;
  eventsFailed: number;
}

export function eventRoutes(app: FastifyInstance, publish: (e: Event) => Promise<void>, counters: EventCounters): void {
  app.post('/api/v4/event', async (req, reply) => {
    const body = req.body as unknown;
    if (body === null || typeof body !== 'object') return reply.status(400).send({ error: 'the body should be an object or an array' });
    const events = Array.isArray(body) ? body : [body];
    const p = req.principal!;
    const sent: Event[] = [];
    const failed: unknown[] = [];
    const reasons: string[] = [];
    const retry: Event[] = [];
    for (const raw of events) {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
        failed.push(raw);
        reasons.push('not an event object');
        continue;
      }
      const e = { ...(raw as Event) };
      if (typeof e.connector === 'string' && e.connector && typeof e.connector_name === 'string' && e.connector_name) {
        e.source_type = derivedSourceType(e);
      }
      if (!e.author) e.author = p.name;
      if (!e.user_id) e.user_id = p.name;
      const r = checkEvent(e);
      if (!r.ok) {
        failed.push(raw);
        reasons.push(r.reason);
        continue;
      }
      try {
        await publish(r.event);
        sent.push(r.event);
      } catch (err) {
        req.log.warn({ err: (err as Error).message }, 'event not published');
        retry.push(r.event);
      }
    }
    counters.eventsSent += sent.length;
    counters.eventsFailed += failed.length;
    return reply.status(200).send({ sent_events: sent, failed_events: failed, retry_events: retry, failed_reasons: reasons });
  });
}
