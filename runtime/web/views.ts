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

/** An alarm as GET /api/v4/alarms returns it: the entity joined, durations of an open alarm computed now. */
export function alarmView(a: Stored<StoredAlarm>, entity: Entity | undefined, o: AlarmViewOptions): Record<string, unknown> {
  const { key, timing: _timing, v, ...rest } = a;
  const { steps, ...value } = v;
  const open = v.resolved === undefined;
  const duration = open ? o.now - v.creation_date : (v.duration ?? 0);
  const ent = entityView(a.d, entity);
  return {
    _id: key,
    ...rest,
    entity: ent,
    infos: {},
    impact_state: v.state.val * Number(ent.impact_level ?? 1),
    v: {
      ...value,
      ...(o.steps ? { steps } : {}),
      infos_rule_version: {},
      duration,
      current_state_duration: open ? o.now - v.state.t : (v.current_state_duration ?? 0),
      active_duration: open
        ? duration - v.inactive_duration - (v.inactive_start !== undefined ? o.now - v.inactive_start : 0)
        : (v.active_duration ?? duration),
      pbh_inactive_duration: v.pbh_inactive_duration ?? 0,
    },
  };
}
