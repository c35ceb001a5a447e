import { TaskRegistry } from '../tasks/registry.js';
import { action } from './action.js';
import { axe } from './axe.js';
import { che } from './che.js';
import { cleaner } from './cleaner.js';
import { collectdgw } from './collectdgw.js';
import { eventFilter } from './event-filter.js';
import { pbehavior } from './pbehavior.js';
import { perfdata } from './perfdata.js';

/** A registry with every built-in task module. */
export function builtinRegistry(): TaskRegistry {
  const r = new TaskRegistry();
  for (const m of [cleaner, eventFilter, che, pbehavior, axe, action, perfdata, collectdgw]) r.register(m);
  return r;
}
