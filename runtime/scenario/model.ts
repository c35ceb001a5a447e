import type { AlarmPattern } from '../alarm/pattern.js';
import type { CanonicalType, EntityPattern } from '../pbehavior/model.js';
import type { OperationParameters } from '../pbehavior/store.js';

/*
 * Scenarios as Canopsis v4 keeps them (capensis/canopsis release-22.10,
 * lib/api/scenario/models.go, lib/canopsis/action/action.go Parameters,
 * lib/canopsis/types/webhook.go): on a trigger, ordered actions on the
 * alarm. Stored under their id in `scenarios`.
 */

export const SCENARIOS = 'scenarios';

/** The triggers the appliance raises (models.go lists more: instructions and done are not raised here). */
export const TRIGGERS = [
  'create',
  'stateinc',
  'statedec',
  'changestate',
  'changestatus',
  'ack',
  'ackremove',
  'cancel',
  'uncancel',
  'comment',
  'declareticket',
  'assocticket',
  'snooze',
  'unsnooze',
  'activate',
  'pbhenter',
  'pbhleave',
  'resolve',
] as const;

export const ACTION_TYPES = ['ack', 'ackremove', 'assocticket', 'cancel', 'changestate', 'snooze', 'pbehavior', 'webhook'] as const;
export type ActionType = (typeof ACTION_TYPES)[number];

export interface WebhookRequest {
  url: string;
  method: string;
  auth?: { username: string; password: string };
  headers?: Record<string, string>;
  /** A Handlebars template of the body, given {alarm, entity, event}. */
  payload?: string;
  skip_verify: boolean;
  /** Seconds; Canopsis' default is 30 s (lib/canopsis/config: WebhookTimeout). */
  timeout?: { value: number; unit: string };
}

export interface WebhookDeclareTicket {
  /** A dotted path in the JSON response holding the ticket number. */
  ticket_id: string;
  empty_response: boolean;
}

export interface ActionParameters extends OperationParameters {
  author?: string;
  forward_author?: boolean;
  request?: WebhookRequest;
  declare_ticket?: WebhookDeclareTicket;
  retry_count?: number;
  retry_delay?: { value: number; unit: string };
}

export interface ScenarioAction {
  type: ActionType;
  parameters: ActionParameters;
  comment: string;
  entity_pattern: EntityPattern;
  /** The alarm's fields (alarm.go); absent in scenarios saved before it existed: matches every alarm. */
  alarm_pattern?: AlarmPattern;
  /** When this action's pattern does not match, the rest of the scenario is dropped too. */
  drop_scenario_if_not_matched: boolean;
  emit_trigger: boolean;
}

export interface Scenario {
  name: string;
  author: string;
  enabled: boolean;
  priority: number;
  triggers: string[];
  disable_during_periods: CanonicalType[];
  /** Wait this long after the trigger before running the actions (engine-action's delayed scenarios). */
  delay?: { value: number; unit: string };
  actions: ScenarioAction[];
  created: number;
  updated: number;
}

export const DELAYED_SCENARIOS = 'delayed_scenarios';

/** A scenario run waiting for its delay: the event that triggered it, sent back to the action engine when due. */
export interface DelayedRun {
  /** Unix seconds, fractional: a run never starts before its delay has passed. */
  due: number;
  scenario: string;
  event: Record<string, unknown>;
}
