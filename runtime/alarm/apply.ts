import { createHash, randomUUID } from 'node:crypto';
import { entityId } from '../event/canopsis-event.js';
import type { PbehaviorInfo } from '../pbehavior/model.js';
import { samePbehavior } from '../pbehavior/resolve.js';
import type { Event } from '../tasks/types.js';
import {
  type Alarm,
  type AlarmSettings,
  CROP_KEEP,
  type EntityAlarms,
  isLocked,
  SEEN_MAX,
  STATUS,
  type StateCounter,
  type StatusValue,
  type Step,
  type StepType,
} from './model.js';

/*
 * What an event does to an entity's alarms: a pure function of the entity's
 * document, the event, the settings and the clock. axe runs it inside the
 * store's atomic modify; tests run it alone.
 *
 * As Canopsis' axe (release-22.10, lib/canopsis/alarm/event_processor.go and
 * lib/canopsis/operation/executor/*): alarm time (creation, last event) is
 * axe's own clock; steps carry the event's timestamp, which the cleaner
 * has already brought within a day of now.
 */

export type Change =
  | 'opened'
  | 'changed'
  | 'resolved'
  | 'acked'
  | 'unacked'
  | 'cancelled'
  | 'uncancelled'
  | 'snoozed'
  | 'unsnoozed'
  | 'activated'
  | 'pbhenter'
  | 'pbhleave';

export interface Applied {
  next: EntityAlarms;
  /** What happened, for event dispatchers; empty when nothing did. */
  changes: Change[];
  /** Why the event changed nothing, when it did not. */
  ignored?: string;
}

export interface Clock {
  /** axe's time, unix seconds. */
  now: number;
  /** A new alarm id (a UUID unless a test fixes it). */
  newId?: () => string;
}

const str = (v: unknown, d = '') => (typeof v === 'string' ? v : v === undefined || v === null ? d : String(v));

/** A step as Canopsis writes it: user_id always there ('' for none), initiator 'external' unless the event says (Event.Format). */
const step = (_t: StepType, t: number, a: string, m: string, val = 0, e?: Event): Step => ({
  _t,
  t,
  a,
  m,
  val,
  user_id: e && typeof e.user_id === 'string' ? e.user_id : '',
  initiator: !e ? 'system' : e.initiator === 'user' || e.initiator === 'system' ? e.initiator : 'external',
});

function computeStatus(a: Alarm, now: number, s: AlarmSettings): StatusValue {
  if (a.v.canceled) return STATUS.cancelled;
  const recent = a.timing.state_changes.filter((t) => now - t <= s.flappingWindow);
  if (recent.length >= s.flappingCount) return STATUS.flapping;
  // A short trip out of OK: stealthy for a window after coming back, then off.
  const { back_to_ok, non_ok_since } = a.timing;
  if (
    a.v.state.val === 0 &&
    back_to_ok !== undefined &&
    back_to_ok - non_ok_since <= s.stealthyWindow &&
    now - back_to_ok < s.stealthyWindow
  ) {
    return STATUS.stealthy;
  }
  return a.v.state.val > 0 ? STATUS.ongoing : STATUS.off;
}

/** A step past the limit: the event that needed it changes nothing (Canopsis' executors fail on Steps.Add's error). */
class StepLimit extends Error {}

/**
 * Canopsis' AlarmSteps.Add: past the hard limit only the steps that close
 * an alarm (back to OK, a cancel) are still added.
 */
function pushStep(a: Alarm, st: Step, s: AlarmSettings): void {
  const closing =
    ((st._t === 'statedec' || st._t === 'statusdec') && st.val === 0) ||
    st._t === 'cancel' ||
    (st._t === 'statusinc' && st.val === STATUS.cancelled);
  if (a.v.steps.length >= s.maxSteps && !closing) throw new StepLimit(`max number of steps reached: ${s.maxSteps}`);
  a.v.steps.push(st);
}

/**
 * Canopsis' AlarmSteps.Crop: past CROP_KEEP state steps after the current
 * status step, the older ones are folded into one statecounter step right
 * after the status step, which counts them by direction and by state.
 */
