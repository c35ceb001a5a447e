import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from '../log.js';
import { database, message } from './builtin.js';
import type { Dispatcher, DispatcherContext, DispatcherPlugin, DumpInfo, DumpLevel } from './types.js';

/*
 * The dispatchers an engine reports to: enabled by name in
 * [dispatchers] event_dispatchers, built in or found in the plugins
 * directory (a module exporting `dispatcher: { name, create }`). A failing
 * dispatcher is logged and counted, never thrown at the engine.
 */

export class DispatcherSet {
  readonly failures = new Map<string, number>();
  readonly dumps = new Map<string, number>();

  constructor(
    private readonly list: Dispatcher[],
    private readonly logger: Logger,
  ) {}

  get names(): string[] {
    return this.list.map((d) => d.name);
  }

  async dump(level: DumpLevel, action: string, info: Partial<DumpInfo> = {}): Promise<void> {
    const full: DumpInfo = {
      timestamp: info.timestamp ?? Math.floor(Date.now() / 1000),
      phase: info.phase ?? 'end',
      reason: info.reason ?? '',
      extra: info.extra ?? {},
    };
    await Promise.all(
      this.list.map(async (d) => {
        try {
          await d.dump(level, action, full);
          this.dumps.set(d.name, (this.dumps.get(d.name) ?? 0) + 1);
        } catch (e) {
          const n = (this.failures.get(d.name) ?? 0) + 1;
          this.failures.set(d.name, n);
          this.logger.warn({ dispatcher: d.name, action, failures: n, err: (e as Error).message }, 'event dispatcher failed');
        }
      }),
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.list.map((d) => d.close?.().catch(() => undefined)));
  }
}

async function pluginDispatchers(dir: string): Promise<Map<string, DispatcherPlugin>> {
  const out = new Map<string, DispatcherPlugin>();
  const files = await readdir(dir).catch(() => [] as string[]);
  for (const f of files.filter((x) => /\.m?js$/.test(x)).sort()) {
    const mod = (await import(pathToFileURL(path.join(dir, f)).href)) as { dispatcher?: DispatcherPlugin };
    if (mod.dispatcher?.name && typeof mod.dispatcher.create === 'function') out.set(mod.dispatcher.name, mod.dispatcher);
  }
  return out;
}

export async function loadDispatchers(names: string[], pluginsDir: string, ctx: DispatcherContext, logger: Logger): Promise<DispatcherSet> {
  const available = new Map<string, DispatcherPlugin>([
    ['database', database],
    ['message', message],
  ]);
  for (const [n, p] of await pluginDispatchers(pluginsDir)) available.set(n, p);
  const list: Dispatcher[] = [];
  for (const name of names) {
    const plugin = available.get(name);
    if (!plugin)
      throw new Error(
        `event dispatcher "${name}" not found (built in: database, message; plugins in ${pluginsDir}: ${[...available.keys()].filter((k) => k !== 'database' && k !== 'message').join(', ') || 'none'})`,
      );
    list.push(await plugin.create(ctx));
  }
  return new DispatcherSet(list, logger);
}
