import { durationSeconds } from '../durations.js';
import type { CanonicalType, EntityPattern, PbehaviorInfo } from '../pbehavior/model.js';
import { type MatchableEntity, matches } from '../pbehavior/pattern.js';
import type { Event } from '../tasks/types.js';

/*
 * Idle rules as Canopsis v4 applies them to entities (capensis/canopsis
 * release-22.10, lib/canopsis/idlerule/rule.go and
 * lib/canopsis/idlealarm/service.go): an entity whose last event is older
 * than the rule's duration gets a `noevents` event, state critical, output
 * "Idle rule NAME", author system; rules by priority, the first matching
 * one applies; not while the entity's alarm is in a pbehavior of a
 * disabled canonical type, and not again while its alarm is already idle.
 * Pure: the caller passes what is stored and the time.
 */

export const IDLE_RULES = 'idle_rules';

export interface IdleRule {
  name: string;
  description: string;
  author: string;
  enabled: boolean;
  /** Only entity rules are applied here (alarm rules, with their operations, are not yet). */
  type: 'entity';
  priority: number;
  duration: { value: number; unit: string };
  entity_pattern: EntityPattern;
  disable_during_periods: CanonicalType[];
  created: number;
  updated: number;
}

export interface IdleCandidate {
  entity: MatchableEntity & { last_event_date?: number };
  /** The entity's open alarm, if any. */
  alarm?: { statusVal: number; pbehavior?: PbehaviorInfo };
}

/** The noevents events the rules call for now. */
export function idleEvents(rules: Array<IdleRule & { key: string }>, candidates: IdleCandidate[], now: number): Event[] {
  const ordered = rules.filter((r) => r.enabled && r.type === 'entity').sort((a, b) => a.priority - b.priority || (a.key < b.key ? -1 : 1));
  const out: Event[] = [];
  for (const c of candidates) {
    const e = c.entity;
    if ((e.type !== 'component' && e.type !== 'resource') || e.last_event_date === undefined) continue;
    // "If some rule has already been applied on entity" (service.go): an idle alarm stays as it is.
    if (c.alarm?.statusVal === 5) continue;
    const rule = ordered.find((r) => now - e.last_event_date! >= durationSeconds(r.duration) && matches(r.entity_pattern, e));
    if (!rule) continue;
    if (c.alarm?.pbehavior && rule.disable_during_periods.includes(c.alarm.pbehavior.canonical_type)) continue;
    const connector = e.connector ?? '';
    const slash = connector.indexOf('/');
    out.push({
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
    });
  }
  return out;
}