export function cropSteps(steps: Step[], status: Step, keep = CROP_KEEP): Step[] {
  let at = -1;
  for (let i = steps.length - 1; i >= 0; i--) {
    const x = steps[i]!;
    if (x._t === status._t && x.t === status.t && x.val === status.val && x.a === status.a && x.m === status.m) {
      at = i;
      break;
    }
  }
  if (at < 0) return steps;
  const isState = (x: Step) => x._t === 'stateinc' || x._t === 'statedec';
  const after = steps.slice(at + 1);
  let stateSteps = after.filter(isState).length;
  if (stateSteps <= keep) return steps;
  const counter: StateCounter = { statechanges: 0, stateinc: 0, statedec: 0 };
  const kept: Step[] = [];
  let existing: Step | undefined;
  for (const x of after) {
    if (x._t === 'statecounter' && !existing && kept.length === 0) {
      existing = x;
      continue;
    }
    if (isState(x) && stateSteps > keep) {
      stateSteps -= 1;
      counter[x._t as 'stateinc' | 'statedec'] += 1;
      const k = `state:${x.val}` as 'state:0';
      counter[k] = (counter[k] ?? 0) + 1;
      counter.statechanges += 1;
      continue;
    }
    kept.push(x);
  }
  const base = existing?.statecounter ?? { statechanges: 0, stateinc: 0, statedec: 0 };
  const merged: StateCounter = { ...base };
  for (const [k, n] of Object.entries(counter) as Array<[keyof StateCounter, number]>) merged[k] = (merged[k] ?? 0) + n;
  const folded: Step = existing
    ? { ...existing, statecounter: merged }
    : { _t: 'statecounter', t: status.t, a: status.a, m: status.m, val: status.val, statecounter: merged };
  return [...steps.slice(0, at + 1), folded, ...kept];
}

function setStatus(a: Alarm, t: number, now: number, author: string, message: string, s: AlarmSettings, e?: Event): boolean {
  const val = computeStatus(a, now, s);
  if (val === a.v.status.val) return false;
  a.v.status = step(val > a.v.status.val ? 'statusinc' : 'statusdec', t, author, message, val, e);
  a.v.state_changes_since_status_update = 0;
  a.v.last_update_date = t;
  pushStep(a, a.v.status, s);
  return true;
}

export function fingerprint(e: Event): string {
  // Stable over key order: the same event delivered twice has the same print.
  const sorted = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sorted)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v as object)
              .sort()
              .map((k) => [k, sorted((v as Record<string, unknown>)[k])]),
          )
        : v;
  return JSON.stringify(sorted(e));
}

const connectorAuthor = (e: Event) => `${str(e.connector)}.${str(e.connector_name)}`;
/** What a check's steps take from the event: its initiator, never its user (UpdateAlarmState passes none). */
const checkSource = (e: Event): Event => ({ initiator: e.initiator });

function openAlarm(e: Event, clock: Clock, s: AlarmSettings): Alarm {
  const t = Number(e.timestamp);
  const now = clock.now;
  const author = connectorAuthor(e);
  const state = Number(e.state);
  const output = str(e.output);
  const longOutput = str(e.long_output);
  // UpdateAlarmState makes check steps with no user: the event's user_id is not theirs.
  const stateStep = step('stateinc', t, author, output, state, checkSource(e));
  const statusStep = step('statusinc', t, author, output, STATUS.ongoing, checkSource(e));
  const id = (clock.newId ?? randomUUID)();
  const alarm: Alarm = {
    _id: id,
    t: now,
    d: entityId(e),
    tags: [],
    v: {
      state: stateStep,
      status: statusStep,
      steps: [stateStep, statusStep],
      component: str(e.component),
      connector: str(e.connector),
      connector_name: str(e.connector_name),
      ...(e.source_type === 'resource' ? { resource: str(e.resource) } : {}),
      creation_date: now,
      activation_date: now,
      display_name: displayName(id),
      initial_output: output,
      output,
      initial_long_output: longOutput,
      long_output: longOutput,
      long_output_history: [longOutput],
      last_update_date: t,
      last_event_date: now,
      parents: [],
      children: [],
      state_changes_since_status_update: 0,
      total_state_changes: 1,
      events_count: 1,
      infos: {},
      snooze_duration: 0,
      inactive_duration: 0,
    },
    timing: { state_changes: [t], non_ok_since: t },
  };
  void s;
  return alarm;
}

