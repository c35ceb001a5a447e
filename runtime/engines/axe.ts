import { applyEvent, ALARM_EVENT_TYPES, onBeat, REDELIVERY } from '../alarm/apply.js';
import type { Alarm, EntityAlarms } from '../alarm/model.js';
import { entityId } from '../event/canopsis-event.js';
import type { Collection } from '../store/types.js';
import type { EngineHandle, Event, TaskModule } from '../tasks/types.js';
import { once } from '../tasks/state.js';

/*
 * axe, the alarm engine. Per entity, one document (entity_alarms) holds the
 * open alarm and is changed atomically by applyEvent; every alarm, open or
 * resolved, is also kept in `alarms` under its id for the API.
 */

export const ALARMS = 'alarms';
export const ENTITY_ALARMS = 'entity_alarms';

interface Collections {
  entity: Collection<EntityAlarms>;
  alarms: Collection<Alarm>;
}

const collections = (engine: EngineHandle): Promise<Collections> =>
  once(engine, 'axe', async () => {
    const store = await engine.store();
    const c = { entity: store.collection<EntityAlarms>(ENTITY_ALARMS), alarms: store.collection<Alarm>(ALARMS) };
    await c.entity.ensureIndex(['open']);
    for (const f of [['entity'], ['resolved', 'opened_at'], ['opened_at'], ['state.val']]) await c.alarms.ensureIndex(f);
    return c;
  });

/** The alarms collection follows entity_alarms: written after every modify, so a crash between the two heals on the next event. */
async function mirror(c: Collections, a: Alarm | null | undefined): Promise<void> {
  if (a) await c.alarms.put(a.id, a);
}

export const axe: TaskModule = {
  name: 'canopsis.axe.process',
  // One entity's events in arrival order, whatever numprocs is.
  partition: (event) => entityId(event),
  event_processing: async (engine, event: Event) => {
    if (!ALARM_EVENT_TYPES.includes(String(event.event_type))) return event;
    const c = await collections(engine);
    const s = engine.runtime.alarms;
    let outcome: ReturnType<typeof applyEvent> | undefined;
    const { doc } = await c.entity.modify(entityId(event), (cur) => {
      outcome = applyEvent(cur, event, s);
      return outcome.next === undefined || outcome.ignored === REDELIVERY ? undefined : outcome.next;
    });
    await mirror(c, doc?.current);
    const o = outcome!;
    for (const change of o.changes) {
      await engine.report('info', `alarm_${change}`, { timestamp: Number(event.timestamp), extra: { alarm: doc?.current?.id, entity: entityId(event), state: doc?.current?.state.val, status: doc?.current?.status.val } });
    }
    if (o.ignored && o.ignored !== 'state 0 and no open alarm' && !o.ignored.startsWith('event_type')) {
      await engine.report('info', 'event_ignored', { timestamp: Number(event.timestamp), reason: o.ignored, extra: { entity: entityId(event), event_type: event.event_type } });
    }
    return event;
  },
  beat_processing: async (engine) => {
    const c = await collections(engine);
    const now = Math.floor(Date.now() / 1000);
    for (const open of await c.entity.find({ open: true })) {
      let resolved: Alarm | undefined;
      let changes: string[] = [];
      const { doc } = await c.entity.modify(open.key, (cur) => {
        if (!cur) return undefined;
        const r = onBeat(cur, now, engine.runtime.alarms);
        resolved = r.resolved;
        changes = r.changes;
        return r.changes.length ? r.next : undefined;
      });
      await mirror(c, resolved ?? doc?.current);
      for (const change of changes) await engine.report('info', `alarm_${change}`, { timestamp: now, extra: { alarm: (resolved ?? doc?.current)?.id, entity: open.key } });
    }
  },
};
