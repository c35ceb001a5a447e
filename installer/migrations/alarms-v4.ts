import { createHash } from 'node:crypto';
import type { Alarm, AlarmValue, Step, StepType, StoredAlarm } from '../../runtime/alarm/model.js';
import type { Filter, Store } from '../../runtime/store/types.js';

/*
 * 0.4.0 stores alarms in Canopsis v4's shape (runtime/alarm/model.ts);
 * entities get Canopsis' description, infos and impact_level, and
 * connector entities are named by their connector_name, as Canopsis does. This
 * is the reshaping both ways: up for an update from 0.3.0, down for a
 * rollback or a downgrade. Ids do not change, so a link or a script holding
 * an alarm id keeps working; alarms opened from 0.4.0 on get UUIDs.
 */

/** An alarm as 0.3.0 stored it. */
export interface AlarmV3 {
  id: string;
  entity: string;
  connector: string;
  connector_name: string;
  component: string;
  resource?: string;
  opened_at: number;
  last_update: number;
  last_event: number;
  events_count: number;
  output: string;
  state: { val: number; t: number; locked: boolean };
  status: { val: number; t: number };
  state_changes: number[];
  non_ok_since: number;
  back_to_ok?: number;
  ack?: { author: string; message: string; t: number };
  cancel?: { author: string; message: string; t: number };
  snooze?: { author: string; until: number; t: number };
  ticket?: { author: string; value: string; t: number; type: 'declareticket' | 'assocticket' };
  steps: Array<{ type: string; t: number; author: string; message: string; val?: number }>;
  resolved: number | null;
}

interface EntityAlarmsAny {
  current: Record<string, unknown> | null;
}

const stepOf = (_t: StepType, t: number, a: string, m: string, val = 0): Step => ({ _t, t, a, m, val, user_id: '', initiator: 'external' });

/** The display name an alarm of 0.3.0 gets: Canopsis' XX-XX-XX scheme, fixed by its id. */
const displayName = (id: string) => {
  const h = createHash('sha256').update(id).digest();
  const l = (i: number) => String.fromCharCode(65 + (h[i]! % 26));
  return `${l(0)}${l(1)}-${l(2)}${l(3)}-${l(4)}${l(5)}`;
};

export function alarmUp(old: AlarmV3): Alarm {
  const author = `${old.connector}.${old.connector_name}`;
  const steps = old.steps.filter((s) => s.type !== 'resolve').map((s) => stepOf(s.type as StepType, s.t, s.author, s.message, s.val ?? 0));
  const last = (types: string[], val: number) => [...steps].reverse().find((s) => types.includes(s._t) && s.val === val);
  const state =
    last(old.state.locked ? ['changestate'] : ['stateinc', 'statedec', 'changestate'], old.state.val) ??
    stepOf(old.state.locked ? 'changestate' : 'stateinc', old.state.t, author, old.output, old.state.val);
  const status = last(['statusinc', 'statusdec'], old.status.val) ?? stepOf('statusinc', old.status.t, author, old.output, old.status.val);
  const v: AlarmValue = {
    state: { ...state, _t: old.state.locked ? 'changestate' : state._t === 'changestate' ? 'stateinc' : state._t },
    status,
    ...(old.ack ? { ack: stepOf('ack', old.ack.t, old.ack.author, old.ack.message) } : {}),
    ...(old.cancel ? { canceled: stepOf('cancel', old.cancel.t, old.cancel.author, old.cancel.message) } : {}),
    ...(old.snooze ? { snooze: stepOf('snooze', old.snooze.t, old.snooze.author, '', old.snooze.until) } : {}),
    ...(old.ticket
      ? { ticket: { _t: old.ticket.type, t: old.ticket.t, a: old.ticket.author, user_id: '', m: old.ticket.value, val: old.ticket.value } }
      : {}),
    steps,
    component: old.component,
    connector: old.connector,
    connector_name: old.connector_name,
    ...(old.resource !== undefined ? { resource: old.resource } : {}),
    creation_date: old.opened_at,
    activation_date: old.opened_at,
    display_name: displayName(old.id),
    initial_output: old.output,
    output: old.output,
    initial_long_output: '',
    long_output: '',
    long_output_history: [''],
    last_update_date: old.last_update,
    last_event_date: old.last_event,
    parents: [],
    children: [],
    state_changes_since_status_update: 0,
    total_state_changes: steps.filter((s) => s._t === 'stateinc' || s._t === 'statedec').length,
    events_count: old.events_count,
    infos: {},
    snooze_duration: 0,
    inactive_duration: 0,
  };
  if (old.resolved !== null && old.resolved !== undefined) {
    v.resolved = old.resolved;
    v.duration = old.resolved - old.opened_at;
    v.current_state_duration = old.resolved - old.state.t;
    v.active_duration = v.duration;
  }
  return {
    _id: old.id,
    t: old.opened_at,
    d: old.entity,
    tags: [],
    v,
    timing: {
      state_changes: old.state_changes,
      non_ok_since: old.non_ok_since,
      ...(old.back_to_ok !== undefined ? { back_to_ok: old.back_to_ok } : {}),
    },
  };
}

