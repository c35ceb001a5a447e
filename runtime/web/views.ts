import { randomUUID } from 'node:crypto';
import type { StoredAlarm } from '../alarm/model.js';
import type { Entity } from '../engines/che.js';
import type { Stored } from '../store/types.js';

/*
 * Stored documents -> the JSON Canopsis v4's API answers with
 * (capensis/canopsis release-22.10, lib/api/alarm/models.go Alarm and
 * AlarmValue, lib/api/entity/models.go Entity; the expected bodies of
 * tests/functional/features/api/core/alarm_get.feature and entity_get.feature).
 * Pure: the clock is passed in for the durations of open alarms.
 */

/** The entity as it appears in an alarm and in /entities. */
export function entityView(id: string, e: Entity | undefined): Record<string, unknown> {
  if (!e) {
    // An alarm whose entity che has not written (a store restored from an older backup): what the id says.
    return {
      _id: id,
      name: id,
      type: id.includes('/') ? 'resource' : 'component',
      enabled: true,
      category: null,
      impact_level: 1,
      infos: {},
    };
  }
  const connectorType = e.type === 'connector' ? id.split('/')[0] : undefined;
  return {
    _id: id,
    name: e.name,
    description: e.description ?? '',
    enabled: e.enabled !== false,
    category: null,
    impact_level: e.impact_level ?? 1,
    infos: e.infos ?? {},
    type: e.type,
    ...(e.connector ? { connector: e.connector } : {}),
    ...(e.component ? { component: e.component } : {}),
    ...(connectorType ? { connector_type: connectorType } : {}),
    created: e.created,
    ...(e.last_event_date !== undefined ? { last_event_date: e.last_event_date } : {}),
  };
}

export interface AlarmViewOptions {
  now: number;
  /** Keep v.steps (GET /alarms/{id} and with_steps=true); lists leave them out as Canopsis does. */
  steps: boolean;
}

type Durations = Record<'duration' | 'current_state_duration' | 'active_duration', unknown>;

/** An open alarm's durations grow with the clock; a resolved one's were stored when it resolved. */
function durationsAt(v: StoredAlarm['v'], now: number): Durations {
  const open = v.resolved === undefined;
  const duration = open ? now - v.creation_date : (v.duration ?? 0);
  return {
    duration,
    current_state_duration: open ? now - v.state.t : (v.current_state_duration ?? 0),
    active_duration: open
      ? duration - v.inactive_duration - (v.inactive_start !== undefined ? now - v.inactive_start : 0)
      : (v.active_duration ?? duration),
  };
}

function view(a: Stored<StoredAlarm>, entity: Entity | undefined, steps: boolean, d: Durations): Record<string, unknown> {
  const { key, timing: _timing, v, ...rest } = a;
  const { steps: all, ...value } = v;
  const ent = entityView(a.d, entity);
  return {
    _id: key,
    ...rest,
    entity: ent,
    infos: {},
    impact_state: v.state.val * Number(ent.impact_level ?? 1),
    v: {
      ...value,
      ...(steps ? { steps: all } : {}),
      infos_rule_version: {},
      duration: d.duration,
      current_state_duration: d.current_state_duration,
      active_duration: d.active_duration,
      pbh_inactive_duration: v.pbh_inactive_duration ?? 0,
    },
  };
}

/** An alarm as GET /api/v4/alarms returns it: the entity joined, durations of an open alarm computed now. */
export function alarmView(a: Stored<StoredAlarm>, entity: Entity | undefined, o: AlarmViewOptions): Record<string, unknown> {
  return view(a, entity, o.steps, durationsAt(a.v, o.now));
}

/*
 * alarmView as JSON text, pre-serialised: the text of an alarm is the same
 * from one request to the next but for the durations of an open one, so it
 * is kept, cut where they go, for as long as its document and entity are
 * the same objects (the shared reads of the store). The durations are
 * written in at each call: the text is the one JSON.stringify gives.
 */

const NONCE = randomUUID();
/** A duration stands as this string in the text to cut: no stored text holds a NUL then this process' nonce. */
const mark = (field: keyof Durations) => `\u0000${NONCE}:${field}`;
/** The same in JSON text, quotes included: "\u0000<nonce>:<field>". */
const MARKED = new RegExp(`"\\\\u0000${NONCE}:(\\w+)"`, 'g');

interface Cut {
  entity: Entity | undefined;
  steps: boolean;
  /** The text around the durations, and the duration that goes after each piece but the last. */
  pieces: string[];
  fields: Array<keyof Durations>;
}

const cuts = new WeakMap<Stored<StoredAlarm>, Cut>();

function cut(a: Stored<StoredAlarm>, entity: Entity | undefined, steps: boolean): Cut {
  const open = a.v.resolved === undefined;
  const d = open
    ? { duration: mark('duration'), current_state_duration: mark('current_state_duration'), active_duration: mark('active_duration') }
    : durationsAt(a.v, 0);
  // The text, then the name of a duration, then text...: split keeps what the pattern captures.
  const split = JSON.stringify(view(a, entity, steps, d)).split(MARKED);
  return {
    entity,
    steps,
    pieces: split.filter((_, i) => i % 2 === 0),
    fields: split.filter((_, i) => i % 2 === 1) as Array<keyof Durations>,
  };
}

/** JSON.stringify(alarmView(a, entity, o)), with the text that does not depend on the clock made once per document. */
export function alarmViewJson(a: Stored<StoredAlarm>, entity: Entity | undefined, o: AlarmViewOptions): string {
  // A document of a plain read is new at each request: cutting its text would be work for nothing.
  if (!Object.isFrozen(a)) return JSON.stringify(alarmView(a, entity, o));
  const known = cuts.get(a);
  const c = known && known.entity === entity && known.steps === o.steps ? known : cut(a, entity, o.steps);
  if (c !== known) cuts.set(a, c);
  if (c.fields.length === 0) return c.pieces[0]!;
  const d = durationsAt(a.v, o.now);
  let out = c.pieces[0]!;
  for (let i = 0; i < c.fields.length; i++) out += JSON.stringify(d[c.fields[i]!]) + c.pieces[i + 1]!;
  return out;
}
