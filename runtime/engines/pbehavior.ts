import { ENTITY_ALARMS, type EntityAlarms } from '../alarm/model.js';
import { PBEHAVIORS } from '../pbehavior/model.js';
import { entityOfEvent } from '../pbehavior/pattern.js';
import { resolve, samePbehavior } from '../pbehavior/resolve.js';
import { type Loaded, loadPbehaviors } from '../pbehavior/store.js';
import { cached } from '../store/versions.js';
import type { EngineHandle, Event, TaskContext, TaskModule } from '../tasks/types.js';
import { ENTITIES, type Entity, matchableEntity } from './che.js';

/*
 * pbehavior, between che and axe as in Canopsis 4: every check event leaves
 * it with `pbehavior_info`, the pbehavior in force on its entity now (null
 * for none), which axe applies. Time moves entities in and out of
 * pbehaviors with no event: worker 0 sends a `recompute` job to
 * Dispatcher_pbehavior on its beat, one process of the engine type takes it
 * and emits pbhenter/pbhleave events to axe for every open alarm whose
 * pbehavior changed. The documents are cached until the API changes one
 * (config_versions), and the API sends a recompute job after a change.
 */

export const RECOMPUTE_JOB = { task: 'recompute' } as const;
/** Seconds between two recompute jobs. */
export const RECOMPUTE_EVERY = 60;
/** Seconds the documents are kept at most; an API change is seen at once (config_versions). */
const RELOAD = 300;
const NEXT_RECOMPUTE = 'pbehavior.recompute.next';

/**
 * The engine's clock. CPS_CLOCK_OFFSET (seconds, tests only) moves it, so
 * that a test can see a weekly window open and close without waiting.
 */
export const pbehaviorNow = () => Math.floor(Date.now() / 1000) + (Number(process.env.CPS_CLOCK_OFFSET) || 0);

async function loaded(engine: EngineHandle): Promise<Loaded> {
  const store = await engine.store();
  return cached(engine.state, PBEHAVIORS, store, () => loadPbehaviors(store), RELOAD);
}

async function recompute(engine: EngineHandle, ctx: TaskContext): Promise<void> {
  const data = await loaded(engine);
  const store = await engine.store();
  const now = pbehaviorNow();
  const open = await store.collection<EntityAlarms>(ENTITY_ALARMS).find({ open: true });
  const entities = await store.collection<Entity>(ENTITIES).find({ key: { $in: open.map((d) => d.key) } });
  const byId = new Map(entities.map((e) => [e.key, e]));
  let sent = 0;
  for (const doc of open) {
    const a = doc.current;
    if (!a) continue;
    const info = resolve(data.pbehaviors, matchableEntity(doc.key, byId.get(doc.key)), now, data);
    if (samePbehavior(a.v.pbehavior_info, info)) continue;
    await engine.emit({
      connector: a.v.connector,
      connector_name: a.v.connector_name,
      event_type: info ? 'pbhenter' : 'pbhleave',
      source_type: a.v.resource ? 'resource' : 'component',
      component: a.v.component,
      ...(a.v.resource ? { resource: a.v.resource } : {}),
      timestamp: now,
      author: 'system',
      initiator: 'system',
      pbehavior_info: info ?? null,
      output: '',
    });
    sent++;
  }
  if (sent) ctx.logger.info({ alarms: sent }, 'pbehavior: alarms entering or leaving a pbehavior');
}

export const pbehavior: TaskModule = {
  name: 'canopsis.pbehavior.process',
  event_processing: async (engine, event: Event) => {
    if (event.event_type !== 'check') return event;
    const data = await loaded(engine);
    const info = resolve(data.pbehaviors, entityOfEvent(event), pbehaviorNow(), data);
    return { ...event, pbehavior_info: info ?? null };
  },
  beat_processing: async (engine, ctx) => {
    if (engine.worker !== 0) return;
    const now = Date.now() / 1000;
    if (now < ((engine.state.get(NEXT_RECOMPUTE) as number | undefined) ?? 0)) return;
    try {
      await engine.dispatch(RECOMPUTE_JOB);
      engine.state.set(NEXT_RECOMPUTE, now + RECOMPUTE_EVERY);
    } catch (e) {
      ctx.logger.warn({ err: (e as Error).message }, 'recompute job not sent; the next beat tries again');
    }
  },
  consume_dispatcher: async (engine, job, ctx) => {
    if ((job as { task?: unknown } | null)?.task === RECOMPUTE_JOB.task) return recompute(engine, ctx);
    ctx.logger.warn({ job }, 'pbehavior: unknown dispatcher job, ignored');
  },
};
