import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type Applied,
  applyEvent,
  type Change,
  type Clock,
  cropSteps,
  fingerprint,
  onBeat,
  REDELIVERY,
} from '../../runtime/alarm/apply.js';
import {
  type Alarm,
  type AlarmSettings,
  DEFAULT_ALARM_SETTINGS,
  type EntityAlarms,
  isLocked,
  STATUS,
  type Step,
  type StepType,
} from '../../runtime/alarm/model.js';
import type { Event } from '../../runtime/tasks/types.js';

/*
 * The alarm rules (runtime/alarm/apply.ts), as an operator sees them: a
 * sequence of events and beats on one entity, and after each one the
 * alarm's state, status, steps, events_count, ack, snooze and resolution.
 * Everything here is pure: axe's clock is the event's `timestamp` unless an
 * op says otherwise, beats get theirs, and alarm ids come from a counter.
 *
 * The alarm is in Canopsis v4's shape (capensis/canopsis, release-22.10,
 * community/go-engines-community/lib/canopsis/types/alarm_value.go and
 * model_alarm.go); the Canopsis sources cited below are on that branch.
 */

const settings = (over: Partial<AlarmSettings> = {}): AlarmSettings => ({ ...DEFAULT_ALARM_SETTINGS, ...over });

const SRC = { connector: 'nagios', connector_name: 'nagios1', source_type: 'resource', component: 'host1', resource: 'disk' } as const;
const ENTITY = 'disk/host1';

const check = (t: number, state: number, extra: Event = {}): Event => ({
  ...SRC,
  event_type: 'check',
  state,
  output: `state ${state} at ${t}`,
  timestamp: t,
  ...extra,
});
const act = (type: string, t: number, extra: Event = {}): Event => ({
  ...SRC,
  event_type: type,
  author: 'alice',
  output: `${type} by alice at ${t}`,
  timestamp: t,
  ...extra,
});

/** Deterministic, UUID-shaped alarm ids (hex, as the display name is drawn from one too). */
const idMaker = () => {
  let n = 0;
  return () => `00000000-0000-4000-8000-${(++n).toString(16).padStart(12, '0')}`;
};
const FIRST_ID = idMaker()();
/** axe's clock at `now`, with deterministic ids. */
const clockAt = (now: number, newId: () => string = idMaker()): Clock => ({ now, newId });
/** applyEvent with axe's clock at the event's timestamp (or `now`). */
const apply = (doc: EntityAlarms | undefined, e: Event, s: AlarmSettings = DEFAULT_ALARM_SETTINGS, now = Number(e.timestamp)) =>
  applyEvent(doc, e, s, clockAt(now));

/** Steps whose `val` means something; the others carry 0. */
const VALUED = new Set<StepType>(['stateinc', 'statedec', 'statusinc', 'statusdec', 'changestate', 'snooze']);
/** A step as an operator reads it in the timeline: `type` or `type:val`. */
const label = (s: Step) => (VALUED.has(s._t) ? `${s._t}:${s.val}` : s._t);
const steps = (a: Alarm | null | undefined) => (a ? a.v.steps.map(label) : []);
/** A step's type, time, author, message and value (who asked for it is tested on its own). */
const core = (s: Step | undefined) => s && { _t: s._t, t: s.t, a: s.a, m: s.m, val: s.val };

type Op = ({ ev: Event; now?: number } | { beat: number }) & { expect?: Expect };

interface Expect {
  changes?: Change[];
  /** The reason the op changed nothing; checked on every op (absent = must not be ignored). */
  ignored?: string | RegExp;
  state?: number;
  status?: number;
  locked?: boolean;
  events_count?: number;
  /** Steps this op added to the alarm's timeline (in order). */
  added?: string[];
  /** The whole timeline after this op. */
  steps?: string[];
  /** The ack's author, or null for no ack. */
  ack?: string | null;
  /** When the snooze ends, or null for no snooze. */
  snoozed?: number | null;
  snooze_duration?: number;
  /** Whether the entity still has an open alarm after this op. */
  open?: boolean;
  /** Whether this op resolved the alarm (beats only). */
  resolved?: boolean;
  /** A beat that changed nothing returns the very same document. */
  same?: boolean;
}

/** Plays ops on one entity, asserting each op's expectations; returns the final document and every result. */
function play(s: AlarmSettings, ops: Op[], start?: EntityAlarms) {
  let doc: EntityAlarms | undefined = start;
  const newId = idMaker();
  const results: Array<Applied & { resolved?: Alarm }> = [];
  ops.forEach((op, i) => {
    const what =
      'beat' in op
        ? `beat@${op.beat}`
        : `${String(op.ev.event_type)}@${String(op.ev.timestamp)}${op.ev.state !== undefined ? ` state ${String(op.ev.state)}` : ''}`;
    const at = `op #${i} (${what})`;
    const before = steps(doc?.current);
    let r: Applied & { resolved?: Alarm };
    if ('beat' in op) {
      assert.ok(doc, `${at}: a beat needs a document`);
      r = onBeat(doc, op.beat, s);
    } else {
      r = applyEvent(doc, op.ev, s, { now: op.now ?? Number(op.ev.timestamp), newId });
    }
    results.push(r);
    const e = op.expect ?? {};
    const a = r.resolved ?? r.next.current;
    if (e.ignored instanceof RegExp) assert.match(r.ignored ?? '', e.ignored, `${at}: ignored`);
    else assert.equal(r.ignored, e.ignored, `${at}: ignored`);
    if (e.changes) assert.deepEqual(r.changes, e.changes, `${at}: changes`);
    if (e.state !== undefined) assert.equal(a?.v.state.val, e.state, `${at}: state`);
    if (e.status !== undefined) assert.equal(a?.v.status.val, e.status, `${at}: status`);
    if (e.locked !== undefined) assert.equal(a ? isLocked(a) : undefined, e.locked, `${at}: locked`);
    if (e.events_count !== undefined) assert.equal(a?.v.events_count, e.events_count, `${at}: events_count`);
    if (e.added) assert.deepEqual(steps(a).slice(before.length), e.added, `${at}: steps added`);
    if (e.steps) assert.deepEqual(steps(a), e.steps, `${at}: steps`);
    if (e.ack !== undefined) assert.equal(a?.v.ack?.a ?? null, e.ack, `${at}: ack`);
    if (e.snoozed !== undefined) assert.equal(a?.v.snooze?.val ?? null, e.snoozed, `${at}: snooze end`);
    if (e.snooze_duration !== undefined) assert.equal(a?.v.snooze_duration, e.snooze_duration, `${at}: snooze_duration`);
    if (e.open !== undefined) {
      assert.equal(r.next.open, e.open, `${at}: open flag`);
      assert.equal(r.next.current !== null, e.open, `${at}: current alarm`);
    }
    if (e.resolved !== undefined) {
      assert.equal(r.resolved !== undefined, e.resolved, `${at}: resolved`);
      if (e.resolved) {
        assert.equal(r.resolved?.v.resolved, (op as { beat: number }).beat, `${at}: resolved timestamp`);
        assert.equal(r.next.current, null, `${at}: current cleared`);
        assert.equal(r.next.open, false, `${at}: open cleared`);
        assert.ok(r.changes.includes('resolved'), `${at}: 'resolved' change`);
      } else {
        assert.ok(!r.changes.includes('resolved'), `${at}: no 'resolved' change`);
        if (r.next.current) assert.equal(r.next.current.v.resolved, undefined, `${at}: still unresolved`);
      }
    }
    if (e.same !== undefined) assert.equal(r.next === doc, e.same, `${at}: same document`);
    doc = r.next;
  });
  return { doc: doc!, results };
}

// ---------------------------------------------------------------- opening

