/*
 * Alarms as Canopsis keeps them (shared/notes/canopsis-events.md): one open
 * alarm per entity, its state and status, and a bounded list of steps.
 */

export const STATUS = { off: 0, ongoing: 1, stealthy: 2, flapping: 3, cancelled: 4 } as const;
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
  | 'resolve';

export interface Step {
  type: StepType;
  t: number;
  author: string;
  message: string;
  val?: number;
}

export interface Alarm {
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
  status: { val: StatusValue; t: number };
  /** Times of the last state changes, for the flapping window. */
  state_changes: number[];
  /** When the state last left 0, and when it last came back to 0: the stealthy window. */
  non_ok_since: number;
  back_to_ok?: number;
  ack?: { author: string; message: string; t: number };
  cancel?: { author: string; message: string; t: number };
  snooze?: { author: string; until: number; t: number };
  ticket?: { author: string; value: string; t: number; type: 'declareticket' | 'assocticket' };
  steps: Step[];
  resolved: number | null;
}

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

/** The per-entity document axe modifies atomically. */
export interface EntityAlarms {
  current: Alarm | null;
  /** Whether an alarm is open (indexed: axe's beat looks at these only). */
  open: boolean;
  /** How many alarms this entity had: part of the next alarm's id. */
  count: number;
  /** Fingerprints of the last events applied, so a redelivery adds nothing. */
  seen: string[];
}

export const SEEN_MAX = 200;
