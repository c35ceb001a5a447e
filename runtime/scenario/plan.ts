import type { StoredAlarm } from '../alarm/model.js';
import { alarmMatches } from '../alarm/pattern.js';
import { durationSeconds } from '../durations.js';
import { type MatchableEntity, matches } from '../pbehavior/pattern.js';
import type { Scenario, ScenarioAction } from './model.js';

/*
 * Which actions the scenarios call for on one alarm change (Canopsis'
 * engine-action: scenarios by priority, each whose triggers include one
 * raised and not disabled by the alarm's pbehavior; an action whose
 * entity or alarm pattern does not match is skipped, or ends its scenario when
 * drop_scenario_if_not_matched). Pure.
 */

export interface Planned {
  scenario: string;
  /** Seconds to wait before the scenario's actions run (0: now). */
  delay: number;
  index: number;
  action: ScenarioAction;
  author: string;
}

export function plan(
  scenarios: Array<Scenario & { key: string }>,
  triggers: string[],
  entity: MatchableEntity,
  alarm: StoredAlarm,
  now: number,
  /** A delayed run: this scenario only, its triggers already matched. */
  only?: string,
): Planned[] {
  const pbehavior = alarm.v.pbehavior_info;
  const out: Planned[] = [];
  const ordered = scenarios.filter((s) => s.enabled).sort((a, b) => a.priority - b.priority || (a.key < b.key ? -1 : 1));
  for (const s of ordered) {
    if (only !== undefined ? s.key !== only : !s.triggers.some((t) => triggers.includes(t))) continue;
    const delay = only !== undefined || !s.delay ? 0 : durationSeconds(s.delay);
    if (pbehavior && s.disable_during_periods.includes(pbehavior.canonical_type)) continue;
    for (const [index, action] of s.actions.entries()) {
      if (!matches(action.entity_pattern, entity, now) || !alarmMatches(action.alarm_pattern ?? [], alarm, now)) {
        if (action.drop_scenario_if_not_matched) break;
        continue;
      }
      out.push({ scenario: s.key, delay, index, action, author: action.parameters.author || s.author });
    }
  }
  return out;
}
