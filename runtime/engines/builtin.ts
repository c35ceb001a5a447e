import { createRequire } from 'node:module';
import { TaskRegistry } from '../tasks/registry.js';
import type { TaskModule } from '../tasks/types.js';

/*
 * The built-in task modules, each loaded only when a task of it is looked
 * up: an engine process holds its own module's code and what that imports,
 * not every engine's (bench/memory.ts measures what this saves).
 * require() of these ES modules is synchronous (Node >= 22.12: they have
 * no top-level await), so the lookup keeps its synchronous signature.
 */

const load = createRequire(import.meta.url);

const BUILTIN: Record<string, () => TaskModule> = {
  'canopsis.cleaner.process': () => (load('./cleaner.js') as typeof import('./cleaner.js')).cleaner,
  'canopsis.event_filter.process': () => (load('./event-filter.js') as typeof import('./event-filter.js')).eventFilter,
  'canopsis.che.process': () => (load('./che.js') as typeof import('./che.js')).che,
  'canopsis.pbehavior.process': () => (load('./pbehavior.js') as typeof import('./pbehavior.js')).pbehavior,
  'canopsis.axe.process': () => (load('./axe.js') as typeof import('./axe.js')).axe,
  'canopsis.action.process': () => (load('./action.js') as typeof import('./action.js')).action,
  'canopsis.perfdata.process': () => (load('./perfdata.js') as typeof import('./perfdata.js')).perfdata,
  'canopsis.collectdgw.process': () => (load('./collectdgw.js') as typeof import('./collectdgw.js')).collectdgw,
};

/** A registry with every built-in task module, each loaded on first use. */
export function builtinRegistry(): TaskRegistry {
  const r = new TaskRegistry();
  for (const [name, module] of Object.entries(BUILTIN)) r.registerLazy(name, module);
  return r;
}