export function alarmDown(a: Alarm): AlarmV3 {
  const v = a.v;
  const steps: AlarmV3['steps'] = v.steps
    .filter((s) => s._t !== 'statecounter')
    .map((s) => ({
      type: s._t,
      t: s.t,
      author: s.a,
      message: s.m,
      ...(s.val !== 0 || /^state|^status|changestate/.test(s._t) ? { val: s.val } : {}),
    }));
  if (v.resolved !== undefined) steps.push({ type: 'resolve', t: v.resolved, author: 'axe', message: '' });
  return {
    id: a._id,
    entity: a.d,
    connector: v.connector,
    connector_name: v.connector_name,
    component: v.component,
    ...(v.resource !== undefined ? { resource: v.resource } : {}),
    opened_at: v.creation_date,
    last_update: v.last_update_date,
    last_event: v.last_event_date,
    events_count: v.events_count,
    output: v.output,
    state: { val: v.state.val, t: v.state.t, locked: v.state._t === 'changestate' },
    status: { val: v.status.val, t: v.status.t },
    state_changes: a.timing?.state_changes ?? [v.state.t],
    non_ok_since: a.timing?.non_ok_since ?? v.creation_date,
    ...(a.timing?.back_to_ok !== undefined ? { back_to_ok: a.timing.back_to_ok } : {}),
    ...(v.ack ? { ack: { author: v.ack.a, message: v.ack.m, t: v.ack.t } } : {}),
    ...(v.canceled ? { cancel: { author: v.canceled.a, message: v.canceled.m, t: v.canceled.t } } : {}),
    ...(v.snooze ? { snooze: { author: v.snooze.a, until: v.snooze.val, t: v.snooze.t } } : {}),
    ...(v.ticket ? { ticket: { author: v.ticket.a, value: v.ticket.val, t: v.ticket.t, type: v.ticket._t } } : {}),
    steps,
    resolved: v.resolved ?? null,
  };
}

/** Rewrites each document `match` selects with `fn`, each atomically (engines may write meanwhile); `fn` undefined leaves it. */
async function reshape<T extends object>(
  store: Store,
  name: string,
  match: Filter,
  fn: (key: string, doc: T) => T | undefined,
): Promise<void> {
  const c = store.collection<T>(name);
  let after = '';
  for (;;) {
    // By key, from where the last batch ended: a document fn leaves as it is is not read again.
    const batch = await c.find({ ...match, key: { $gt: after } }, { sort: [['key', 1]], limit: 500 });
    if (batch.length === 0) return;
    for (const d of batch) {
      await c.modify(d.key, (cur) => {
        if (!cur) return undefined;
        const { key, ...doc } = cur;
        return fn(key, doc as T);
      });
    }
    after = batch[batch.length - 1]!.key;
  }
}

const storedOf = (a: Alarm): StoredAlarm => {
  const { _id: _drop, ...rest } = a;
  return rest;
};

export async function alarmsToV4(store: Store): Promise<void> {
  await reshape<AlarmV3 | StoredAlarm>(store, 'alarms', { opened_at: { $exists: true } }, (key, d) =>
    'opened_at' in d ? storedOf(alarmUp({ ...d, id: key })) : undefined,
  );
  await reshape<EntityAlarmsAny>(store, 'entity_alarms', { 'current.opened_at': { $exists: true } }, (_k, d) =>
    d.current && 'opened_at' in d.current
      ? { ...d, current: alarmUp(d.current as unknown as AlarmV3) as unknown as Record<string, unknown> }
      : undefined,
  );
  // Canopsis names a connector entity by its connector_name (its id stays connector/connector_name),
  // and every entity has a description, infos and an impact level.
  await reshape<EntityAny>(store, 'entities', { impact_level: { $exists: false } }, (key, d) => ({
    ...d,
    ...(d.type === 'connector' && d.name === key && key.includes('/') ? { name: key.slice(key.indexOf('/') + 1) } : {}),
    description: d.description ?? '',
    infos: d.infos ?? {},
    impact_level: d.impact_level ?? 1,
  }));
}

interface EntityAny {
  type?: string;
  name?: string;
  description?: string;
  infos?: object;
  impact_level?: number;
}

export async function alarmsFromV4(store: Store): Promise<void> {
  await reshape<AlarmV3 | StoredAlarm>(store, 'alarms', { v: { $exists: true } }, (key, d) =>
    'v' in d ? (alarmDown({ ...(d as StoredAlarm), _id: key }) as unknown as StoredAlarm) : undefined,
  );
  await reshape<EntityAlarmsAny>(store, 'entity_alarms', { 'current.v': { $exists: true } }, (_k, d) =>
    d.current && 'v' in d.current
      ? { ...d, current: alarmDown(d.current as unknown as Alarm) as unknown as Record<string, unknown> }
      : undefined,
  );
  await reshape<EntityAny>(store, 'entities', { impact_level: { $exists: true } }, (key, d) => {
    const { description: _d, infos: _i, impact_level: _l, ...rest } = d;
    return d.type === 'connector' ? { ...rest, name: key } : rest;
  });
}