/** Canopsis' default display name scheme, {{ rand_string 2 }}-{{ rand_string 2 }}-{{ rand_string 2 }}: random letters, drawn from the id's hash. */
function displayName(id: string): string {
  const h = createHash('sha256').update(id).digest();
  const letter = (i: number) => String.fromCharCode(65 + (h[i]! % 26));
  return `${letter(0)}${letter(1)}-${letter(2)}${letter(3)}-${letter(4)}${letter(5)}`;
}

function applyCheck(a: Alarm, e: Event, now: number, s: AlarmSettings): void {
  const t = Number(e.timestamp);
  const author = connectorAuthor(e);
  const state = Number(e.state);
  const output = str(e.output);
  a.v.events_count += 1;
  // updateAlarm (event_processor.go): the last event's own time.
  a.v.last_event_date = t;
  a.v.output = output;
  // UpdateLongOutput: always the event's, "" when it has none; the history keeps each new value.
  const longOutput = str(e.long_output);
  if (longOutput !== a.v.long_output) {
    a.v.long_output = longOutput;
    a.v.long_output_history = [...a.v.long_output_history, longOutput].slice(-100);
  }
  // A changestate lock holds against every state but 0 (UpdateAlarmState); a state-0 check on a lock at 0 changes nothing.
  if (state !== a.v.state.val && (!isLocked(a) || state === 0)) {
    if (state === 0) a.timing.back_to_ok = t;
    else if (a.v.state.val === 0) a.timing.non_ok_since = t;
    a.timing.state_changes = [...a.timing.state_changes.filter((x) => t - x <= s.flappingWindow), t].slice(-(s.flappingCount * 2));
    a.v.state = step(state > a.v.state.val ? 'stateinc' : 'statedec', t, author, output, state, checkSource(e));
    a.v.total_state_changes += 1;
    a.v.state_changes_since_status_update += 1;
    a.v.last_update_date = t;
    pushStep(a, a.v.state, s);
  }
  void now;
  setStatus(a, t, t, author, output, s, checkSource(e));
  a.v.steps = cropSteps(a.v.steps, a.v.status);
}

type Outcome = { changes: Change[]; ignored?: string };
type Action = (a: Alarm, e: Event, t: number, s: AlarmSettings) => Outcome;

const author = (e: Event) => str(e.author, connectorAuthor(e));
const message = (e: Event) => str(e.output);

/** Ticket data as Canopsis keeps it: strings only. */
function ticketData(v: unknown): Record<string, string> | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, str(x)]));
}

function setTicket(a: Alarm, e: Event, t: number, s: AlarmSettings, type: 'declareticket' | 'assocticket', value: string): void {
  const st = step(type, t, author(e), type === 'assocticket' ? value : message(e), 0, e);
  const data = ticketData(e.ticket_data);
  // AlarmStep.NewTicket: the ticket's message is the ticket itself.
  a.v.ticket = { _t: type, t, a: st.a, user_id: st.user_id ?? '', m: value, val: value, ...(data ? { data } : {}) };
  pushStep(a, st, s);
}

