import { ALARM_EVENT_TYPES, applyEvent, onBeat, REDELIVERY, triggersOf } from '../alarm/apply.js';
import { ALARMS, type Alarm, ENTITY_ALARMS, type EntityAlarms, type StoredAlarm } from '../alarm/model.js';
import { DEFAULT_RETENTION } from '../config/runtime.js';
import { pruneEventLog } from '../dispatch/retention.js';
import { durationSeconds } from '../durations.js';
import { entityId } from '../event/canopsis-event.js';
import { IDLE_RULES, type IdleCandidate, type IdleRule, idleOutcomes } from '../idle/rules.js';
import { PbehaviorOperationFailed, putOperationPbehavior } from '../pbehavior/store.js';
import { NOTHING_PRUNED, pruneBefore } from '../store/prune.js';
import type { Collection } from '../store/types.js';
import { once } from '../tasks/state.js';
import type { EngineHandle, Event, TaskContext, TaskModule } from '../tasks/types.js';
import { ENTITIES, type Entity, matchableEntity } from './che.js';

/*
 * axe, the alarm engine. Per entity, one document (entity_alarms) holds the
 * open alarm and is changed atomically by applyEvent; every alarm, open or
 * resolved, is also kept in `alarms` under its id for the API.
 *
 * Retention: resolved alarms and event_log entries older than [retention]
 * are deleted by a job on Dispatcher_axe, so once per engine type whatever
 * numprocs is. axe owns event_log's retention too: it is the engine every
 * chain has (the API reads its alarms), it already runs a beat, and it
 * writes most of the log (alarm changes); a dispatcher plugin has no beat
 * and runs in every process of every engine.
 */

// Defined with the alarm model, so that the engines reading them (action, pbehavior) do not load axe.
export { ALARMS, ENTITY_ALARMS } from '../alarm/model.js';

interface Collections {
  entity: Collection<EntityAlarms>;
  alarms: Collection<StoredAlarm>;
}

const collections = (engine: EngineHandle): Promise<Collections> =>
  once(engine, 'axe', async () => {
    const store = await engine.store();
    const c = { entity: store.collection<EntityAlarms>(ENTITY_ALARMS), alarms: store.collection<StoredAlarm>(ALARMS) };
    await c.entity.ensureIndex(['open']);
    // ['v.resolved'] alone: retention deletes by it, oldest first.
    for (const f of ALARM_INDEXES) await c.alarms.ensureIndex(f);
    return c;
  });

/** What the API filters and sorts alarms by. */
export const ALARM_INDEXES = [
  ['d'],
  ['v.resolved'],
  ['v.resolved', 't'],
  // The alarm list's default order (open alarms by time, the id breaking ties): read from the index, no sort.
  ['v.resolved', 't', 'key'],
  ['t'],
  ['v.state.val'],
  ['v.last_update_date'],
  ['timing.written'],
];

/** The alarms collection follows entity_alarms: written after every modify, so a crash between the two heals on the next event. */
async function mirror(c: Collections, a: Alarm | null | undefined): Promise<void> {
  if (!a) return;
  const { _id, ...doc } = a;
  await c.alarms.put(_id, { ...doc, timing: { ...doc.timing, written: Date.now() } });
}

/** The job on Dispatcher_axe that applies the retention settings. */
export const RETENTION_JOB = { task: 'retention' } as const;
/** Seconds between two retention jobs (the first is sent on worker 0's first beat). */
export const RETENTION_EVERY = 600;
const NEXT_RETENTION = 'axe.retention.next';

/** Worker 0 sends the retention job when it is due: one sender, so one job per period for the engine type. */
async function sendRetentionJob(engine: EngineHandle, now: number): Promise<void> {
  if (engine.worker !== 0) return;
  const next = (engine.state.get(NEXT_RETENTION) as number | undefined) ?? 0;
  if (now < next) return;
  await engine.dispatch(RETENTION_JOB);
  engine.state.set(NEXT_RETENTION, now + RETENTION_EVERY);
}

/** Deletes a bounded amount of what is past retention; sends itself again when there is more. */
async function applyRetention(engine: EngineHandle, ctx: TaskContext): Promise<void> {
  const r = engine.runtime.retention ?? DEFAULT_RETENTION;
  const now = Math.floor(Date.now() / 1000);
  const c = await collections(engine);
  const alarms = r.resolvedAlarms > 0 ? await pruneBefore(c.alarms, 'v.resolved', now - r.resolvedAlarms) : NOTHING_PRUNED;
  const log = r.eventLog > 0 ? await pruneEventLog(await engine.store(), now - r.eventLog) : NOTHING_PRUNED;
  if (alarms.deleted || log.deleted)
    ctx.logger.info(
      { resolved_alarms: alarms.deleted, event_log: log.deleted, more: alarms.more || log.more },
      'retention: deleted what is past its retention',
    );
  // The rest in a next job: the queue serves other jobs in between.
  if (alarms.more || log.more) await engine.dispatch(RETENTION_JOB);
}