test('a check with state > 0 and no alarm opens one: stateinc then statusinc to ongoing, events_count 1', () => {
  for (const state of [1, 2, 3]) {
    const r = apply(undefined, check(1000, state, { long_output: 'details' }));
    assert.deepEqual(r.changes, ['opened'], `state ${state}`);
    assert.equal(r.ignored, undefined);
    const a = r.next.current!;
    assert.ok(a, `state ${state} opens an alarm`);
    assert.equal(r.next.open, true);
    assert.equal(r.next.count, 1);
    assert.deepEqual(steps(a), [`stateinc:${state}`, `statusinc:${STATUS.ongoing}`]);
    assert.deepEqual(
      a.v.steps.map((s) => [s.t, s.a, s.m]),
      [
        [1000, 'nagios.nagios1', `state ${state} at 1000`],
        [1000, 'nagios.nagios1', `state ${state} at 1000`],
      ],
    );
    assert.deepEqual(a.v.state, a.v.steps[0], 'v.state is the step that set it');
    assert.deepEqual(a.v.status, a.v.steps[1], 'v.status is the step that set it');
    assert.equal(a.v.state.val, state);
    assert.equal(isLocked(a), false);
    assert.equal(a.v.status.val, STATUS.ongoing);
    assert.equal(a.v.events_count, 1);
    assert.equal(a.v.total_state_changes, 1);
    assert.equal(a.v.state_changes_since_status_update, 0);
    assert.equal(a.v.output, `state ${state} at 1000`);
    assert.equal(a.v.initial_output, `state ${state} at 1000`);
    assert.equal(a.v.long_output, 'details');
    assert.deepEqual(a.v.long_output_history, ['details']);
    assert.equal(a.t, 1000);
    assert.equal(a.v.creation_date, 1000);
    assert.equal(a.v.activation_date, 1000, 'active from its creation');
    assert.equal(a.v.last_event_date, 1000);
    assert.equal(a.v.last_update_date, 1000);
    assert.match(a.v.display_name, /^[A-Z]{2}-[A-Z]{2}-[A-Z]{2}$/);
    assert.equal(a.v.resolved, undefined);
    assert.equal(a.v.ack, undefined);
    assert.equal(a.v.snooze_duration, 0);
    assert.equal(a.d, ENTITY);
    assert.equal(a._id, FIRST_ID, 'the id is the injected one');
  }
});

test("time: the alarm (t, creation_date, last_event_date) is on axe's clock, the steps and last_update_date on the event's timestamp", () => {
  // event_processor.go: newAlarm(event, _, now) sets Time, CreationDate and LastEventDate to now, LastUpdateDate to the event's timestamp.
  const FIXED = '0f0e0d0c-0b0a-4908-8706-050403020100';
  const s = settings({ stealthyWindow: 5 });
  const r1 = applyEvent(undefined, check(1000, 2), s, { now: 1004, newId: () => FIXED });
  const a1 = r1.next.current!;
  assert.equal(a1._id, FIXED);
  assert.equal(a1.t, 1004);
  assert.equal(a1.v.creation_date, 1004);
  assert.equal(a1.v.activation_date, 1004);
  assert.equal(a1.v.last_event_date, 1004);
  assert.equal(a1.v.last_update_date, 1000);
  assert.deepEqual(
    a1.v.steps.map((x) => x.t),
    [1000, 1000],
  );
  const r2 = applyEvent(r1.next, check(1010, 3), s, { now: 1013 });
  const a2 = r2.next.current!;
  assert.equal(a2._id, FIXED, 'still the same alarm');
  assert.equal(a2.t, 1004);
  // updateAlarm (event_processor.go): a later check's last_event_date is its own timestamp.
  assert.equal(a2.v.last_event_date, 1010);
  assert.equal(a2.v.last_update_date, 1010);
  assert.equal(a2.v.state.t, 1010);
  const a3 = applyEvent(r2.next, act('ack', 1020), s, { now: 1030 }).next.current!;
  assert.equal(a3.v.ack!.t, 1020);
  assert.equal(a3.v.last_event_date, 1010, 'an action is not an event of the entity');
  assert.equal(a3.v.last_update_date, 1010, 'nor an update: only state and status changes are (UpdateAlarmState)');
});

test('entity id: resource/component for a resource event, component for a component event', () => {
  const res = apply(undefined, check(1000, 2)).next.current!;
  assert.equal(res.d, 'disk/host1');
  assert.equal(res.v.component, 'host1');
  assert.equal(res.v.resource, 'disk');
  assert.equal(res.v.connector, 'nagios');
  assert.equal(res.v.connector_name, 'nagios1');
  const comp = apply(undefined, check(1000, 2, { source_type: 'component', resource: undefined })).next.current!;
  assert.equal(comp.d, 'host1');
  assert.equal(comp.v.component, 'host1');
  assert.equal('resource' in comp.v, false);
});

test('ids: without an injected id generator, alarms get UUIDs, distinct even for alarms opened in the same second', () => {
  const s = settings({ resolveDelay: 0, stealthyWindow: 0 });
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  const d1 = applyEvent(undefined, check(1000, 2), s, { now: 1000 }).next;
  const first = d1.current!;
  assert.match(first._id, UUID);
  const d2 = applyEvent(d1, check(1000, 0), s, { now: 1000 }).next;
  const b = onBeat(d2, 1000, s);
  assert.ok(b.resolved);
  const d3 = applyEvent(b.next, check(1000, 2, { output: 'again' }), s, { now: 1000 });
  assert.deepEqual(d3.changes, ['opened']);
  assert.match(d3.next.current!._id, UUID);
  assert.notEqual(d3.next.current!._id, first._id);
});

test('a check with state 0 and no open alarm opens nothing (the entity is still recorded)', () => {
  const r = apply(undefined, check(1000, 0));
  assert.deepEqual(r.changes, []);
  assert.equal(r.ignored, 'state 0 and no open alarm');
  assert.equal(r.next.current, null);
  assert.equal(r.next.open, false);
  assert.equal(r.next.count, 0);
  assert.equal(r.next.seen.length, 1, 'remembered, so a redelivery is recognised');
  // Another OK check on that document: still nothing.
  const r2 = apply(r.next, check(1010, 0));
  assert.equal(r2.ignored, 'state 0 and no open alarm');
  assert.equal(r2.next.current, null);
});

test('one open alarm per entity: later checks update the same alarm (output, last event, events_count, state change counters)', () => {
  const { doc, results } = play(DEFAULT_ALARM_SETTINGS, [
    { ev: check(1000, 2), expect: { changes: ['opened'], events_count: 1 } },
    {
      ev: check(1010, 2, { output: 'still bad' }),
      expect: { changes: ['changed'], state: 2, status: STATUS.ongoing, events_count: 2, added: [] },
    },
    {
      ev: check(1020, 3, { output: 'worse', long_output: 'worse details' }),
      expect: { changes: ['changed'], state: 3, status: STATUS.ongoing, events_count: 3, added: ['stateinc:3'] },
    },
    {
      ev: check(1030, 1, { output: 'better', long_output: 'worse details' }),
      expect: { changes: ['changed'], state: 1, status: STATUS.ongoing, events_count: 4, added: ['statedec:1'] },
    },
  ]);
  const a = doc.current!;
  assert.equal(doc.count, 1, 'no second alarm');
  assert.equal(a._id, results[0]!.next.current!._id);
  assert.equal(a.v.creation_date, 1000);
  assert.equal(a.v.output, 'better');
  assert.equal(a.v.initial_output, 'state 2 at 1000');
  assert.equal(a.v.long_output, 'worse details');
  assert.deepEqual(a.v.long_output_history, ['', 'worse details']);
  assert.equal(a.v.last_event_date, 1030);
  assert.equal(a.v.last_update_date, 1030);
  assert.equal(a.v.state.t, 1030);
  // UpdateAlarmState (event_processor.go): each state change counts; a status change resets the count since the last status.
  assert.equal(a.v.total_state_changes, 3);
  assert.equal(a.v.state_changes_since_status_update, 2);
  assert.equal(results[1]!.next.current!.v.last_update_date, 1000, 'a check that changes nothing does not update last_update_date');
  assert.deepEqual(
    a.v.steps.map((s) => s.m),
    ['state 2 at 1000', 'state 2 at 1000', 'worse', 'better'],
  );
});

// ---------------------------------------------------------------- resolution

test('open then resolve: state 2, state 0 (off), resolved by beat after resolve_delay and not before', () => {
  const s = settings({ resolveDelay: 60 });
  const { doc, results } = play(s, [
    {
      ev: check(1000, 2),
      expect: { changes: ['opened'], state: 2, status: STATUS.ongoing, steps: ['stateinc:2', 'statusinc:1'], open: true },
    },
    { beat: 1200, expect: { changes: [], same: true, resolved: false, open: true } },
    // Back to OK long after leaving it (> stealthy window): plain off.
    {
      ev: check(1400, 0),
      expect: { changes: ['changed'], state: 0, status: STATUS.off, events_count: 2, added: ['statedec:0', 'statusdec:0'], open: true },
    },
    { beat: 1401, expect: { changes: [], same: true, resolved: false, open: true } },
    { beat: 1459, expect: { changes: [], same: true, resolved: false, open: true, status: STATUS.off } },
    // PartialUpdateResolve (partial_update_alarm.go): no step, the resolution time and the durations.
    {
      beat: 1460,
      expect: { changes: ['resolved'], resolved: true, open: false, added: [], state: 0, status: STATUS.off, events_count: 2 },
    },
  ]);
  const closed = results[5]!.resolved!;
  assert.equal(closed.v.resolved, 1460);
  assert.equal(closed.v.duration, 460, 'from creation to resolution');
  assert.equal(closed.v.current_state_duration, 60, 'from the last state change to resolution');
  assert.equal(closed.v.active_duration, 460, 'never snoozed: active all along');
  assert.equal(closed.v.last_update_date, 1400, 'resolving is not an update of the alarm');
  assert.deepEqual(steps(closed), ['stateinc:2', 'statusinc:1', 'statedec:0', 'statusdec:0']);
  assert.equal(doc.current, null);
  assert.equal(doc.open, false);
  assert.equal(doc.count, 1);
  // Once resolved, beats have nothing to do.
  const again = onBeat(doc, 9999, s);
  assert.deepEqual(again.changes, []);
  assert.equal(again.next, doc);
});

