import type { EngineConfig } from '../config/engines.js';
import type { Store } from '../store/types.js';
import type { TaskRegistry } from '../tasks/registry.js';
import type { Event } from '../tasks/types.js';
import type { Engine } from './engine.js';

/*
 * Several engines of the chain in one process (`engine-launcher -e fused`):
 * each keeps its queue, beats, dispatcher jobs and dead letters, but an
 * event one of them passes to a later one runs there in memory (see
 * LocalStage in ./pipeline.ts), and the input is acked only once what the
 * last of them published is confirmed. Started from the last engine to
 * the first, so what an engine hands over always finds its reader set up;
 * stopped from the first to the last, so each drains into engines still
 * running.
 */
export class FusedEngines {
  constructor(private readonly members: readonly Engine[]) {}

  async start(): Promise<void> {
    for (const e of [...this.members].reverse()) await e.start();
  }

  async stop(): Promise<void> {
    for (const e of this.members) await e.stop();
  }
}

/** One store for the whole process, opened on first use (a failed open is tried again next time), closed once at the end. */
export function sharedStore(open: () => Promise<Store>): {
  get: () => Promise<Store>;
  /** The store if it is open already, whichever engine opened it. */
  now: () => Store | undefined;
  close: () => Promise<void>;
} {
  let opened: Promise<Store> | undefined;
  let current: Store | undefined;
  return {
    get: () => {
      if (!opened) {
        const p = open();
        opened = p;
        p.then(
          (s) => {
            if (opened === p) current = s;
          },
          () => {
            if (opened === p) opened = undefined;
          },
        );
      }
      return opened;
    },
    now: () => current,
    close: async () => {
      await opened?.then((s) => s.close()).catch(() => undefined);
    },
  };
}

/**
 * The engines of a group as they run together: as many processes as the
 * most any of them asks for, and, when that is more than one, every queue
 * of the group split by the key of the first engine that orders by one
 * (axe: the entity), so that an entity's events meet the same process at
 * every step.
 */
export function fusedGroupOf(
  configs: readonly EngineConfig[],
  registry: TaskRegistry,
): { configs: EngineConfig[]; partitionBy?: (event: Event) => string } {
  if (configs.length < 2) return { configs: [...configs] };
  const numprocs = Math.max(...configs.map((c) => c.numprocs));
  const partitionBy = configs.map((c) => registry.moduleOf(c.eventProcessing ?? '')?.partition).find((p) => p !== undefined);
  return { configs: configs.map((c) => ({ ...c, numprocs })), partitionBy };
}
