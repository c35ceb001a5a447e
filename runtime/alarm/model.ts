import type { PbehaviorInfo } from '../pbehavior/model.js';

/*
 * Alarms in Canopsis v4's shape (capensis/canopsis, release-22.10,
 * community/go-engines-community/lib/canopsis/types/model_alarm.go and
 * alarm_value.go): `t` the creation time, `d` the entity id, `v` the value,
 * whose state, status, ack, cancel, snooze, ticket and last comment are each
 * the step that set them. A state step of type `changestate` is the lock.
 * One open alarm per entity; the id is a UUID and is the store key (the
 * document itself has no `_id`: MongoDB reserves it).
 */

/** axe's collections: every alarm, open or resolved, under its id; and per entity its open alarm. */
export const ALARMS = 'alarms';
export const ENTITY_ALARMS = 'entity_alarms';

export const STATUS = { off: 0, ongoing: 1, stealthy: 2, flapping: 3, cancelled: 4, noevents: 5 } as const;
export type StatusValue = (typeof STATUS)[keyof typeof STATUS];

export type StepType =
  | 'stateinc'
  | 'statedec'
  | 'statusinc'
  | 'statusdec'
  | 'changestate'
  | 'ack'
  | 'ackremove'
  | 'cancel'
  | 'uncancel'
  | 'snooze'
  | 'declareticket'
  | 'assocticket'
  | 'comment'
  | 'statecounter'
  | 'pbhenter'
  | 'pbhleave';

/** What a statecounter step counts of the state steps it replaced (CropCounter). */
export interface StateCounter {
  statechanges: number;
  stateinc: number;
  statedec: number;
  'state:0'?: number;
  'state:1'?: number;
  'state:2'?: number;
  'state:3'?: number;
}

/** AlarmStep: type, time, author, message, value. */
export interface Step {
  _t: StepType;
  t: number;
  a: string;
  m: string;
  val: number;
  user_id?: string;
  initiator?: 'user' | 'system' | 'external';
  statecounter?: StateCounter;
  /** pbhenter/pbhleave: the canonical type of the pbehavior entered or left. */
  pbehavior_canonical_type?: string;
}

export interface Ticket {
  _t: 'declareticket' | 'assocticket';
  t: number;
  a: string;
  user_id?: string;
  m: string;
  val: string;
  data?: Record<string, string>;
}

export interface AlarmValue {
  state: Step;
  status: Step;
  ack?: Step;
  canceled?: Step;
  snooze?: Step;
  ticket?: Ticket;
  last_comment?: Step;
  steps: Step[];
  component: string;
  connector: string;
  connector_name: string;
  resource?: string;
  creation_date: number;
  activation_date?: number;
  display_name: string;
  initial_output: string;
  output: string;
  initial_long_output: string;
  long_output: string;
  long_output_history: string[];
  last_update_date: number;
  last_event_date: number;
  resolved?: number;
  parents: string[];
  children: string[];
  state_changes_since_status_update: number;
  total_state_changes: number;
  events_count: number;
  infos: Record<string, Record<string, unknown>>;
  duration?: number;
  current_state_duration?: number;
  active_duration?: number;
  snooze_duration: number;
  inactive_duration: number;
  /** When the current inactive interval (a snooze, an inactive pbehavior) began. */
  inactive_start?: number;
  /** The pbehavior in force on the alarm's entity (absent: none, the default active type). */
  pbehavior_info?: PbehaviorInfo;
  /** Seconds spent in pbehaviors that are not active. */
  pbh_inactive_duration?: number;
}

/**
 * Our own bookkeeping, beside `v`: Canopsis computes flapping and stealthy
 * from its steps, which cropping folds away here, so the times the rules
 * need are kept apart. The API leaves this field out.
 */
export interface AlarmTiming {
  /** Times of the last state changes, for the flapping window. */
  state_changes: number[];
  /** When the state last left 0, and when it last came back to 0: the stealthy window. */
  non_ok_since: number;
  back_to_ok?: number;
  /** When axe last wrote the alarm to `alarms` (ms): the webserver's live feed reads what changed since. */
  written?: number;
}

export interface Alarm {
  /** The id (a UUID); the key of the document in `alarms`. */
  _id: string;
  t: number;
  d: string;
  tags: string[];
  v: AlarmValue;
  timing: AlarmTiming;
}

/** An alarm as stored in `alarms`: the id is the key. */
export type StoredAlarm = Omit<Alarm, '_id'>;

export const isLocked = (a: Alarm) => a.v.state._t === 'changestate';
export const isSnoozed = (a: Alarm, now: number) => a.v.snooze !== undefined && a.v.snooze.val > now;

export interface AlarmSettings {
  /** Seconds an alarm stays off before it is resolved. */
  resolveDelay: number;
  /** Seconds a cancelled alarm waits before it is resolved. */
  cancelDelay: number;
  flappingCount: number;
  flappingWindow: number;
  stealthyWindow: number;
  maxSteps: number;
  snoozeDefault: number;
}

export const DEFAULT_ALARM_SETTINGS: AlarmSettings = {
  resolveDelay: 60,
  cancelDelay: 3600,
  flappingCount: 10,
  flappingWindow: 3600,
  stealthyWindow: 300,
  maxSteps: 2000,
  snoozeDefault: 300,
};

/** Canopsis' AlarmStepCropMinStates: state steps kept after the status step before the older ones are counted. */
export const CROP_KEEP = 20;

/** The per-entity document axe modifies atomically. */
export interface EntityAlarms {
  current: Alarm | null;
  /** Whether an alarm is open (indexed: axe's beat looks at these only). */
  open: boolean;
  /** How many alarms this entity had. */
  count: number;
  /** Fingerprints of the last events applied, so a redelivery adds nothing. */
  seen: string[];
  /**
   * The alarm idle rule last applied to the open alarm ("alarm_last_event",
   * "alarm_last_update"): not applied again until the entity speaks
   * (Canopsis keeps it on the entity as last_idle_rule_apply).
   */
  idle_rule_apply?: string;
}

export const SEEN_MAX = 200;