test('an alarm that is ongoing (state > 0) is never resolved by beats', () => {
  play(settings({ resolveDelay: 1 }), [
    { ev: check(1000, 1) },
    { beat: 1_000_000, expect: { changes: [], same: true, resolved: false, status: STATUS.ongoing } },
  ]);
});

test('off then not-OK again before resolve_delay: the alarm stays open and ongoing, same id', () => {
  const { doc, results } = play(settings({ resolveDelay: 60, stealthyWindow: 5 }), [
    { ev: check(1000, 2) },
    { ev: check(1100, 0), expect: { status: STATUS.off } },
    { beat: 1130, expect: { resolved: false } },
    { ev: check(1140, 3), expect: { changes: ['changed'], state: 3, status: STATUS.ongoing, added: ['stateinc:3', 'statusinc:1'] } },
    { beat: 1200, expect: { resolved: false, same: true, open: true } },
  ]);
  assert.equal(doc.count, 1);
  assert.equal(doc.current!._id, results[0]!.next.current!._id);
});

test('a new alarm after resolution gets a new id and a fresh timeline', () => {
  const s = settings({ resolveDelay: 60, stealthyWindow: 5 });
  const { doc, results } = play(s, [
    { ev: check(1000, 2) },
    { ev: act('ack', 1005), expect: { changes: ['acked'], ack: 'alice' } },
    { ev: check(1100, 0) },
    { beat: 1160, expect: { resolved: true } },
    { ev: act('ack', 1170), expect: { changes: [], ignored: `ack with no open alarm on ${ENTITY}`, open: false } },
    {
      ev: check(2000, 3),
      expect: {
        changes: ['opened'],
        open: true,
        state: 3,
        status: STATUS.ongoing,
        events_count: 1,
        steps: ['stateinc:3', 'statusinc:1'],
        ack: null,
      },
    },
  ]);
  const first = results[3]!.resolved!;
  const second = doc.current!;
  assert.equal(first._id, FIRST_ID);
  assert.notEqual(second._id, first._id);
  assert.equal(second.d, first.d);
  assert.equal(second.t, 2000);
  assert.equal(second.v.creation_date, 2000);
  assert.equal(second.v.resolved, undefined);
  assert.equal(doc.count, 2);
  assert.equal(first.v.resolved, 1160, 'the first alarm as it was closed is unchanged');
});

// ---------------------------------------------------------------- stealthy

test('stealthy blip: back to OK within stealthy_window is stealthy (2), off on the beat after the window, then resolved', () => {
  const s = settings({ stealthyWindow: 300, resolveDelay: 60 });
  play(s, [
    { ev: check(1000, 3), expect: { changes: ['opened'], status: STATUS.ongoing } },
    { ev: check(1060, 0), expect: { changes: ['changed'], state: 0, status: STATUS.stealthy, added: ['statedec:0', 'statusinc:2'] } },
    // A stealthy alarm is not off: no resolution while the window runs.
    { beat: 1200, expect: { changes: [], same: true, status: STATUS.stealthy, resolved: false } },
    { beat: 1359, expect: { changes: [], same: true, status: STATUS.stealthy, resolved: false } },
    { beat: 1360, expect: { changes: ['changed'], status: STATUS.off, added: ['statusdec:0'], resolved: false, open: true } },
    { beat: 1419, expect: { changes: [], same: true, resolved: false } },
    {
      beat: 1420,
      expect: {
        changes: ['resolved'],
        resolved: true,
        steps: ['stateinc:3', 'statusinc:1', 'statedec:0', 'statusinc:2', 'statusdec:0'],
      },
    },
  ]);
});

test('stealthy: table of how long the alarm was out of OK', () => {
  const s = settings({ stealthyWindow: 300 });
  const rows: Array<{ back: number; status: number; why: string }> = [
    { back: 1001, status: STATUS.stealthy, why: '1 s out of OK' },
    { back: 1300, status: STATUS.stealthy, why: 'exactly the window' },
    { back: 1301, status: STATUS.off, why: 'one second longer than the window' },
    { back: 5000, status: STATUS.off, why: 'long outage' },
  ];
  for (const row of rows) {
    const { doc } = play(s, [{ ev: check(1000, 2) }, { ev: check(row.back, 0) }]);
    assert.equal(doc.current!.v.status.val, row.status, row.why);
  }
});

test('stealthy: the window counts from the last time the state left OK, and non-OK again ends stealthy', () => {
  const s = settings({ stealthyWindow: 300 });
  play(s, [
    { ev: check(1000, 2) },
    { ev: check(1010, 0), expect: { status: STATUS.stealthy } },
    { ev: check(1020, 2), expect: { state: 2, status: STATUS.ongoing, added: ['stateinc:2', 'statusdec:1'] } },
    // Left OK at 1020, back at 1100: stealthy again (the first outage's start does not count).
    { ev: check(1100, 0), expect: { status: STATUS.stealthy, added: ['statedec:0', 'statusinc:2'] } },
    { ev: check(1200, 1), expect: { status: STATUS.ongoing } },
    // Left OK at 1200, back at 1600: more than the window, off.
    { ev: check(1600, 0), expect: { status: STATUS.off, added: ['statedec:0', 'statusdec:0'] } },
  ]);
});

test('stealthy: a state change between non-OK states does not restart the stealthy window', () => {
  play(settings({ stealthyWindow: 300 }), [
    { ev: check(1000, 3) },
    { ev: check(1200, 1), expect: { added: ['statedec:1'] } },
    // Out of OK since 1000: 350 s > 300 s.
    { ev: check(1350, 0), expect: { status: STATUS.off } },
  ]);
});

// ---------------------------------------------------------------- flapping

const FLAP = settings({ flappingCount: 4, flappingWindow: 60, stealthyWindow: 5, resolveDelay: 60 });

test('flapping: 4 state changes within 60 s make status 3; after the window the beat brings it back to ongoing, then off and resolved', () => {
  play(FLAP, [
    { ev: check(1000, 2), expect: { changes: ['opened'], status: STATUS.ongoing } },
    { ev: check(1010, 0), expect: { status: STATUS.off, added: ['statedec:0', 'statusdec:0'] } },
    { ev: check(1020, 2), expect: { status: STATUS.ongoing, added: ['stateinc:2', 'statusinc:1'] } },
    { ev: check(1030, 0), expect: { state: 0, status: STATUS.flapping, added: ['statedec:0', 'statusinc:3'] } },
    { ev: check(1040, 2), expect: { state: 2, status: STATUS.flapping, added: ['stateinc:2'], events_count: 5 } },
    // Same state again: not a change, still flapping.
    { ev: check(1045, 2), expect: { status: STATUS.flapping, added: [], events_count: 6 } },
    // Changes at 1010, 1020, 1030, 1040 are within 60 s of 1070: still flapping.
    { beat: 1070, expect: { changes: [], same: true, status: STATUS.flapping, resolved: false } },
    // At 1071 only 3 changes are left in the window: back to ongoing (state 2).
    { beat: 1071, expect: { changes: ['changed'], status: STATUS.ongoing, added: ['statusdec:1'], resolved: false } },
    { ev: check(1100, 0), expect: { status: STATUS.off, added: ['statedec:0', 'statusdec:0'] } },
    { beat: 1159, expect: { resolved: false, same: true } },
    { beat: 1160, expect: { resolved: true, changes: ['resolved'] } },
  ]);
});

test('flapping that ends on OK: the beat after the window makes it off, resolved resolve_delay after that beat', () => {
  play(FLAP, [
    { ev: check(1000, 2) },
    { ev: check(1010, 0) },
    { ev: check(1020, 2) },
    { ev: check(1030, 0), expect: { status: STATUS.flapping } },
    // A flapping alarm on OK is not off: resolve_delay does not run.
    { beat: 1060, expect: { changes: [], same: true, status: STATUS.flapping, resolved: false } },
    { beat: 1061, expect: { changes: ['changed'], status: STATUS.off, added: ['statusdec:0'], resolved: false } },
    { beat: 1120, expect: { changes: [], same: true, resolved: false } },
    { beat: 1121, expect: { changes: ['resolved'], resolved: true } },
  ]);
});