/** The job on Dispatcher_axe that applies the idle rules. */
export const IDLE_JOB = { task: 'idle' } as const;
/** Seconds between two idle checks. */
export const IDLE_EVERY = 5;
const NEXT_IDLE = 'axe.idle.next';

/** Worker 0 sends the idle job when it is due (one per period for the engine type). */
async function sendIdleJob(engine: EngineHandle, now: number): Promise<void> {
  if (engine.worker !== 0) return;
  if (now < ((engine.state.get(NEXT_IDLE) as number | undefined) ?? 0)) return;
  // No rule, no job: the queue carries nothing for a platform that has none.
  const rules = await (await engine.store()).collection<IdleRule>(IDLE_RULES).count({ enabled: true });
  if (rules > 0) await engine.dispatch(IDLE_JOB);
  engine.state.set(NEXT_IDLE, now + IDLE_EVERY);
}

/**
 * Idle rules: entities silent and alarms untouched for longer than a rule
 * says. What a rule calls for is applied here as any event (axe is the
 * only writer of alarms); a pbehavior operation puts its pbehavior and
 * marks the alarm so that it is not put again.
 */
async function applyIdleRules(engine: EngineHandle, ctx: TaskContext): Promise<void> {
  const store = await engine.store();
  const rules = await store.collection<IdleRule>(IDLE_RULES).find({ enabled: true });
  if (rules.length === 0) return;
  const now = Math.floor(Date.now() / 1000);
  const shortest = (type: IdleRule['type']) =>
    Math.min(
      ...rules
        .filter((r) => r.type === type)
        .map((r) => durationSeconds(r.duration))
        .filter(Number.isFinite),
    );
  const [forEntities, forAlarms] = [shortest('entity'), shortest('alarm')];
  const entitiesC = store.collection<Entity>(ENTITIES);
  const c = await collections(engine);
  const silent = Number.isFinite(forEntities) ? await entitiesC.find({ last_event_date: { $lte: now - forEntities } }) : [];
  // Alarm rules look at every open alarm: there are far fewer than entities, and the beat reads them all anyway.
  const docs = await c.entity.find(Number.isFinite(forAlarms) ? { open: true } : { key: { $in: silent.map((e) => e.key) }, open: true });
  const open = new Map(docs.filter((d) => d.current).map((d) => [d.key, d]));
  const known = new Map(silent.map((e) => [e.key, e]));
  const missing = [...open.keys()].filter((k) => !known.has(k));
  if (missing.length) for (const e of await entitiesC.find({ key: { $in: missing } })) known.set(e.key, e);
  const candidates: IdleCandidate[] = [...new Set([...known.keys(), ...open.keys()])].map((key) => {
    const e = known.get(key);
    const d = open.get(key);
    return {
      entity: { ...matchableEntity(key, e), ...(e ? { last_event_date: e.last_event_date } : {}) },
      ...(d?.current ? { alarm: { doc: d.current, ...(d.idle_rule_apply ? { idleApplied: d.idle_rule_apply } : {}) } } : {}),
    };
  });
  const outcomes = idleOutcomes(rules, candidates, now);
  for (const o of outcomes) {
    if ('event' in o) {
      await applyAlarmEvent(engine, o.event);
      continue;
    }
    try {
      await putOperationPbehavior(store, `idle-${o.rule}-${o.entity}`, o.pbehavior, {
        entity: o.entity,
        author: 'system',
        name: `Idle rule ${o.rule}`,
        now,
      });
    } catch (e) {
      if (!(e instanceof PbehaviorOperationFailed)) throw e;
      ctx.logger.warn({ rule: o.rule, entity: o.entity, err: e.message }, 'idle rule: the pbehavior operation failed');
    }
    await c.entity.modify(o.entity, (cur) => (cur?.open ? { ...stripKey(cur), idle_rule_apply: o.apply } : undefined));
  }
  if (outcomes.length) ctx.logger.info({ applied: outcomes.length }, 'idle rules: entities silent or alarms untouched for too long');
}

const stripKey = <T extends { key: string }>(d: T): Omit<T, 'key'> => {
  const { key: _k, ...rest } = d;
  return rest;
};

/**
 * One event applied to its entity's alarm (axe is the only writer of
 * alarms), reported to the dispatchers. Answers the alarm's id and the
 * scenario triggers of what changed, for the action engine.
 */
