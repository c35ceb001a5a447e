import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { BeatTask, DispatcherTask, EventTask, TaskModule } from './types.js';

/*
 * Tasks by dotted name. Built-in modules register at start; plugin modules
 * are the .js/.mjs files of PREFIX/lib/canopsis/plugins, each exporting a
 * TaskModule (default export or `module`).
 */

type AnyTask = EventTask | BeatTask | DispatcherTask;

export class TaskRegistry {
  private readonly tasks = new Map<string, AnyTask>();
  private readonly modules = new Map<string, TaskModule>();

  register(mod: TaskModule, origin = 'built-in'): void {
    if (this.modules.has(mod.name)) throw new Error(`task module ${mod.name} (${origin}) is already registered`);
    this.modules.set(mod.name, mod);
    const entries: Array<[string, AnyTask | undefined]> = [
      ['event_processing', mod.event_processing],
      ['beat_processing', mod.beat_processing],
      ['consume_dispatcher', mod.consume_dispatcher],
      ...Object.entries(mod.tasks ?? {}),
    ];
    for (const [fn, task] of entries) if (task) this.tasks.set(`${mod.name}.${fn}`, task);
  }

  get<T extends AnyTask>(name: string): T | undefined {
    return this.tasks.get(name) as T | undefined;
  }

  /** The module a task name belongs to (for its consume_dispatcher). */
  moduleOf(taskName: string): TaskModule | undefined {
    return this.modules.get(taskName.slice(0, taskName.lastIndexOf('.')));
  }

  names(): string[] {
    return [...this.tasks.keys()].sort();
  }
}

export class PluginError extends Error {}

export async function loadPlugins(registry: TaskRegistry, dir: string): Promise<string[]> {
  let files: string[];
  try {
    files = (await readdir(dir)).filter((f) => /\.(m?js)$/.test(f)).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const loaded: string[] = [];
  for (const f of files) {
    const file = path.join(dir, f);
    let mod: { default?: TaskModule; module?: TaskModule; dispatcher?: unknown };
    try {
      mod = (await import(pathToFileURL(file).href)) as typeof mod;
    } catch (e) {
      throw new PluginError(`${file}: cannot load (${(e as Error).message})`);
    }
    const tm = mod.default ?? mod.module;
    // A plugin file may hold an event dispatcher instead (loaded by dispatch/).
    if (!tm && mod.dispatcher) continue;
    if (!tm || typeof tm.name !== 'string')
      throw new PluginError(
        `${file}: exports no task module (export default { name: 'dotted.module', event_processing, ... }) nor an event dispatcher (export const dispatcher = { name, create })`,
      );
    registry.register(tm, file);
    loaded.push(tm.name);
  }
  return loaded;
}