test('flapping: the same number of changes spread over more than the window is not flapping', () => {
  play(FLAP, [
    { ev: check(1000, 2) },
    { ev: check(1010, 0) },
    { ev: check(1040, 2) },
    // 1000 is 61 s before 1061: only 3 changes in the window (and 21 s out of OK: not stealthy).
    { ev: check(1061, 0), expect: { status: STATUS.off } },
    { ev: check(1090, 2), expect: { status: STATUS.ongoing } },
  ]);
});

test('flapping with the shipped defaults (10 changes in 3600 s)', () => {
  const ops: Op[] = [{ ev: check(1000, 2) }];
  for (let i = 1; i < 10; i++) ops.push({ ev: check(1000 + i * 100, i % 2 ? 0 : 2) });
  const { doc } = play(DEFAULT_ALARM_SETTINGS, ops);
  assert.equal(doc.current!.v.status.val, STATUS.flapping, '10 changes in 900 s');
  const { doc: nine } = play(DEFAULT_ALARM_SETTINGS, ops.slice(0, 9));
  assert.notEqual(nine.current!.v.status.val, STATUS.flapping, '9 changes');
});

// ---------------------------------------------------------------- status order

test('status order: cancelled (4) over flapping (3); uncancel brings flapping back', () => {
  play(FLAP, [
    { ev: check(1000, 2) },
    { ev: check(1010, 0) },
    { ev: check(1020, 2) },
    { ev: check(1030, 0), expect: { status: STATUS.flapping } },
    { ev: act('cancel', 1031), expect: { changes: ['cancelled'], status: STATUS.cancelled, added: ['cancel', 'statusinc:4'] } },
    { ev: check(1032, 2), expect: { state: 2, status: STATUS.cancelled, added: ['stateinc:2'] } },
    { ev: act('uncancel', 1033), expect: { changes: ['uncancelled'], status: STATUS.flapping, added: ['uncancel', 'statusdec:3'] } },
  ]);
});

test('status order: flapping (3) over stealthy (2)', () => {
  // Back to OK 10 s after leaving it (stealthy), but with 4 changes in 60 s.
  play(settings({ flappingCount: 4, flappingWindow: 60, stealthyWindow: 300 }), [
    { ev: check(1000, 2) },
    { ev: check(1010, 0), expect: { status: STATUS.stealthy } },
    { ev: check(1020, 2), expect: { status: STATUS.ongoing } },
    { ev: check(1030, 0), expect: { status: STATUS.flapping } },
    // Window over, stealthy still running (back to OK at 1030, left it at 1020).
    { beat: 1071, expect: { changes: ['changed'], status: STATUS.stealthy, added: ['statusdec:2'] } },
    { beat: 1330, expect: { changes: ['changed'], status: STATUS.off, added: ['statusdec:0'] } },
  ]);
});

// ---------------------------------------------------------------- changestate

test('changestate locks the state: non-zero checks are counted but ignored, a state-0 check applies and unlocks', () => {
  // UpdateAlarmState (event_processor.go): "if alarm.IsStateLocked() && state != types.AlarmStateOK { return nil }".
  play(settings({ stealthyWindow: 5 }), [
    { ev: check(1000, 2) },
    {
      ev: act('changestate', 1010, { state: 3 }),
      expect: { changes: ['changed'], state: 3, locked: true, status: STATUS.ongoing, added: ['changestate:3'], events_count: 1 },
    },
    {
      ev: check(1020, 1, { output: 'warning' }),
      expect: { changes: ['changed'], state: 3, locked: true, status: STATUS.ongoing, added: [], events_count: 2 },
    },
    { ev: check(1030, 2), expect: { state: 3, locked: true, added: [], events_count: 3 } },
    { ev: check(1035, 3), expect: { state: 3, locked: true, added: [], events_count: 4 } },
    { ev: check(1040, 0), expect: { state: 0, locked: false, status: STATUS.off, added: ['statedec:0', 'statusdec:0'], events_count: 5 } },
    {
      ev: check(1050, 2),
      expect: { state: 2, locked: false, status: STATUS.ongoing, added: ['stateinc:2', 'statusinc:1'], events_count: 6 },
    },
    { ev: check(1060, 1), expect: { state: 1, added: ['statedec:1'] } },
  ]);
});

test("changestate: the step carries the author and message; the output of the alarm stays the last check's", () => {
  const { doc } = play(DEFAULT_ALARM_SETTINGS, [
    { ev: check(1000, 2, { output: 'disk full' }) },
    { ev: act('changestate', 1010, { state: 1, output: 'known issue' }), expect: { state: 1, locked: true } },
  ]);
  const a = doc.current!;
  assert.deepEqual(core(a.v.steps.at(-1)), { _t: 'changestate', t: 1010, a: 'alice', m: 'known issue', val: 1 });
  assert.deepEqual(a.v.state, a.v.steps.at(-1), 'the lock is the state step');
  assert.equal(a.v.output, 'disk full');
  // change_state_executor.go sets LastUpdateDate only with a new status; 2 -> 1 leaves it ongoing.
  assert.equal(a.v.last_update_date, 1000);
  assert.equal(a.v.last_event_date, 1000, 'last_event_date is the last check');
});

test('changestate to 0 then a state-0 check: nothing changes, the lock holds, the alarm resolves', () => {
  // UpdateAlarmState (event_processor.go): `if state != currentState` guards everything, so a state-0 check on a lock at 0
  // does nothing and the lock stays (IsStateLocked: the state step is a changestate); non-OK checks are then refused.
  play(settings({ stealthyWindow: 5, resolveDelay: 60 }), [
    { ev: check(1000, 2) },
    { ev: act('changestate', 1010, { state: 0 }), expect: { state: 0, locked: true, status: STATUS.off } },
    { ev: check(1020, 0), expect: { state: 0, locked: true, added: [] } },
    { ev: check(1030, 2), expect: { state: 0, locked: true, status: STATUS.off, added: [] } },
    { beat: 1100, expect: { resolved: true, open: false } },
  ]);
});

test('changestate: table of when it is ignored (alarm in state 0; same state when already locked)', () => {
  // change_state_executor.go: `if currentState == types.AlarmStateOK { return "", fmt.Errorf("cannot change ok state") }`
  // and `if currentState == *params.State && alarm.IsStateLocked() { return "", nil }`.
  const rows: Array<{ why: string; before: Op[]; state: number; ignored?: string | RegExp; after: number; locked: boolean }> = [
    {
      why: 'alarm back to OK (state 0), not yet resolved',
      before: [{ ev: check(1000, 2) }, { ev: check(1100, 0) }],
      state: 3,
      ignored: /cannot change ok state/,
      after: 0,
      locked: false,
    },
    {
      why: 'alarm locked at 0 by an earlier changestate',
      before: [{ ev: check(1000, 2) }, { ev: act('changestate', 1100, { state: 0 }) }],
      state: 2,
      ignored: /cannot change ok state/,
      after: 0,
      locked: true,
    },
    {
      why: 'same state, already locked',
      before: [{ ev: check(1000, 2) }, { ev: act('changestate', 1100, { state: 3 }) }],
      state: 3,
      ignored: 'the state is already locked at 3',
      after: 3,
      locked: true,
    },
    { why: 'same state, not locked yet: it locks', before: [{ ev: check(1000, 2) }], state: 2, after: 2, locked: true },
    {
      why: 'another state, already locked: the lock moves',
      before: [{ ev: check(1000, 2) }, { ev: act('changestate', 1100, { state: 3 }) }],
      state: 1,
      after: 1,
      locked: true,
    },
  ];
  for (const row of rows) {
    const { doc } = play(settings({ stealthyWindow: 5 }), row.before);
    const r = apply(doc, act('changestate', 1200, { state: row.state }));
    if (row.ignored instanceof RegExp) assert.match(r.ignored ?? '', row.ignored, row.why);
    else assert.equal(r.ignored, row.ignored, row.why);
    assert.deepEqual(r.changes, row.ignored ? [] : ['changed'], row.why);
    assert.equal(r.next.current!.v.state.val, row.after, row.why);
    assert.equal(isLocked(r.next.current!), row.locked, row.why);
    assert.deepEqual(steps(r.next.current), [...steps(doc.current), ...(row.ignored ? [] : [`changestate:${row.state}`])], row.why);
  }
});

// ---------------------------------------------------------------- cancel

