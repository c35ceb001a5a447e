import { entityId } from '../event/canopsis-event.js';
import type { Event } from '../tasks/types.js';
import {
  type Alarm,
  type AlarmSettings,
  type EntityAlarms,
  SEEN_MAX,
  STATUS,
  type StatusValue,
  type Step,
  type StepType,
} from './model.js';

/*
 * What an event does to an entity's alarms: a pure function of the entity's
 * document, the event and the settings. axe runs it inside the store's
 * atomic modify; tests run it alone.
 */

export type Change = 'opened' | 'changed' | 'resolved' | 'acked' | 'unacked' | 'cancelled' | 'uncancelled';

export interface Applied {
  next: EntityAlarms;
  /** What happened, for event dispatchers; empty when nothing did. */
  changes: Change[];
  /** Why the event changed nothing, when it did not. */
  ignored?: string;
}

const str = (v: unknown, d = '') => (typeof v === 'string' ? v : v === undefined || v === null ? d : String(v));

function computeStatus(a: Alarm, now: number, s: AlarmSettings): StatusValue {
  if (a.cancel) return STATUS.cancelled;
  const recent = a.state_changes.filter((t) => now - t <= s.flappingWindow);
  if (recent.length >= s.flappingCount) return STATUS.flapping;
  // A short trip out of OK: stealthy for a window after coming back, then off.
  if (
    a.state.val === 0 &&
    a.back_to_ok !== undefined &&
    a.back_to_ok - a.non_ok_since <= s.stealthyWindow &&
    now - a.back_to_ok < s.stealthyWindow
  ) {
    return STATUS.stealthy;
  }
  return a.state.val > 0 ? STATUS.ongoing : STATUS.off;
}

function pushStep(a: Alarm, step: Step, s: AlarmSettings): void {
  a.steps.push(step);
  if (a.steps.length > s.maxSteps) a.steps.splice(0, a.steps.length - s.maxSteps);
}