const ACTIONS: Record<string, Action> = {
  ack: (a, e, t, s) => {
    if (a.v.ack) return { changes: [], ignored: 'the alarm is already acknowledged' };
    a.v.ack = step('ack', t, author(e), message(e), 0, e);
    pushStep(a, a.v.ack, s);
    return { changes: ['acked'] };
  },
  ackremove: (a, e, t, s) => {
    if (!a.v.ack) return { changes: [], ignored: 'the alarm is not acknowledged' };
    delete a.v.ack;
    pushStep(a, step('ackremove', t, author(e), message(e), 0, e), s);
    return { changes: ['unacked'] };
  },
  cancel: (a, e, t, s) => {
    if (a.v.canceled) return { changes: [], ignored: 'the alarm is already cancelled' };
    a.v.canceled = step('cancel', t, author(e), message(e), 0, e);
    pushStep(a, a.v.canceled, s);
    setStatus(a, t, t, connectorAuthor(e), message(e), s, e);
    return { changes: ['cancelled'] };
  },
  uncancel: (a, e, t, s) => {
    if (!a.v.canceled) return { changes: [], ignored: 'the alarm is not cancelled' };
    delete a.v.canceled;
    pushStep(a, step('uncancel', t, author(e), message(e), 0, e), s);
    setStatus(a, t, t, connectorAuthor(e), message(e), s, e);
    return { changes: ['uncancelled'] };
  },
  snooze: (a, e, t, s) => {
    if (a.v.snooze) return { changes: [], ignored: 'the alarm is already snoozed' };
    const duration = Number(e.duration ?? s.snoozeDefault);
    if (!Number.isFinite(duration) || duration <= 0)
      return { changes: [], ignored: `snooze duration must be positive seconds (found ${JSON.stringify(e.duration)})` };
    a.v.snooze = step('snooze', t, author(e), message(e), t + Math.round(duration), e);
    pushStep(a, a.v.snooze, s);
    startInactive(a, t);
    return { changes: ['snoozed'] };
  },
  // PartialUpdateUnsnooze: the snooze ends early; no step, its time is counted.
  unsnooze: (a, _e, t) => {
    if (!a.v.snooze) return { changes: [], ignored: 'the alarm is not snoozed' };
    endSnooze(a, t);
    return { changes: ['unsnoozed'] };
  },
  changestate: (a, e, t, s) => {
    const state = Number(e.state);
    if (a.v.state.val === 0) return { changes: [], ignored: 'changestate on an alarm in state 0 (Canopsis: "cannot change ok state")' };
    if (state === a.v.state.val && isLocked(a)) return { changes: [], ignored: `the state is already locked at ${state}` };
    a.v.state = step('changestate', t, author(e), message(e), state, e);
    pushStep(a, a.v.state, s);
    setStatus(a, t, t, author(e), message(e), s, e);
    return { changes: ['changed'] };
  },
  declareticket: (a, e, t, s) => {
    setTicket(a, e, t, s, 'declareticket', str(e.ticket, 'N/A'));
    return { changes: ['changed'] };
  },
  // A ticket a webhook opened elsewhere, reported back as an event: the same effect as declareticket.
  declareticketwebhook: (a, e, t, s) => {
    if (!str(e.ticket)) return { changes: [], ignored: 'declareticketwebhook without a ticket' };
    setTicket(a, e, t, s, 'declareticket', str(e.ticket));
    return { changes: ['changed'] };
  },
  assocticket: (a, e, t, s) => {
    if (!str(e.ticket)) return { changes: [], ignored: 'assocticket without a ticket' };
    setTicket(a, e, t, s, 'assocticket', str(e.ticket));
    return { changes: ['changed'] };
  },
  comment: (a, e, t, s) => {
    a.v.last_comment = step('comment', t, author(e), message(e), 0, e);
    pushStep(a, a.v.last_comment, s);
    return { changes: ['changed'] };
  },
  // From the pbehavior engine: the pbehavior in force on the entity changed (event_type pbhenter, pbhleave).
  pbhenter: (a, e, t, s) => {
    const changes = syncPbehavior(a, pbehaviorOf(e), t, s);
    return changes.length ? { changes } : { changes, ignored: 'the alarm is already in this pbehavior' };
  },
  pbhleave: (a, _e, t, s) => {
    const changes = syncPbehavior(a, undefined, t, s);
    return changes.length ? { changes } : { changes, ignored: 'the alarm is in no pbehavior' };
  },
  activate: (a, _e, t) => {
    if (a.v.activation_date !== undefined) return { changes: [], ignored: 'the alarm is already active' };
    a.v.activation_date = t;
    return { changes: ['activated'] };
  },
};

/** startInactiveInterval: a snoozed alarm, or one in a pbehavior that is not active, is not active. */
function startInactive(a: Alarm, t: number): void {
  a.v.inactive_start ??= t;
}