test('cancel: status 4, resolved by beat after cancel_delay and not before; a second cancel is ignored', () => {
  const s = settings({ cancelDelay: 3600, resolveDelay: 60 });
  const { results } = play(s, [
    { ev: check(1000, 2) },
    {
      ev: act('cancel', 1010),
      expect: { changes: ['cancelled'], status: STATUS.cancelled, added: ['cancel', 'statusinc:4'], events_count: 1 },
    },
    { ev: act('cancel', 1020), expect: { changes: [], ignored: 'the alarm is already cancelled', added: [], status: STATUS.cancelled } },
    // Checks still update state and count, status stays cancelled.
    { ev: check(1030, 3), expect: { changes: ['changed'], state: 3, status: STATUS.cancelled, added: ['stateinc:3'], events_count: 2 } },
    { ev: check(1040, 0), expect: { state: 0, status: STATUS.cancelled, added: ['statedec:0'] } },
    // Off-ness does not apply to a cancelled alarm: resolve_delay does not resolve it.
    { beat: 1200, expect: { changes: [], same: true, resolved: false } },
    { beat: 4609, expect: { changes: [], same: true, resolved: false, status: STATUS.cancelled } },
    { beat: 4610, expect: { changes: ['resolved'], resolved: true, status: STATUS.cancelled } },
  ]);
  const closed = results.at(-1)!.resolved!;
  assert.deepEqual(core(closed.v.canceled), { _t: 'cancel', t: 1010, a: 'alice', m: 'cancel by alice at 1010', val: 0 });
  assert.deepEqual(steps(closed), ['stateinc:2', 'statusinc:1', 'cancel', 'statusinc:4', 'stateinc:3', 'statedec:0']);
  assert.equal(closed.v.duration, 3610);
});

test('a cancelled alarm with state > 0 is resolved after cancel_delay too', () => {
  play(settings({ cancelDelay: 100 }), [
    { ev: check(1000, 3) },
    { ev: act('cancel', 1000) },
    { beat: 1099, expect: { resolved: false } },
    { beat: 1100, expect: { resolved: true } },
  ]);
});

test('uncancel restores the computed status; uncancel of an uncancelled alarm is ignored; the cancel delay stops', () => {
  play(settings({ cancelDelay: 100, stealthyWindow: 5 }), [
    { ev: check(1000, 2) },
    { ev: act('uncancel', 1005), expect: { changes: [], ignored: 'the alarm is not cancelled', added: [] } },
    { ev: act('cancel', 1010), expect: { status: STATUS.cancelled } },
    { ev: act('uncancel', 1020), expect: { changes: ['uncancelled'], status: STATUS.ongoing, added: ['uncancel', 'statusdec:1'] } },
    { beat: 2000, expect: { resolved: false, same: true, status: STATUS.ongoing } },
    // Cancel again: the delay counts from the new cancel.
    { ev: act('cancel', 2010, { output: 'second cancel' }), expect: { changes: ['cancelled'], status: STATUS.cancelled } },
    { beat: 2109, expect: { resolved: false } },
    { beat: 2110, expect: { resolved: true } },
  ]);
});

test('uncancel of an alarm that went OK while cancelled: off, then resolved after resolve_delay', () => {
  play(settings({ resolveDelay: 60, stealthyWindow: 5 }), [
    { ev: check(1000, 2) },
    { ev: act('cancel', 1010) },
    { ev: check(1020, 0), expect: { status: STATUS.cancelled } },
    { ev: act('uncancel', 1030), expect: { status: STATUS.off, added: ['uncancel', 'statusdec:0'] } },
    { beat: 1089, expect: { resolved: false } },
    { beat: 1090, expect: { resolved: true } },
  ]);
});

// ---------------------------------------------------------------- ack

test('ack with no alarm is ignored with a reason; ack, ack again (ignored), ackremove, ackremove again (ignored), ack', () => {
  const { doc } = play(DEFAULT_ALARM_SETTINGS, [
    { ev: act('ack', 990), expect: { changes: [], ignored: `ack with no open alarm on ${ENTITY}`, open: false } },
    { ev: check(1000, 2), expect: { changes: ['opened'], ack: null } },
    {
      ev: act('ack', 1010, { output: 'looking' }),
      expect: { changes: ['acked'], ack: 'alice', added: ['ack'], events_count: 1, state: 2, status: STATUS.ongoing },
    },
    {
      ev: act('ack', 1020, { author: 'bob' }),
      expect: { changes: [], ignored: 'the alarm is already acknowledged', ack: 'alice', added: [] },
    },
    { ev: act('ackremove', 1030, { author: 'bob' }), expect: { changes: ['unacked'], ack: null, added: ['ackremove'] } },
    { ev: act('ackremove', 1040), expect: { changes: [], ignored: 'the alarm is not acknowledged', ack: null, added: [] } },
    { ev: act('ack', 1050, { author: 'carol' }), expect: { changes: ['acked'], ack: 'carol', added: ['ack'] } },
  ]);
  const a = doc.current!;
  assert.deepEqual(core(a.v.ack), { _t: 'ack', t: 1050, a: 'carol', m: 'ack by alice at 1050', val: 0 });
  assert.deepEqual(
    a.v.steps.filter((s) => s._t.startsWith('ack')).map((s) => [s._t, s.a, s.t, s.m]),
    [
      ['ack', 'alice', 1010, 'looking'],
      ['ackremove', 'bob', 1030, 'ackremove by alice at 1030'],
      ['ack', 'carol', 1050, 'ack by alice at 1050'],
    ],
  );
  assert.equal(a.v.last_update_date, 1000, 'acks are not updates of the alarm (PartialUpdateAck sets no date)');
  assert.equal(a.v.output, 'state 2 at 1000', 'an ack does not change the alarm output');
});

test('an ack without an author is authored by connector.connector_name', () => {
  const { doc } = play(DEFAULT_ALARM_SETTINGS, [{ ev: check(1000, 2) }, { ev: act('ack', 1010, { author: undefined }) }]);
  assert.equal(doc.current!.v.ack!.a, 'nagios.nagios1');
});

test('the ack survives state changes and is kept on the resolved alarm', () => {
  const { results } = play(settings({ resolveDelay: 60, stealthyWindow: 5 }), [
    { ev: check(1000, 2) },
    { ev: act('ack', 1010) },
    { ev: check(1020, 3), expect: { ack: 'alice' } },
    { ev: check(1030, 0), expect: { ack: 'alice' } },
    { beat: 1090, expect: { resolved: true, ack: 'alice' } },
  ]);
  assert.equal(results.at(-1)!.resolved!.v.ack!.t, 1010);
});

// ---------------------------------------------------------------- user_id, initiator

test('action steps carry the user_id and initiator of the event that made them (initiator external by default)', () => {
  // NewAlarmStep(type, time, author, msg, userID, role, initiator) in alarm_value.go; executors pass the event's UserID and
  // Initiator, which Event.Format (types/event.go) sets to "external" when the event has none.
  const { doc } = play(settings({ cancelDelay: 3600 }), [
    { ev: check(1000, 2) },
    { ev: act('ack', 1010, { user_id: 'u-1', initiator: 'user' }), expect: { added: ['ack'] } },
    { ev: act('comment', 1020, { initiator: 'robot' }), expect: { added: ['comment'] } },
    { ev: act('comment', 1025), expect: { added: ['comment'] } },
    { ev: act('cancel', 1030, { user_id: 'u-2', initiator: 'system' }), expect: { added: ['cancel', 'statusinc:4'] } },
    { ev: act('assocticket', 1040, { ticket: 'INC-1', user_id: 'u-3', initiator: 'user' }), expect: { added: ['assocticket'] } },
    { ev: act('changestate', 1050, { state: 3, user_id: 'u-4', initiator: 'user' }), expect: { added: ['changestate:3'] } },
  ]);
  const a = doc.current!;
  assert.deepEqual(
    a.v.steps.slice(2).map((s) => [label(s), s.a, s.user_id || null, s.initiator]),
    [
      ['ack', 'alice', 'u-1', 'user'],
      ['comment', 'alice', null, 'external'],
      ['comment', 'alice', null, 'external'],
      ['cancel', 'alice', 'u-2', 'system'],
      // cancel_executor.go: the status step is the connector's, with the user's id and initiator.
      ['statusinc:4', 'nagios.nagios1', 'u-2', 'system'],
      ['assocticket', 'alice', 'u-3', 'user'],
      ['changestate:3', 'alice', 'u-4', 'user'],
    ],
  );
  assert.equal(a.v.ack!.user_id, 'u-1');
  assert.equal(a.v.ack!.initiator, 'user');
  assert.equal(a.v.canceled!.user_id, 'u-2');
  assert.equal(a.v.status.user_id, 'u-2', 'v.status is the step the cancel added');
  assert.equal(a.v.ticket!.user_id, 'u-3');
  assert.equal(a.v.state.user_id, 'u-4', 'the lock says who set it');
});