function setStatus(a: Alarm, now: number, author: string, s: AlarmSettings): boolean {
  const val = computeStatus(a, now, s);
  if (val === a.status.val) return false;
  const type: StepType = val > a.status.val ? 'statusinc' : 'statusdec';
  a.status = { val, t: now };
  pushStep(a, { type, t: now, author, message: '', val }, s);
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

function openAlarm(e: Event, doc: EntityAlarms, now: number, s: AlarmSettings): Alarm {
  const entity = entityId(e);
  const author = `${str(e.connector)}.${str(e.connector_name)}`;
  const state = Number(e.state);
  const alarm: Alarm = {
    id: `${entity}:${now}:${doc.count + 1}`,
    entity,
    connector: str(e.connector),
    connector_name: str(e.connector_name),
    component: str(e.component),
    ...(e.source_type === 'resource' ? { resource: str(e.resource) } : {}),
    opened_at: now,
    last_update: now,
    last_event: now,
    events_count: 1,
    output: str(e.output),
    state: { val: state, t: now, locked: false },
    status: { val: STATUS.ongoing, t: now },
    state_changes: [now],
    non_ok_since: now,
    steps: [],
    resolved: null,
  };
  pushStep(alarm, { type: 'stateinc', t: now, author, message: str(e.output), val: state }, s);
  pushStep(alarm, { type: 'statusinc', t: now, author, message: str(e.output), val: STATUS.ongoing }, s);
  return alarm;
}

function applyCheck(a: Alarm, e: Event, now: number, s: AlarmSettings): boolean {
  const author = `${str(e.connector)}.${str(e.connector_name)}`;
  const state = Number(e.state);
  a.events_count += 1;
  a.last_event = now;
  a.last_update = now;
  a.output = str(e.output);
  // A changestate lock holds until a state-0 check, which releases it even at state 0 already.
  if (state === 0 && a.state.locked && a.state.val === 0) a.state = { ...a.state, locked: false };
  if (state !== a.state.val && (!a.state.locked || state === 0)) {
    const type: StepType = state > a.state.val ? 'stateinc' : 'statedec';
    if (state === 0) a.back_to_ok = now;
    else if (a.state.val === 0) a.non_ok_since = now;
    a.state = { val: state, t: now, locked: false };
    a.state_changes = [...a.state_changes.filter((t) => now - t <= s.flappingWindow), now].slice(-(s.flappingCount * 2));
    pushStep(a, { type, t: now, author, message: str(e.output), val: state }, s);
  }
  setStatus(a, now, author, s);
  return true;
}

type Action = (a: Alarm, e: Event, now: number, s: AlarmSettings) => { changes: Change[]; ignored?: string };

const author = (e: Event) => str(e.author, `${str(e.connector)}.${str(e.connector_name)}`);
const message = (e: Event) => str(e.output);

const ACTIONS: Record<string, Action> = {
  ack: (a, e, now, s) => {
    if (a.ack) return { changes: [], ignored: 'the alarm is already acknowledged' };
    a.ack = { author: author(e), message: message(e), t: now };
    pushStep(a, { type: 'ack', t: now, author: author(e), message: message(e) }, s);
    return { changes: ['acked'] };
  },
  ackremove: (a, e, now, s) => {
    if (!a.ack) return { changes: [], ignored: 'the alarm is not acknowledged' };
    delete a.ack;
    pushStep(a, { type: 'ackremove', t: now, author: author(e), message: message(e) }, s);
    return { changes: ['unacked'] };
  },
  cancel: (a, e, now, s) => {
    if (a.cancel) return { changes: [], ignored: 'the alarm is already cancelled' };
    a.cancel = { author: author(e), message: message(e), t: now };
    pushStep(a, { type: 'cancel', t: now, author: author(e), message: message(e) }, s);
    setStatus(a, now, author(e), s);
    return { changes: ['cancelled'] };
  },
  uncancel: (a, e, now, s) => {
    if (!a.cancel) return { changes: [], ignored: 'the alarm is not cancelled' };
    delete a.cancel;
    pushStep(a, { type: 'uncancel', t: now, author: author(e), message: message(e) }, s);
    setStatus(a, now, author(e), s);
    return { changes: ['uncancelled'] };
  },
  snooze: (a, e, now, s) => {
    const duration = Number(e.duration ?? s.snoozeDefault);
    if (!Number.isFinite(duration) || duration <= 0)
      return { changes: [], ignored: `snooze duration must be positive seconds (found ${JSON.stringify(e.duration)})` };
    a.snooze = { author: author(e), until: now + duration, t: now };
    pushStep(a, { type: 'snooze', t: now, author: author(e), message: message(e), val: now + duration }, s);
    return { changes: ['changed'] };
  },
  changestate: (a, e, now, s) => {
    const state = Number(e.state);
    a.state = { val: state, t: now, locked: true };
    pushStep(a, { type: 'changestate', t: now, author: author(e), message: message(e), val: state }, s);
    setStatus(a, now, author(e), s);
    return { changes: ['changed'] };
  },
  declareticket: (a, e, now, s) => {
    a.ticket = { author: author(e), value: str(e.ticket, 'N/A'), t: now, type: 'declareticket' };
    pushStep(a, { type: 'declareticket', t: now, author: author(e), message: message(e) }, s);
    return { changes: ['changed'] };
  },
  assocticket: (a, e, now, s) => {
    if (!str(e.ticket)) return { changes: [], ignored: 'assocticket without a ticket' };
    a.ticket = { author: author(e), value: str(e.ticket), t: now, type: 'assocticket' };
    pushStep(a, { type: 'assocticket', t: now, author: author(e), message: message(e) }, s);
    return { changes: ['changed'] };
  },
  comment: (a, e, now, s) => {
    pushStep(a, { type: 'comment', t: now, author: author(e), message: message(e) }, s);
    return { changes: ['changed'] };
  },
};

export const REDELIVERY = 'already applied (redelivery)';

export const ALARM_EVENT_TYPES = ['check', ...Object.keys(ACTIONS)];

/** Applies one event to an entity's alarm document. `now` is the event's timestamp. */
export function applyEvent(doc: EntityAlarms | undefined, e: Event, s: AlarmSettings): Applied {
  const base: EntityAlarms = doc ? structuredClone(doc) : { current: null, open: false, count: 0, seen: [] };
  const print = fingerprint(e);
  if (base.seen.includes(print)) return { next: base, changes: [], ignored: REDELIVERY };
  const remember = (next: EntityAlarms) => {
    next.seen = [...next.seen, print].slice(-SEEN_MAX);
    return next;
  };
  const now = Number(e.timestamp);
  const type = str(e.event_type);
  if (type === 'check') {
    const state = Number(e.state);
    if (!base.current) {
      if (state === 0) return { next: remember(base), changes: [], ignored: 'state 0 and no open alarm' };
      base.current = openAlarm(e, base, now, s);
      base.open = true;
      base.count += 1;
      return { next: remember(base), changes: ['opened'] };
    }
    applyCheck(base.current, e, now, s);
    return { next: remember(base), changes: ['changed'] };
  }
  const action = ACTIONS[type];
  if (!action) return { next: base, changes: [], ignored: `event_type ${type} does not act on alarms` };
  if (!base.current) return { next: remember(base), changes: [], ignored: `${type} with no open alarm on ${entityId(e)}` };
  const r = action(base.current, e, now, s);
  base.current.last_update = now;
  return { next: remember(base), ...r };
}

/**
 * On beat: time moves statuses on (flapping and stealthy windows end), and
 * an alarm off for resolveDelay, or cancelled for cancelDelay, is resolved.
 * `resolved` is the alarm as it was closed.
 */
export function onBeat(doc: EntityAlarms, now: number, s: AlarmSettings): Applied & { resolved?: Alarm } {
  if (!doc.current) return { next: doc, changes: [] };
  const next = structuredClone(doc);
  const a = next.current!;
  const changes: Change[] = setStatus(a, now, 'axe', s) ? ['changed'] : [];
  const offFor = a.status.val === STATUS.off ? now - a.status.t : -1;
  const cancelledFor = a.cancel ? now - a.cancel.t : -1;
  if (!(offFor >= s.resolveDelay || cancelledFor >= s.cancelDelay)) return { next: changes.length ? next : doc, changes };
  a.resolved = now;
  a.last_update = now;
  pushStep(a, { type: 'resolve', t: now, author: 'axe', message: '' }, s);
  next.current = null;
  next.open = false;
  return { next, changes: [...changes, 'resolved'], resolved: a };
}
