import { randomUUID } from 'node:crypto';
import type { Collection } from '../store/types.js';
import type { DispatcherPlugin } from './types.js';

/* The two built-in dispatchers: `database` (on by default) and `message` (opt-in). */

export const EVENT_LOG = 'event_log';

export const database: DispatcherPlugin = {
  name: 'database',
  create: (ctx) => {
    // The store is opened on the first dump, not at start: engines that never report never open it.
    // A failed open (the store unavailable) is not remembered: the next dump tries again.
    let ready: Promise<Collection<Record<string, unknown>>> | undefined;
    const log = () => {
      if (!ready) {
        const opening = ctx.store().then(async (s) => {
          const c = s.collection<Record<string, unknown>>(EVENT_LOG);
          await c.ensureIndex(['timestamp']);
          return c;
        });
        ready = opening;
        opening.catch(() => {
          if (ready === opening) ready = undefined;
        });
      }
      return ready;
    };
    return {
      name: 'database',
      dump: async (level, action, info) => {
        await (await log()).put(randomUUID(), { level, action, engine: ctx.engine, worker: ctx.worker, ...info });
      },
    };
  },
};

export const message: DispatcherPlugin = {
  name: 'message',
  create: (ctx) => ({
    name: 'message',
    dump: async (level, action, info) => {
      const body = Buffer.from(JSON.stringify({ level, action, engine: ctx.engine, worker: ctx.worker, ...info }));
      await ctx.publish(ctx.alertsExchange, `${ctx.engine}.${action}.${level}`, body);
    },
  }),
};
