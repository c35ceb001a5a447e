import { checkGroups, type FieldDef, groupsMatch, kindOfFieldType, type PatternCondition } from '../pattern/conditions.js';
import type { StoredAlarm } from './model.js';

/*
 * Alarm patterns as Canopsis v4 matches them (capensis/canopsis
 * release-22.10, lib/canopsis/pattern/alarm.go: getAlarmStringField,
 * getAlarmIntField, getAlarmRefField, getAlarmTimeField,
 * getAlarmDurationField, getAlarmStringArrayField, v.infos.<name>): the
 * fields a scenario, an idle rule or the alarm list may select alarms by.
 * A field read several ways (v.activation_date: set or not, or a time) is
 * read the first way the condition fits, as alarm.go tries them in order.
 */

export type AlarmPattern = PatternCondition[][];

type Def = FieldDef<StoredAlarm>;
const str = (get: (a: StoredAlarm) => unknown): Def => ({ kinds: ['string'], get });

const FIELDS: Record<string, Def> = {
  'v.display_name': str((a) => a.v.display_name),
  'v.output': str((a) => a.v.output),
  'v.long_output': str((a) => a.v.long_output),
  'v.initial_output': str((a) => a.v.initial_output),
  'v.initial_long_output': str((a) => a.v.initial_long_output),
  'v.connector': str((a) => a.v.connector),
  'v.connector_name': str((a) => a.v.connector_name),
  'v.component': str((a) => a.v.component),
  'v.resource': str((a) => a.v.resource),
  'v.last_comment.m': str((a) => a.v.last_comment?.m),
  'v.ticket.m': str((a) => a.v.ticket?.m),
  'v.ticket.ticket': str((a) => a.v.ticket?.val),
  'v.ack.a': str((a) => a.v.ack?.a),
  'v.ack.m': str((a) => a.v.ack?.m),
  'v.ack.initiator': str((a) => a.v.ack?.initiator),
  'v.state.val': { kinds: ['int'], get: (a) => a.v.state.val },
  'v.status.val': { kinds: ['int'], get: (a) => a.v.status.val },
  'v.total_state_changes': { kinds: ['int'], get: (a) => a.v.total_state_changes },
  'v.ack': { kinds: ['ref'], get: (a) => a.v.ack },
  'v.ticket': { kinds: ['ref'], get: (a) => a.v.ticket },
  'v.canceled': { kinds: ['ref'], get: (a) => a.v.canceled },
  'v.snooze': { kinds: ['ref'], get: (a) => a.v.snooze },
  'v.activation_date': { kinds: ['ref', 'time'], get: (a) => a.v.activation_date },
  'v.creation_date': { kinds: ['time'], get: (a) => a.v.creation_date },
  'v.last_event_date': { kinds: ['time'], get: (a) => a.v.last_event_date },
  'v.last_update_date': { kinds: ['time'], get: (a) => a.v.last_update_date },
  'v.ack.t': { kinds: ['time'], get: (a) => a.v.ack?.t },
  'v.resolved': { kinds: ['time'], get: (a) => a.v.resolved },
  // Duration: as stored once resolved, else counted up to now (getAlarmDurationField).
  'v.duration': { kinds: ['duration'], get: (a, now) => (a.v.duration ? a.v.duration : (a.v.resolved ?? now) - a.t) },
  tags: { kinds: ['string_array'], get: (a) => a.tags },
};

/** An info is looked up across the rules that set it (getAlarmInfoVal); without a field_type only its existence is tested. */
function alarmField(c: PatternCondition): Def | undefined {
  const def = FIELDS[c.field];
  if (def) return def;
  const ticketData = /^v\.ticket\.ticket_data\.(.+)$/.exec(c.field)?.[1];
  if (ticketData !== undefined) return str((a) => a.v.ticket?.data?.[ticketData]);
  const info = /^v\.infos\.(.+)$/.exec(c.field)?.[1];
  if (info === undefined) return undefined;
  const kind = c.field_type ? kindOfFieldType(c.field_type) : 'ref';
  if (!kind) return undefined;
  return {
    kinds: [kind],
    get: (a) => {
      for (const byRule of Object.values(a.v.infos ?? {})) if (info in byRule) return byRule[info];
      return undefined;
    },
  };
}

/** Why an alarm pattern cannot be used, or undefined. */
export const checkAlarmPattern = (p: unknown, name = 'alarm_pattern'): string | undefined =>
  checkGroups(p, name, alarmField, 'an alarm field');

export const alarmMatches = (p: AlarmPattern, a: StoredAlarm, now: number): boolean => groupsMatch(p, a, now, alarmField);