/** stopInactiveInterval: the inactive time counted once nothing keeps the alarm inactive any more. */
function stopInactive(a: Alarm, t: number): void {
  const stillInactive = a.v.snooze !== undefined || (a.v.pbehavior_info !== undefined && a.v.pbehavior_info.canonical_type !== 'active');
  if (stillInactive || a.v.inactive_start === undefined) return;
  a.v.inactive_duration += Math.max(0, t - a.v.inactive_start);
  delete a.v.inactive_start;
}

/** PartialUpdateUnsnooze: the snoozed time counted. */
function endSnooze(a: Alarm, t: number): void {
  a.v.snooze_duration += Math.max(0, t - a.v.snooze!.t);
  delete a.v.snooze;
  stopInactive(a, t);
}

const pbhOutput = (i: PbehaviorInfo) => `Pbehavior ${i.name}. Type: ${i.type_name}. Reason: ${i.reason_name}.`;

/**
 * The alarm follows the pbehavior in force on its entity (PartialUpdatePbhEnter,
 * PartialUpdatePbhLeave, PartialUpdatePbhLeaveAndEnter): a pbhleave step for
 * the one left, a pbhenter step for the one entered, the inactive time counted.
 */
function syncPbehavior(a: Alarm, info: PbehaviorInfo | undefined, t: number, s: AlarmSettings): Change[] {
  const current = a.v.pbehavior_info;
  if (samePbehavior(current, info)) return [];
  const changes: Change[] = [];
  if (current) {
    pushStep(a, { ...step('pbhleave', t, 'system', pbhOutput(current), 0), pbehavior_canonical_type: current.canonical_type }, s);
    if (current.canonical_type !== 'active') {
      const enter = [...a.v.steps].reverse().find((x) => x._t === 'pbhenter');
      if (enter) a.v.pbh_inactive_duration = (a.v.pbh_inactive_duration ?? 0) + Math.max(0, t - enter.t);
    }
    delete a.v.pbehavior_info;
    changes.push('pbhleave');
  }
  if (info) {
    pushStep(a, { ...step('pbhenter', t, 'system', pbhOutput(info), 0), pbehavior_canonical_type: info.canonical_type }, s);
    a.v.pbehavior_info = info;
    if (info.canonical_type !== 'active') startInactive(a, t);
    changes.push('pbhenter');
  }
  stopInactive(a, t);
  return changes;
}

/** The pbehavior info an event carries (set by the pbehavior engine), or undefined when it says none. */
function pbehaviorOf(e: Event): PbehaviorInfo | undefined {
  const i = e.pbehavior_info as PbehaviorInfo | null | undefined;
  return i && typeof i === 'object' && typeof i.id === 'string' && i.id !== '' ? i : undefined;
}

/**
 * Scenario triggers (Canopsis' AlarmChangeType names, lib/api/scenario
 * models.go) of what one event did to an alarm, read off the alarm before
 * and after it: the action engine runs the scenarios they name.
 */
export function triggersOf(before: Alarm | null | undefined, after: Alarm | null | undefined): string[] {
  if (!after) return [];
  if (!before || before._id !== after._id) return ['create'];
  const t: string[] = [];
  const b = before.v;
  const a = after.v;
  if (a.state.val > b.state.val && a.state._t !== 'changestate') t.push('stateinc');
  if (a.state.val < b.state.val && a.state._t !== 'changestate') t.push('statedec');
  if (a.state._t === 'changestate' && (b.state._t !== 'changestate' || a.state.t !== b.state.t || a.state.val !== b.state.val))
    t.push('changestate');
  if (a.status.val !== b.status.val) t.push('changestatus');
  if (a.ack && !b.ack) t.push('ack');
  if (!a.ack && b.ack) t.push('ackremove');
  if (a.canceled && !b.canceled) t.push('cancel');
  if (!a.canceled && b.canceled) t.push('uncancel');
  if (a.last_comment && a.last_comment.t !== b.last_comment?.t) t.push('comment');
  if (a.ticket && (a.ticket.t !== b.ticket?.t || a.ticket.val !== b.ticket?.val)) t.push(a.ticket._t);
  if (a.snooze && !b.snooze) t.push('snooze');
  if (!a.snooze && b.snooze) t.push('unsnooze');
  if (a.activation_date !== undefined && b.activation_date === undefined) t.push('activate');
  if (!samePbehavior(a.pbehavior_info, b.pbehavior_info)) {
    if (b.pbehavior_info) t.push('pbhleave');
    if (a.pbehavior_info) t.push('pbhenter');
  }
  return t;
}