// ---------------------------------------------------------------- snooze

test('snooze: duration or snooze_default; a non-positive duration is ignored; a snoozed alarm cannot be snoozed again', () => {
  // snooze_executor.go: `if alarm.Value.Snooze != nil { return "", nil }`; PartialUpdateSnooze: val = the snooze's end.
  const s = settings({ snoozeDefault: 300 });
  const { results } = play(s, [
    { ev: check(1000, 2) },
    { ev: act('snooze', 1002, { duration: 0 }), expect: { changes: [], ignored: /snooze duration must be positive/, added: [] } },
    { ev: act('snooze', 1003, { duration: -5 }), expect: { changes: [], ignored: /snooze duration must be positive/, added: [] } },
    {
      ev: act('snooze', 1004, { duration: 'soon' }),
      expect: { changes: [], ignored: /snooze duration must be positive.*"soon"/, added: [], snoozed: null },
    },
    { ev: act('snooze', 1010, { duration: 600 }), expect: { changes: ['snoozed'], added: ['snooze:1610'], snoozed: 1610 } },
    {
      ev: act('snooze', 1020, { duration: 60, author: 'bob' }),
      expect: { changes: [], ignored: 'the alarm is already snoozed', added: [], snoozed: 1610 },
    },
    // The default duration, once the first snooze is over.
    { ev: act('unsnooze', 1030), expect: { changes: ['unsnoozed'], snoozed: null } },
    { ev: act('snooze', 1040), expect: { changes: ['snoozed'], added: ['snooze:1340'], snoozed: 1340 } },
  ]);
  const first = results[4]!.next.current!;
  assert.deepEqual(core(first.v.snooze), { _t: 'snooze', t: 1010, a: 'alice', m: 'snooze by alice at 1010', val: 1610 });
  assert.equal(first.v.status.val, STATUS.ongoing, 'snooze does not change the status');
  assert.equal(first.v.state.val, 2, 'nor the state');
});

test('unsnooze ends the snooze early without a step and counts the time snoozed; with no snooze it is ignored', () => {
  // unsnooze_executor.go and PartialUpdateUnsnooze: Snooze = nil, snooze_duration += timestamp - snooze.t; no step.
  play(DEFAULT_ALARM_SETTINGS, [
    { ev: check(1000, 2) },
    { ev: act('unsnooze', 1005), expect: { changes: [], ignored: 'the alarm is not snoozed', added: [], snooze_duration: 0 } },
    { ev: act('snooze', 1010, { duration: 600 }), expect: { snoozed: 1610 } },
    { ev: act('unsnooze', 1030), expect: { changes: ['unsnoozed'], added: [], snoozed: null, snooze_duration: 20 } },
    { ev: act('unsnooze', 1040), expect: { changes: [], ignored: 'the alarm is not snoozed', snooze_duration: 20 } },
    // Snoozed time adds up.
    { ev: act('snooze', 1100, { duration: 600 }), expect: { snoozed: 1700 } },
    { ev: act('unsnooze', 1150), expect: { changes: ['unsnoozed'], snoozed: null, snooze_duration: 70 } },
  ]);
});

test('a beat at or after the snooze end ends it ("unsnoozed"); before, the beat changes nothing', () => {
  // periodical_worker.go: ResolveSnoozes picks alarms no longer IsSnoozed() (end not after now) and sends them an unsnooze.
  const { results } = play(DEFAULT_ALARM_SETTINGS, [
    { ev: check(1000, 2) },
    { ev: act('snooze', 1010, { duration: 300 }), expect: { snoozed: 1310 } },
    { beat: 1309, expect: { changes: [], same: true, snoozed: 1310, snooze_duration: 0 } },
    { beat: 1310, expect: { changes: ['unsnoozed'], same: false, snoozed: null, snooze_duration: 300, added: [], resolved: false } },
    { beat: 1400, expect: { changes: [], same: true, snooze_duration: 300 } },
    // Snoozable again.
    { ev: act('snooze', 1500, { duration: 60 }), expect: { changes: ['snoozed'], snoozed: 1560 } },
  ]);
  assert.equal(results[3]!.next.current!.v.status.val, STATUS.ongoing);
});

test('an alarm resolved while snoozed counts the snooze up to the resolution', () => {
  // PartialUpdateResolve: "if a.Value.Snooze != nil { snooze_duration += timestamp - snooze.t }".
  const { results } = play(settings({ resolveDelay: 60, stealthyWindow: 5 }), [
    { ev: check(1000, 2) },
    { ev: act('snooze', 1010, { duration: 3600 }), expect: { snoozed: 4610 } },
    { ev: check(1100, 0), expect: { status: STATUS.off, snoozed: 4610 } },
    { beat: 1160, expect: { changes: ['resolved'], resolved: true } },
  ]);
  const closed = results.at(-1)!.resolved!;
  assert.equal(closed.v.snooze_duration, 150);
  assert.equal(closed.v.duration, 160);
  assert.equal(closed.v.current_state_duration, 60);
});

// ---------------------------------------------------------------- tickets, comment, activate

test('declareticket and assocticket set the ticket; assocticket without a ticket is ignored', () => {
  // PartialUpdateDeclareTicket / PartialUpdateAssocTicket (partial_update_alarm.go) and AlarmStep.NewTicket (alarm_value.go).
  const { doc, results } = play(DEFAULT_ALARM_SETTINGS, [
    { ev: check(1000, 2) },
    { ev: act('declareticket', 1010), expect: { changes: ['changed'], added: ['declareticket'] } },
    { ev: act('assocticket', 1020), expect: { changes: [], ignored: 'assocticket without a ticket', added: [] } },
    { ev: act('assocticket', 1030, { ticket: 'INC-42' }), expect: { changes: ['changed'], added: ['assocticket'] } },
    { ev: act('declareticket', 1040, { ticket: 'INC-43', author: 'bob' }), expect: { changes: ['changed'], added: ['declareticket'] } },
  ]);
  const pick = (a: Alarm) => {
    const { _t, t, a: author, val } = a.v.ticket!;
    return { _t, t, a: author, val };
  };
  assert.deepEqual(pick(results[1]!.next.current!), { _t: 'declareticket', t: 1010, a: 'alice', val: 'N/A' });
  assert.deepEqual(core(results[1]!.next.current!.v.steps.at(-1)), {
    _t: 'declareticket',
    t: 1010,
    a: 'alice',
    m: 'declareticket by alice at 1010',
    val: 0,
  });
  // assocticket: the ticket number is the step's message and the ticket's value and message.
  assert.deepEqual(results[3]!.next.current!.v.ticket, { _t: 'assocticket', t: 1030, a: 'alice', user_id: '', m: 'INC-42', val: 'INC-42' });
  assert.equal(results[1]!.next.current!.v.ticket!.m, 'N/A', 'NewTicket: the message of any ticket is its value');
  assert.deepEqual(core(results[3]!.next.current!.v.steps.at(-1)), { _t: 'assocticket', t: 1030, a: 'alice', m: 'INC-42', val: 0 });
  assert.deepEqual(pick(doc.current!), { _t: 'declareticket', t: 1040, a: 'bob', val: 'INC-43' });
});

test('declareticketwebhook sets the ticket as declareticket does (with its data); without a ticket it is ignored', () => {
  // declare_ticket_webhook_executor.go: PartialUpdateDeclareTicket(time, author, output, params.Ticket, params.Data, ...).
  const { doc } = play(DEFAULT_ALARM_SETTINGS, [
    { ev: check(1000, 2) },
    { ev: act('declareticketwebhook', 1010), expect: { changes: [], ignored: 'declareticketwebhook without a ticket', added: [] } },
    {
      ev: act('declareticketwebhook', 1020, { ticket: 'SNOW-7', ticket_data: { url: 'https://itsm/SNOW-7' }, output: 'opened by webhook' }),
      expect: { changes: ['changed'], added: ['declareticket'] },
    },
  ]);
  const a = doc.current!;
  assert.equal(a.v.ticket!._t, 'declareticket');
  assert.equal(a.v.ticket!.val, 'SNOW-7');
  assert.equal(a.v.ticket!.t, 1020);
  assert.equal(a.v.ticket!.a, 'alice');
  assert.deepEqual(a.v.ticket!.data, { url: 'https://itsm/SNOW-7' });
  assert.deepEqual(core(a.v.steps.at(-1)), { _t: 'declareticket', t: 1020, a: 'alice', m: 'opened by webhook', val: 0 });
});

