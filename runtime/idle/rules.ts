import type { StoredAlarm } from '../alarm/model.js';
import { type AlarmPattern, alarmMatches } from '../alarm/pattern.js';
import { type DurationWithUnit, durationSeconds } from '../durations.js';
import type { CanonicalType, EntityPattern } from '../pbehavior/model.js';
import { type MatchableEntity, matches } from '../pbehavior/pattern.js';
import type { OperationParameters } from '../pbehavior/store.js';
import type { Event } from '../tasks/types.js';

/*
 * Idle rules as Canopsis v4 applies them (capensis/canopsis release-22.10,
 * lib/canopsis/idlerule/rule.go and lib/canopsis/idlealarm/service.go).
 * An entity rule: an entity whose last event is older than the rule's
 * duration gets a `noevents` event, state critical, output "Idle rule
 * NAME", author system, not again while its alarm is already idle. An
 * alarm rule: an open alarm whose last event (or last update) is older
 * gets the rule's operation (ack, snooze, a ticket, a pbehavior...), once,
 * until its entity speaks again. Rules by priority, the first that applies
 * wins; none while the alarm is in a pbehavior of a disabled canonical
 * type. Pure: the caller passes what is stored and the time.
 */

export const IDLE_RULES = 'idle_rules';

/** The operations an alarm rule may apply (idlerule/rule.go Operation, idlealarm/service.go applyAlarmRule). */
export const IDLE_OPERATIONS = ['ack', 'ackremove', 'cancel', 'assocticket', 'changestate', 'snooze', 'pbehavior'] as const;
export type IdleOperation = (typeof IDLE_OPERATIONS)[number];

export interface IdleRule {
  name: string;
  description: string;
  author: string;
  enabled: boolean;
  /** entity: a silent entity gets a noevents alarm; alarm: an alarm without events or changes gets the operation. */
  type: 'entity' | 'alarm';
  priority: number;
  duration: DurationWithUnit;
  entity_pattern: EntityPattern;
  disable_during_periods: CanonicalType[];
  /** Alarm rules: which date must be older than the duration. */
  alarm_condition?: 'last_event' | 'last_update';
  alarm_pattern?: AlarmPattern;
  operation?: { type: IdleOperation; parameters: OperationParameters };
  created: number;
  updated: number;
}

export interface IdleCandidate {
  entity: MatchableEntity & { last_event_date?: number };
  /** The entity's open alarm, if any, and the alarm rule already applied to it. */
  alarm?: { doc: StoredAlarm; idleApplied?: string };
}

/** What an applied rule calls for: an event for axe, or (the pbehavior operation) a pbehavior on the alarm's entity. */
export type IdleOutcome = { event: Event } | { pbehavior: OperationParameters; rule: string; apply: string; entity: string };

/** Which rules call for what now: by priority, the first rule that applies to a candidate (service.go applyRules). */
export function idleOutcomes(rules: Array<IdleRule & { key: string }>, candidates: IdleCandidate[], now: number): IdleOutcome[] {
  const ordered = rules.filter((r) => r.enabled).sort((a, b) => a.priority - b.priority || (a.key < b.key ? -1 : 1));
  const out: IdleOutcome[] = [];
  for (const c of candidates) {
    for (const rule of ordered) {
      const o = rule.type === 'alarm' ? alarmRule(rule, c, now) : entityRule(rule, c, now);
      if (o === 'next') continue;
      if (o !== 'none') out.push(o);
      break;
    }
  }
  return out;
}

const older = (t: number | undefined, rule: IdleRule, now: number) => t !== undefined && t <= now - durationSeconds(rule.duration);

/** 'next': this rule does not apply, try the next; 'none': stop here with nothing to do. */
function entityRule(rule: IdleRule & { key: string }, c: IdleCandidate, now: number): IdleOutcome | 'next' | 'none' {
  const e = c.entity;
  if ((e.type !== 'component' && e.type !== 'resource') || !older(e.last_event_date, rule, now) || !matches(rule.entity_pattern, e, now))
    return 'next';
  const pbh = c.alarm?.doc.v.pbehavior_info;
  if (pbh && rule.disable_during_periods.includes(pbh.canonical_type)) return 'next';
  // "If some rule has already been applied on entity" (service.go): an idle alarm stays as it is.
  if (c.alarm?.doc.v.status.val === 5) return 'none';
  const connector = e.connector ?? '';
  const slash = connector.indexOf('/');
  return {
    event: {
      connector: slash < 0 ? connector : connector.slice(0, slash),
      connector_name: slash < 0 ? '' : connector.slice(slash + 1),
      event_type: 'noevents',
      source_type: e.type,
      component: e.type === 'resource' ? (e.component ?? '') : e.name,
      ...(e.type === 'resource' ? { resource: e.name } : {}),
      state: 3,
      output: `Idle rule ${rule.name}`,
      author: 'system',
      initiator: 'system',
      idle_rule: rule.key,
      timestamp: now,
    },
  };
}

function alarmRule(rule: IdleRule & { key: string }, c: IdleCandidate, now: number): IdleOutcome | 'next' | 'none' {
  const a = c.alarm?.doc;
  // GetOpenedAlarmsWithLastDatesBefore: open alarms not idle (noevents), whose entity has no rule applied yet.
  if (!a || a.v.resolved !== undefined || a.v.status.val === 5 || c.alarm?.idleApplied || !rule.operation) return 'next';
  const date = rule.alarm_condition === 'last_update' ? a.v.last_update_date : a.v.last_event_date;
  if (!older(date, rule, now)) return 'next';
  if (!matches(rule.entity_pattern, c.entity, now) || !alarmMatches(rule.alarm_pattern ?? [], a, now)) return 'next';
  if (a.v.pbehavior_info && rule.disable_during_periods.includes(a.v.pbehavior_info.canonical_type)) return 'next';
  const apply = `alarm_${rule.alarm_condition ?? 'last_event'}`;
  const p = rule.operation.parameters;
  if (rule.operation.type === 'pbehavior') return { pbehavior: p, rule: rule.key, apply, entity: c.entity._id };
  return {
    event: {
      connector: a.v.connector,
      connector_name: a.v.connector_name,
      // The other operations are the alarm events of the same names (service.go applyAlarmRule).
      event_type: rule.operation.type,
      source_type: a.v.resource ? 'resource' : 'component',
      component: a.v.component,
      ...(a.v.resource ? { resource: a.v.resource } : {}),
      output: p.output ?? '',
      ...(p.ticket !== undefined ? { ticket: p.ticket } : {}),
      ...(p.state !== undefined ? { state: p.state } : {}),
      ...(rule.operation.type === 'snooze' && p.duration ? { duration: durationSeconds(p.duration) } : {}),
      author: 'system',
      initiator: 'system',
      idle_rule: rule.key,
      idle_rule_apply: apply,
      timestamp: now,
    },
  };
}
