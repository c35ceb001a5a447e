import type { Collection } from '../store/types.js';
import type { EngineHandle, Event, TaskModule } from '../tasks/types.js';
import { once } from '../tasks/state.js';

/*
 * che, the context engine: every event makes its connector, component and
 * resource known, with first and last seen and their links. The event
 * passes on unchanged (to axe, as next= or the systemd drop-in says).
 */

export const ENTITIES = 'entities';

export interface Entity {
  type: 'connector' | 'component' | 'resource';
  name: string;
  first_seen: number;
  last_seen: number;
  connector?: string;
  component?: string;
  /** Ids of the entities this one depends on (resource -> component -> connector). */
  depends: string[];
}

const entities = (engine: EngineHandle): Promise<Collection<Entity>> =>
  once(engine, ENTITIES, async () => {
    const c = (await engine.store()).collection<Entity>(ENTITIES);
    await c.ensureIndex(['type']);
    return c;
  });

const touch = (seen: number, fresh: Omit<Entity, 'first_seen' | 'last_seen'>) => (cur: (Entity & { key: string }) | undefined): Entity | undefined => {
  if (!cur) return { ...fresh, first_seen: seen, last_seen: seen };
  // Unchanged links and an older event: nothing to write.
  if (cur.last_seen >= seen) return undefined;
  return { ...cur, ...fresh, first_seen: Math.min(cur.first_seen, seen), last_seen: seen };
};

export const che: TaskModule = {
  name: 'canopsis.che.process',
  event_processing: async (engine, event: Event) => {
    const c = await entities(engine);
    const seen = Number(event.timestamp) || Math.floor(Date.now() / 1000);
    const connector = `${String(event.connector)}/${String(event.connector_name)}`;
    const component = String(event.component);
    await c.modify(connector, touch(seen, { type: 'connector', name: connector, depends: [] }));
    await c.modify(component, touch(seen, { type: 'component', name: component, connector, depends: [connector] }));
    if (event.source_type === 'resource') {
      const id = `${String(event.resource)}/${component}`;
      await c.modify(id, touch(seen, { type: 'resource', name: String(event.resource), component, connector, depends: [component] }));
    }
    return event;
  },
};