test('comment adds a comment step, sets last_comment and changes nothing else', () => {
  // PartialUpdateComment: LastComment = the step, pushed to the steps.
  const { doc, results } = play(DEFAULT_ALARM_SETTINGS, [
    { ev: check(1000, 2) },
    {
      ev: act('comment', 1010, { output: 'rebooting it' }),
      expect: { changes: ['changed'], added: ['comment'], state: 2, status: STATUS.ongoing, events_count: 1, ack: null },
    },
    { ev: act('comment', 1020, { output: 'back up', author: 'bob' }), expect: { changes: ['changed'], added: ['comment'] } },
  ]);
  const commented = results[1]!.next.current!;
  assert.deepEqual(core(commented.v.steps.at(-1)), { _t: 'comment', t: 1010, a: 'alice', m: 'rebooting it', val: 0 });
  assert.deepEqual(commented.v.last_comment, commented.v.steps.at(-1), 'last_comment is the comment step');
  assert.equal(commented.v.last_update_date, 1000, 'PartialUpdateComment sets no date');
  assert.deepEqual(core(doc.current!.v.last_comment), { _t: 'comment', t: 1020, a: 'bob', m: 'back up', val: 0 }, 'the last one wins');
  assert.equal(doc.current!.v.output, 'state 2 at 1000');
});

test('activate sets activation_date only when the alarm has none (a new alarm is active from its creation)', () => {
  // activate_executor.go: `if alarm.IsActivated() { return "", nil }`; PartialUpdateActivate sets ActivationDate, no step.
  const opened = apply(undefined, check(1000, 2), DEFAULT_ALARM_SETTINGS, 1003).next;
  assert.equal(opened.current!.v.activation_date, 1003);
  const again = apply(opened, act('activate', 1010));
  assert.equal(again.ignored, 'the alarm is already active');
  assert.deepEqual(again.changes, []);
  assert.equal(again.next.current!.v.activation_date, 1003);
  // An alarm stored without an activation date (as one not yet activated in Canopsis).
  const inactive = structuredClone(opened);
  delete inactive.current!.v.activation_date;
  play(
    DEFAULT_ALARM_SETTINGS,
    [
      { ev: act('activate', 1020), expect: { changes: ['activated'], added: [] } },
      { ev: act('activate', 1030), expect: { changes: [], ignored: 'the alarm is already active' } },
    ],
    inactive,
  ).results.forEach((r, i) => {
    assert.equal(r.next.current!.v.activation_date, 1020, `activate #${i}`);
  });
});

// ---------------------------------------------------------------- events with no open alarm

test('table: every non-check alarm event on an entity with no open alarm is ignored with a reason', () => {
  const rows: Array<[string, Event]> = [
    ['ack', {}],
    ['ackremove', {}],
    ['cancel', {}],
    ['uncancel', {}],
    ['snooze', { duration: 60 }],
    ['unsnooze', {}],
    ['changestate', { state: 2 }],
    ['declareticket', { ticket: 'T' }],
    ['declareticketwebhook', { ticket: 'T' }],
    ['assocticket', { ticket: 'T' }],
    ['comment', {}],
    ['activate', {}],
  ];
  const okDoc = apply(undefined, check(900, 0)).next;
  for (const [type, extra] of rows) {
    for (const [where, doc] of [
      ['no document', undefined],
      ['entity seen OK', okDoc],
    ] as const) {
      const r = apply(doc, act(type, 1000, extra));
      assert.equal(r.ignored, `${type} with no open alarm on ${ENTITY}`, `${type} (${where})`);
      assert.deepEqual(r.changes, [], `${type} (${where})`);
      assert.equal(r.next.current, null, `${type} (${where}) opens nothing`);
      assert.equal(r.next.open, false);
      assert.equal(r.next.count, 0);
    }
    const comp = apply(undefined, act(type, 1000, { ...extra, source_type: 'component', resource: undefined }));
    assert.equal(comp.ignored, `${type} with no open alarm on host1`, `${type} on a component`);
  }
});

test('events that do not act on alarms (perf, log) are ignored and not remembered', () => {
  const open = apply(undefined, check(1000, 2)).next;
  for (const type of ['perf', 'log']) {
    const r = apply(open, act(type, 1010));
    assert.equal(r.ignored, `event_type ${type} does not act on alarms`);
    assert.deepEqual(r.changes, []);
    assert.deepEqual(r.next, open);
  }
});

// ---------------------------------------------------------------- max_steps

test('past max_steps, only the steps that close an alarm are still added (back to OK, cancel)', () => {
  // AlarmSteps.Add (alarm_value.go): past AlarmStepsHardLimit only statedec/statusdec to 0, cancel and statusinc to cancelled.
  const s = settings({ maxSteps: 6, stealthyWindow: 5, flappingCount: 1000 });
  const { doc } = play(s, [
    { ev: check(1000, 2), expect: { steps: ['stateinc:2', 'statusinc:1'] } },
    { ev: act('ack', 1010), expect: { added: ['ack'] } },
    { ev: act('comment', 1020), expect: { added: ['comment'] } },
    { ev: check(1030, 3), expect: { added: ['stateinc:3'] } },
    { ev: check(1040, 2), expect: { added: ['statedec:2'] } },
    // At the limit: nothing but closing steps. A check that needs none still counts; one that needs one changes
    // nothing at all, and neither does an action (the executors fail on Steps.Add's error, nothing is saved).
    { ev: check(1045, 2), expect: { added: [], events_count: 4 } },
    { ev: check(1050, 3), expect: { added: [], events_count: 4, state: 2, ignored: 'max number of steps reached: 6' } },
    { ev: act('comment', 1060), expect: { changes: [], added: [], ignored: 'max number of steps reached: 6' } },
    { ev: check(1070, 0), expect: { state: 0, status: STATUS.off, added: ['statedec:0', 'statusdec:0'] } },
    { ev: act('cancel', 1090), expect: { changes: ['cancelled'], status: STATUS.cancelled, added: ['cancel', 'statusinc:4'] } },
  ]);
  assert.equal(doc.current!.v.steps.length, 10);
});

test("with the shipped defaults the limit is Canopsis' AlarmStepsHardLimit, 2000", () => {
  assert.equal(DEFAULT_ALARM_SETTINGS.maxSteps, 2000);
  const s = settings({ stealthyWindow: 5 });
  // An alarm with 2000 steps (1998 comments after the opening ones), built directly: applying them one by one is slow.
  const full = apply(undefined, check(1000, 2), s).next;
  const a = full.current!;
  for (let i = 0; i < 1998; i++) a.v.steps.push({ _t: 'comment', t: 1001 + i, a: 'alice', m: `comment ${i}`, val: 0 });
  play(
    s,
    [
      { ev: act('ack', 5000), expect: { added: [], changes: [], ack: null, ignored: 'max number of steps reached: 2000' } },
      { ev: check(5010, 3), expect: { added: [], state: 2, ignored: 'max number of steps reached: 2000' } },
      { ev: check(5020, 0), expect: { status: STATUS.off, added: ['statedec:0', 'statusdec:0'] } },
    ],
    full,
  );
});

// ---------------------------------------------------------------- step cropping

/** A statecounter step as the timeline shows it: its counts. */
const counterOf = (a: Alarm) => a.v.steps.find((x) => x._t === 'statecounter')?.statecounter;

test('AlarmSteps.Crop, as Canopsis tests it: 40 state steps after the status, keep 30, 10 folded into a statecounter', () => {
  // Port of TestAlarmStepsCrop (types/alarm_value_test.go).
  const st: Step = { _t: 'statusinc', t: 0, a: 'test', m: 'test', val: 1 };
  const s1: Step = { _t: 'stateinc', t: 0, a: '', m: '', val: 2 };
  const s2: Step = { _t: 'statedec', t: 0, a: '', m: '', val: 1 };
  const twenty = [st, ...Array.from({ length: 10 }, () => [s1, s2]).flat()];
  assert.equal(cropSteps(twenty, st, 30), twenty, 'crop does not work for the first 21 steps');
  const forty = [...twenty, ...Array.from({ length: 10 }, () => [s1, s2]).flat()];
  const cropped = cropSteps(forty, st, 30);
  assert.equal(cropped.length, 30 + 2);
  assert.equal(cropped[0]!._t, st._t);
  assert.equal(cropped[1]!._t, 'statecounter');
  assert.deepEqual(cropped[1]!.statecounter, { statechanges: 10, stateinc: 5, statedec: 5, 'state:1': 5, 'state:2': 5 });
  assert.equal(cropped[1]!.a, 'test');
  assert.equal(cropped[1]!.m, 'test');
  assert.equal(cropped[1]!.val, st.val);
  assert.deepEqual(cropped.slice(2), forty.slice(11), 'the 30 most recent state steps are kept');
});