export const REDELIVERY = 'already applied (redelivery)';

export const ALARM_EVENT_TYPES = ['check', 'noevents', ...Object.keys(ACTIONS)];

/** Applies one event to an entity's alarm document at axe's time `clock.now`. */
export function applyEvent(doc: EntityAlarms | undefined, e: Event, s: AlarmSettings, clock: Clock): Applied {
  const base: EntityAlarms = doc ? structuredClone(doc) : { current: null, open: false, count: 0, seen: [] };
  const print = fingerprint(e);
  if (base.seen.includes(print)) return { next: base, changes: [], ignored: REDELIVERY };
  const remember = (next: EntityAlarms) => {
    next.seen = [...next.seen, print].slice(-SEEN_MAX);
    return next;
  };
  const type = str(e.event_type);
  if (type === 'noevents') {
    try {
      return noEvents(base, e, clock, s, remember);
    } catch (err) {
      if (err instanceof StepLimit) return unchanged(doc, remember, err.message);
      throw err;
    }
  }
  if (type === 'check') {
    const state = Number(e.state);
    forgetIdleRule(base, e);
    if (!base.current) {
      if (state === 0) return { next: remember(base), changes: [], ignored: 'state 0 and no open alarm' };
      base.current = openAlarm(e, clock, s);
      base.open = true;
      base.count += 1;
      // createAlarm: an alarm of an entity in a pbehavior is born in it (CreateAndPbhEnter).
      const entered = 'pbehavior_info' in e ? syncPbehavior(base.current, pbehaviorOf(e), Number(e.timestamp), s) : [];
      return { next: remember(base), changes: ['opened', ...entered] };
    }
    let synced: Change[] = [];
    try {
      applyCheck(base.current, e, clock.now, s);
      // Events that went through the pbehavior engine say which pbehavior is in force now.
      if ('pbehavior_info' in e) synced = syncPbehavior(base.current, pbehaviorOf(e), Number(e.timestamp), s);
    } catch (err) {
      if (err instanceof StepLimit) return unchanged(doc, remember, err.message);
      throw err;
    }
    return { next: remember(base), changes: ['changed', ...synced] };
  }
  const action = ACTIONS[type];
  if (!action) return { next: base, changes: [], ignored: `event_type ${type} does not act on alarms` };
  if (!base.current) return { next: remember(base), changes: [], ignored: `${type} with no open alarm on ${entityId(e)}` };
  // An idle rule's operation is not applied again to this alarm until the entity speaks (event_processor.go).
  if (typeof e.idle_rule_apply === 'string' && e.idle_rule_apply) base.idle_rule_apply = e.idle_rule_apply;
  // Only state and status changes move last_update_date (UpdateAlarmState and the executors that change the status).
  try {
    return { next: remember(base), ...action(base.current, e, Number(e.timestamp), s) };
  } catch (err) {
    if (err instanceof StepLimit) return unchanged(doc, remember, err.message);
    throw err;
  }
}

/**
 * A check clears the idle rule applied to the alarm (event_processor.go):
 * always after a last_event rule, after a last_update rule only when the
 * check changes the alarm's state or status (a check that changes nothing
 * does not end "no update for so long").
 */
function forgetIdleRule(base: EntityAlarms, e: Event): void {
  if (!base.idle_rule_apply) return;
  const a = base.current;
  // A locked state (changestate) is not moved by a check, except by a check at 0.
  const unchanged = !!a && (a.v.state.val === Number(e.state) || (isLocked(a) && Number(e.state) !== 0));
  if (base.idle_rule_apply === 'alarm_last_update' && unchanged) return;
  delete base.idle_rule_apply;
}

