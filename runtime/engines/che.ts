import type { MatchableEntity } from '../pbehavior/pattern.js';
import type { Collection } from '../store/types.js';
import { once } from '../tasks/state.js';
import type { EngineHandle, Event, TaskModule } from '../tasks/types.js';

/*
 * che, the context engine: every event makes its connector, component and
 * resource known, with when it was first and last seen (Canopsis v4's
 * created and last_event_date) and their links. The event
 * passes on unchanged (to axe, as next= or the systemd drop-in says).
 */

export const ENTITIES = 'entities';

export interface Entity {
  type: 'connector' | 'component' | 'resource' | 'service';
  name: string;
  /** Timestamp of the first event that named it. */
  created: number;
  /** Timestamp of the latest event that named it. */
  last_event_date: number;
  enabled: boolean;
  connector?: string;
  component?: string;
  /** Ids of the entities this one depends on (resource -> component -> connector). */
  depends: string[];
  /** Canopsis' entity fields nothing here sets yet, stored with their defaults (types.Entity). */
  description?: string;
  infos?: Record<string, { name: string; description: string; value: unknown }>;
  impact_level?: number;
}

/** A stored entity as a pattern sees it (pbehaviors, idle rules); what the id says when che has not written it. */
export const matchableEntity = (id: string, e: Entity | undefined): MatchableEntity => ({
  _id: id,
  name: e?.name ?? id,
  type: e?.type ?? (id.includes('/') ? 'resource' : 'component'),
  ...(e?.connector ? { connector: e.connector } : {}),
  ...(e?.component ? { component: e.component } : {}),
  ...(e?.infos ? { infos: e.infos } : {}),
});

/** What a new entity holds besides what its event says: Canopsis' defaults. */
export const ENTITY_DEFAULTS = { description: '', infos: {}, impact_level: 1 } as const;

const entities = (engine: EngineHandle): Promise<Collection<Entity>> =>
  once(engine, ENTITIES, async () => {
    const c = (await engine.store()).collection<Entity>(ENTITIES);
    await c.ensureIndex(['type']);
    return c;
  });

const touch =
  (seen: number, fresh: Omit<Entity, 'created' | 'last_event_date' | 'enabled'>) =>
  (cur: (Entity & { key: string }) | undefined): Entity | undefined => {
    if (!cur) return { ...fresh, ...ENTITY_DEFAULTS, created: seen, last_event_date: seen, enabled: true };
    // Unchanged links and an older event: nothing to write.
    if (cur.last_event_date >= seen) return undefined;
    const { key: _key, ...doc } = cur;
    return { ...doc, ...fresh, created: Math.min(cur.created ?? seen, seen), last_event_date: seen };
  };

export const che: TaskModule = {
  name: 'canopsis.che.process',
  event_processing: async (engine, event: Event) => {
    const c = await entities(engine);
    const seen = Number(event.timestamp) || Math.floor(Date.now() / 1000);
    const connector = `${String(event.connector)}/${String(event.connector_name)}`;
    const component = String(event.component);
    // Canopsis names a connector entity by its connector_name; the id says which connector it is.
    await c.modify(connector, touch(seen, { type: 'connector', name: String(event.connector_name), depends: [] }));
    // An event about the connector itself names no component; a service's events name the service as component.
    if (event.source_type === 'connector') return event;
    if (event.source_type === 'service') {
      await c.modify(component, touch(seen, { type: 'service', name: component, connector, depends: [connector] }));
      return event;
    }
    await c.modify(component, touch(seen, { type: 'component', name: component, connector, depends: [connector] }));
    if (event.source_type === 'resource') {
      const id = `${String(event.resource)}/${component}`;
      await c.modify(id, touch(seen, { type: 'resource', name: String(event.resource), component, connector, depends: [component] }));
    }
    return event;
  },
};
