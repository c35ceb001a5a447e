import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { BeatTask, DispatcherTask, EventTask, TaskModule } from './types.js';

/*
 * Tasks by dotted name. Built-in modules register at start; plugin modules
 * are the .js/.mjs files of PREFIX/lib/canopsis/plugins, each exporting a
 * TaskModule (default export or `module`). A module registered by name
 * only (registerLazy) is loaded the first time one of its tasks is looked
 * up: an engine process loads the code of its own tasks, not the others'
 * (and not what they import: the store driver, HTTP client, rrule...).
 */

type AnyTask = EventTask | BeatTask | DispatcherTask;

export class TaskRegistry {
  private readonly tasks = new Map<string, AnyTask>();
  private readonly modules = new Map<string, TaskModule>();
  /** Modules known by name, not loaded yet. */
  private readonly deferred = new Map<string, () => TaskModule>();

  register(mod: TaskModule, origin = 'built-in'): void {
    this.reserve(mod.name, origin);
    this.add(mod);
  }

  /** Registers a module by name; `load` (synchronous) runs on the first lookup of one of its tasks. */
  registerLazy(name: string, load: () => TaskModule, origin = 'built-in'): void {
    this.reserve(name, origin);
    this.deferred.set(name, () => {
      const mod = load();
      if (mod.name !== name) throw new Error(`task module ${name} (${origin}) loads as ${mod.name}`);
      return mod;
    });
  }

  get<T extends AnyTask>(name: string): T | undefined {
    this.loadFor(name);
    return this.tasks.get(name) as T | undefined;
  }

  /** The module a task name belongs to (for its consume_dispatcher). */
  moduleOf(taskName: string): TaskModule | undefined {
    this.loadFor(taskName);
    return this.modules.get(taskName.slice(0, taskName.lastIndexOf('.')));
  }

  /** Every task name: loads every module (said when a task is unknown, before stopping). */
  names(): string[] {
    for (const name of [...this.deferred.keys()]) this.load(name);
    return [...this.tasks.keys()].sort();
  }

  private reserve(name: string, origin: string): void {
    if (this.modules.has(name) || this.deferred.has(name)) throw new Error(`task module ${name} (${origin}) is already registered`);
  }

  private add(mod: TaskModule): void {
    this.modules.set(mod.name, mod);
    const entries: Array<[string, AnyTask | undefined]> = [
      ['event_processing', mod.event_processing],
      ['beat_processing', mod.beat_processing],
      ['consume_dispatcher', mod.consume_dispatcher],
      ...Object.entries(mod.tasks ?? {}),
    ];
    for (const [fn, task] of entries) if (task) this.tasks.set(`${mod.name}.${fn}`, task);
  }

  /** Loads the deferred module a task name may belong to (a task key of `tasks` may hold dots). */
  private loadFor(taskName: string): void {
    for (const name of [...this.deferred.keys()]) if (taskName.startsWith(`${name}.`)) this.load(name);
  }

  private load(name: string): void {
    const load = this.deferred.get(name);
    if (!load) return;
    const mod = load();
    this.deferred.delete(name);
    this.add(mod);
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