/**
 * An idle rule's event (event_processor.go updateAlarmOnNoEventsEvent): the
 * entity sent nothing for too long. It opens an alarm, or moves the open
 * one, to the event's state with status noevents (5); the next check
 * recomputes the status as usual.
 */
function noEvents(base: EntityAlarms, e: Event, clock: Clock, s: AlarmSettings, remember: (d: EntityAlarms) => EntityAlarms): Applied {
  const t = Number(e.timestamp);
  const state = Number(e.state);
  const who = author(e);
  if (!base.current) {
    if (state === 0) return { next: remember(base), changes: [], ignored: 'noevents at state 0 and no open alarm' };
    const a = openAlarm(e, clock, s);
    a.v.state = { ...a.v.state, a: who };
    a.v.status = step('statusinc', t, who, str(e.output), STATUS.noevents, e);
    a.v.steps = [a.v.state, a.v.status];
    base.current = a;
    base.open = true;
    base.count += 1;
    return { next: remember(base), changes: ['opened'] };
  }
  const a = base.current;
  if (a.v.status.val === STATUS.noevents && a.v.state.val === state) return { next: remember(base), changes: [], ignored: 'already idle' };
  if (state !== a.v.state.val) {
    a.v.state = step(state > a.v.state.val ? 'stateinc' : 'statedec', t, who, str(e.output), state, e);
    pushStep(a, a.v.state, s);
  }
  const status = state === 0 ? computeStatus(a, t, s) : STATUS.noevents;
  if (status !== a.v.status.val) {
    a.v.status = step(status > a.v.status.val ? 'statusinc' : 'statusdec', t, who, str(e.output), status, e);
    a.v.state_changes_since_status_update = 0;
    a.v.last_update_date = t;
    pushStep(a, a.v.status, s);
  }
  return { next: remember(base), changes: ['changed'] };
}

/** The document as it was, the event remembered (a redelivery changes nothing either), with why. */
function unchanged(doc: EntityAlarms | undefined, remember: (d: EntityAlarms) => EntityAlarms, why: string): Applied {
  const kept = doc ? structuredClone(doc) : { current: null, open: false, count: 0, seen: [] };
  return { next: remember(kept), changes: [], ignored: why };
}

/**
 * On beat: time moves statuses on (flapping and stealthy windows end), an
 * expired snooze ends, and an alarm off for resolveDelay, or cancelled for
 * cancelDelay, is resolved. `resolved` is the alarm as it was closed.
 */
export function onBeat(doc: EntityAlarms, now: number, s: AlarmSettings): Applied & { resolved?: Alarm } {
  if (!doc.current) return { next: doc, changes: [] };
  const next = structuredClone(doc);
  const a = next.current!;
  const changes: Change[] = [];
  if (a.v.snooze && a.v.snooze.val <= now) {
    endSnooze(a, a.v.snooze.val);
    changes.push('unsnoozed');
  }
  try {
    // An idle alarm stays idle until its entity speaks again: time alone does not compute its status.
    if (a.v.status.val !== STATUS.noevents && setStatus(a, now, now, 'axe', '', s)) changes.push('changed');
  } catch (err) {
    // A status step past the limit: the status waits (a resolution below needs no step).
    if (!(err instanceof StepLimit)) throw err;
  }
  const offFor = a.v.status.val === STATUS.off ? now - a.v.status.t : -1;
  const cancelledFor = a.v.canceled ? now - a.v.canceled.t : -1;
  if (!(offFor >= s.resolveDelay || cancelledFor >= s.cancelDelay)) return { next: changes.length ? next : doc, changes };
  // PartialUpdateResolve: the resolution time and the durations; no step.
  if (a.v.snooze) endSnooze(a, now);
  a.v.resolved = now;
  a.v.duration = now - a.v.creation_date;
  a.v.current_state_duration = now - a.v.state.t;
  a.v.active_duration = a.v.duration - a.v.inactive_duration;
  next.current = null;
  next.open = false;
  return { next, changes: [...changes, 'resolved'], resolved: a };
}