test('cropping: past 20 state steps after the status step, the oldest are counted in one statecounter step right after it', () => {
  // event_processor.go updateAlarm: alarm.CropSteps() after each check; AlarmStepCropMinStates = 20.
  const s = settings({ flappingCount: 1000, stealthyWindow: 5 });
  const ops: Op[] = [{ ev: check(1000, 2) }, { ev: check(1001, 3) }, { ev: act('ack', 1002) }];
  // Alternating 2 and 3: 20 state steps after the status step, not one more.
  for (let i = 2; i <= 20; i++) ops.push({ ev: check(1000 + i, i % 2 ? 3 : 2) });
  const { doc: twenty } = play(s, ops);
  assert.equal(counterOf(twenty.current!), undefined, '20 state steps: nothing is cropped');
  assert.equal(twenty.current!.v.steps.length, 23);

  const { doc, results } = play(
    s,
    [
      {
        ev: check(1021, 3),
        expect: {
          state: 3,
          status: STATUS.ongoing,
          // The first stateinc:3 is folded; the ack keeps its place, before the 20 state steps kept.
          steps: [
            'stateinc:2',
            'statusinc:1',
            'statecounter',
            'ack',
            ...Array.from({ length: 20 }, (_, i) => (i % 2 ? 'stateinc:3' : 'statedec:2')),
          ],
        },
      },
      // The next one is merged into the same counter.
      { ev: check(1022, 2), expect: { added: [] } },
    ],
    twenty,
  );
  const first = results[0]!.next.current!;
  assert.deepEqual(counterOf(first), { statechanges: 1, stateinc: 1, statedec: 0, 'state:3': 1 });
  const counter = first.v.steps[2]!;
  assert.deepEqual([counter.a, counter.m, counter.val], ['nagios.nagios1', 'state 2 at 1000', STATUS.ongoing], 'from the status step');
  const a = doc.current!;
  assert.deepEqual(counterOf(a), { statechanges: 2, stateinc: 1, statedec: 1, 'state:3': 1, 'state:2': 1 });
  assert.equal(a.v.steps.filter((x) => x._t === 'statecounter').length, 1);
  assert.equal(a.v.steps.length, 24);
  assert.deepEqual(steps(a).slice(-2), ['stateinc:3', 'statedec:2']);
  assert.equal(a.v.total_state_changes, 23, 'total_state_changes still counts every change');

  // A new status: state steps count from it; the old counter stays where it was.
  const { doc: off } = play(s, [{ ev: check(1100, 0), expect: { status: STATUS.off, added: ['statedec:0', 'statusdec:0'] } }], doc);
  assert.deepEqual(counterOf(off.current!), counterOf(a));
  assert.equal(off.current!.v.steps.length, 26);
});

test('cropping counts only stateinc/statedec: actions after the status step are never folded', () => {
  const s = settings({ flappingCount: 1000 });
  const ops: Op[] = [{ ev: check(1000, 2) }];
  for (let i = 1; i <= 25; i++) ops.push({ ev: act('comment', 1000 + i) });
  const { doc } = play(s, [...ops, { ev: check(1100, 2) }]);
  assert.equal(counterOf(doc.current!), undefined);
  assert.equal(doc.current!.v.steps.length, 27);
});

// ---------------------------------------------------------------- redelivery

test('fingerprint is stable over key order (nested too) and differs for a different event', () => {
  const a: Event = { event_type: 'check', component: 'h', state: 2, timestamp: 1000, extra: { b: 1, a: [{ y: 1, x: 2 }] } };
  const b: Event = { extra: { a: [{ x: 2, y: 1 }], b: 1 }, timestamp: 1000, state: 2, component: 'h', event_type: 'check' };
  assert.equal(fingerprint(a), fingerprint(b));
  assert.notEqual(fingerprint(a), fingerprint({ ...a, timestamp: 1001 }));
  assert.notEqual(fingerprint(a), fingerprint({ ...a, state: 3 }));
  assert.notEqual(fingerprint(a), fingerprint({ ...a, extra: { b: 1, a: [{ y: 2, x: 1 }] } }));
});

test('redelivery: the same event applied twice adds nothing, whatever its key order', () => {
  const s = DEFAULT_ALARM_SETTINGS;
  const open = check(1000, 2);
  const reordered = Object.fromEntries(Object.entries(open).reverse()) as Event;
  assert.notDeepEqual(Object.keys(reordered), Object.keys(open));
  const { doc } = play(s, [
    { ev: open, expect: { changes: ['opened'], events_count: 1 } },
    { ev: open, expect: { changes: [], ignored: REDELIVERY, events_count: 1, added: [] } },
    { ev: reordered, expect: { changes: [], ignored: REDELIVERY, events_count: 1, added: [] } },
    { ev: check(1010, 3), expect: { changes: ['changed'], events_count: 2, state: 3 } },
    { ev: check(1010, 3), expect: { ignored: REDELIVERY, events_count: 2, state: 3, added: [] } },
    { ev: act('ack', 1020), expect: { changes: ['acked'], ack: 'alice' } },
    { ev: act('ackremove', 1030), expect: { changes: ['unacked'], ack: null } },
    // The ack delivered again after the ackremove must not ack the alarm again.
    { ev: act('ack', 1020), expect: { changes: [], ignored: REDELIVERY, ack: null, added: [] } },
    { ev: act('comment', 1040), expect: { added: ['comment'] } },
    { ev: act('comment', 1040), expect: { ignored: REDELIVERY, added: [] } },
    // A snooze ended early and delivered again must not snooze the alarm again.
    { ev: act('snooze', 1050, { duration: 600 }), expect: { changes: ['snoozed'], snoozed: 1650 } },
    { ev: act('unsnooze', 1060), expect: { changes: ['unsnoozed'], snoozed: null } },
    { ev: act('snooze', 1050, { duration: 600 }), expect: { changes: [], ignored: REDELIVERY, snoozed: null, added: [] } },
    // The opening check again, much later: still nothing.
    { ev: open, expect: { ignored: REDELIVERY, events_count: 2, state: 3 } },
  ]);
  assert.equal(doc.count, 1);
  assert.deepEqual(steps(doc.current), ['stateinc:2', 'statusinc:1', 'stateinc:3', 'ack', 'ackremove', 'comment', 'snooze:1650']);
});

test('redelivery: the document returned for a redelivery equals the one given', () => {
  const s = DEFAULT_ALARM_SETTINGS;
  const d1 = apply(undefined, check(1000, 2), s).next;
  const d2 = apply(d1, check(1010, 0), s).next;
  const r = apply(d2, check(1010, 0), s);
  assert.equal(r.ignored, REDELIVERY);
  assert.deepEqual(r.next, d2);
  // An ignored event is remembered too: delivered again, it is a redelivery.
  const ignored = apply(undefined, act('ack', 900), s);
  assert.match(ignored.ignored ?? '', /no open alarm/);
  assert.equal(apply(ignored.next, act('ack', 900), s).ignored, REDELIVERY);
});

test('redelivery of the opening check after resolution does not reopen the alarm', () => {
  const s = settings({ resolveDelay: 60, stealthyWindow: 5 });
  play(s, [
    { ev: check(1000, 2) },
    { ev: check(1100, 0) },
    { beat: 1160, expect: { resolved: true } },
    { ev: check(1000, 2), expect: { changes: [], ignored: REDELIVERY, open: false } },
  ]);
});

// ---------------------------------------------------------------- purity

test('applyEvent and onBeat do not modify the document they are given', () => {
  const s = settings({ resolveDelay: 60, stealthyWindow: 5 });
  const d1 = apply(undefined, check(1000, 2), s).next;
  const snap1 = structuredClone(d1);
  const r = apply(d1, act('ack', 1010), s);
  assert.deepEqual(d1, snap1);
  assert.notEqual(r.next, d1);
  const snoozed = apply(r.next, act('snooze', 1020, { duration: 30 }), s).next;
  const snap2 = structuredClone(snoozed);
  const u = onBeat(snoozed, 1050, s);
  assert.deepEqual(u.changes, ['unsnoozed']);
  assert.deepEqual(snoozed, snap2, 'the unsnoozing beat did not touch its input');
  const d2 = apply(u.next, check(1100, 0), s).next;
  const snap3 = structuredClone(d2);
  const b = onBeat(d2, 1160, s);
  assert.ok(b.resolved);
  assert.deepEqual(d2, snap3, 'the resolving beat did not touch its input');
  assert.equal(d2.current!.v.resolved, undefined);
});