async function applyAlarmEvent(engine: EngineHandle, event: Event): Promise<{ alarm?: string; triggers: string[] }> {
  const c = await collections(engine);
  let triggers: string[] = [];
  const s = engine.runtime.alarms;
  let outcome: ReturnType<typeof applyEvent> | undefined;
  const { doc } = await c.entity.modify(entityId(event), (cur) => {
    outcome = applyEvent(cur, event, s, { now: Math.floor(Date.now() / 1000) });
    triggers = outcome.ignored === REDELIVERY ? [] : triggersOf(cur?.current, outcome.next.current);
    return outcome.next === undefined || outcome.ignored === REDELIVERY ? undefined : outcome.next;
  });
  await mirror(c, doc?.current);
  const o = outcome!;
  for (const change of o.changes) {
    await engine.report('info', `alarm_${change}`, {
      timestamp: Number(event.timestamp),
      extra: { alarm: doc?.current?._id, entity: entityId(event), state: doc?.current?.v.state.val, status: doc?.current?.v.status.val },
    });
  }
  if (o.ignored && o.ignored !== 'state 0 and no open alarm' && !o.ignored.startsWith('event_type')) {
    await engine.report('info', 'event_ignored', {
      timestamp: Number(event.timestamp),
      reason: o.ignored,
      extra: { entity: entityId(event), event_type: event.event_type },
    });
  }
  return { ...(doc?.current ? { alarm: doc.current._id } : {}), triggers };
}

/** An event for the next engines (the action engine) about a change no event made; a broker fault only loses the trigger. */
async function emitTriggers(engine: EngineHandle, a: Alarm, triggers: string[], now: number, ctx: TaskContext): Promise<void> {
  await engine
    .emit({
      connector: a.v.connector,
      connector_name: a.v.connector_name,
      event_type: triggers.includes('resolve') ? 'resolve' : 'alarm_change',
      source_type: a.v.resource ? 'resource' : 'component',
      component: a.v.component,
      ...(a.v.resource ? { resource: a.v.resource } : {}),
      timestamp: now,
      initiator: 'system',
      output: '',
      alarm_id: a._id,
      alarm_triggers: triggers,
    })
    .catch((e: Error) => ctx.logger.warn({ err: e.message, alarm: a._id, triggers }, 'alarm triggers not sent to the next engines'));
}

export const axe: TaskModule = {
  name: 'canopsis.axe.process',
  // One entity's events in arrival order, whatever numprocs is.
  partition: (event) => entityId(event),
  event_processing: async (engine, event: Event) => {
    if (!ALARM_EVENT_TYPES.includes(String(event.event_type))) return event;
    const { alarm, triggers } = await applyAlarmEvent(engine, event);
    // What the action engine runs scenarios on; an event that changed nothing goes on as it came.
    return triggers.length ? { ...event, alarm_id: alarm, alarm_triggers: triggers } : event;
  },
  beat_processing: async (engine, ctx) => {
    const now = Math.floor(Date.now() / 1000);
    await sendRetentionJob(engine, now).catch((e: Error) =>
      ctx.logger.warn({ err: e.message }, 'retention job not sent; the next beat tries again'),
    );
    await sendIdleJob(engine, now).catch((e: Error) => ctx.logger.warn({ err: e.message }, 'idle job not sent; the next beat tries again'));
    const c = await collections(engine);
    for (const open of await c.entity.find({ open: true })) {
      let resolved: Alarm | undefined;
      let changes: string[] = [];
      let triggers: string[] = [];
      const { doc } = await c.entity.modify(open.key, (cur) => {
        if (!cur) return undefined;
        const r = onBeat(cur, now, engine.runtime.alarms);
        resolved = r.resolved;
        changes = r.changes;
        triggers = r.resolved ? ['resolve'] : triggersOf(cur.current, r.next.current);
        return r.changes.length ? r.next : undefined;
      });
      await mirror(c, resolved ?? doc?.current);
      const changed = resolved ?? doc?.current;
      // What time alone did (a resolution, a snooze's end) can trigger scenarios too: told to the next engines.
      if (changed && changes.length && triggers.length) await emitTriggers(engine, changed, triggers, now, ctx);
      for (const change of changes)
        await engine.report('info', `alarm_${change}`, {
          timestamp: now,
          extra: { alarm: (resolved ?? doc?.current)?._id, entity: open.key },
        });
    }
  },
  consume_dispatcher: async (engine, job, ctx) => {
    if ((job as { task?: unknown } | null)?.task === RETENTION_JOB.task) return applyRetention(engine, ctx);
    if ((job as { task?: unknown } | null)?.task === IDLE_JOB.task) return applyIdleRules(engine, ctx);
    ctx.logger.warn({ job }, 'axe: unknown dispatcher job, ignored');
  },
};
