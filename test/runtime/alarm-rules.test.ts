import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Applied, applyEvent, type Change, fingerprint, onBeat, REDELIVERY } from '../../runtime/alarm/apply.js';
import { type Alarm, type AlarmSettings, DEFAULT_ALARM_SETTINGS, type EntityAlarms, STATUS, type Step } from '../../runtime/alarm/model.js';
import type { Event } from '../../runtime/tasks/types.js';

/*
 * The alarm rules (runtime/alarm/apply.ts), as an operator sees them: a
 * sequence of events and beats on one entity, and after each one the
 * alarm's state, status, steps, events_count, ack and resolution.
 * Everything here is pure: `timestamp` is "now" for events, beats get theirs.
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

/** A step as an operator reads it in the timeline: `type` or `type:val`. */
const label = (s: Step) => (s.val === undefined ? s.type : `${s.type}:${s.val}`);
const steps = (a: Alarm | null | undefined) => (a ? a.steps.map(label) : []);

type Op = ({ ev: Event } | { beat: number }) & { expect?: Expect };

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
      r = applyEvent(doc, op.ev, s);
    }
    results.push(r);
    const e = op.expect ?? {};
    const a = r.resolved ?? r.next.current;
    if (e.ignored instanceof RegExp) assert.match(r.ignored ?? '', e.ignored, `${at}: ignored`);
    else assert.equal(r.ignored, e.ignored, `${at}: ignored`);
    if (e.changes) assert.deepEqual(r.changes, e.changes, `${at}: changes`);
    if (e.state !== undefined) assert.equal(a?.state.val, e.state, `${at}: state`);
    if (e.status !== undefined) assert.equal(a?.status.val, e.status, `${at}: status`);
    if (e.locked !== undefined) assert.equal(a?.state.locked, e.locked, `${at}: locked`);
    if (e.events_count !== undefined) assert.equal(a?.events_count, e.events_count, `${at}: events_count`);
    if (e.added) assert.deepEqual(steps(a).slice(before.length), e.added, `${at}: steps added`);
    if (e.steps) assert.deepEqual(steps(a), e.steps, `${at}: steps`);
    if (e.ack !== undefined) assert.equal(a?.ack?.author ?? null, e.ack, `${at}: ack`);
    if (e.open !== undefined) {
      assert.equal(r.next.open, e.open, `${at}: open flag`);
      assert.equal(r.next.current !== null, e.open, `${at}: current alarm`);
    }
    if (e.resolved !== undefined) {
      assert.equal(r.resolved !== undefined, e.resolved, `${at}: resolved`);
      if (e.resolved) {
        assert.equal(r.resolved?.resolved, (op as { beat: number }).beat, `${at}: resolved timestamp`);
        assert.equal(r.next.current, null, `${at}: current cleared`);
        assert.equal(r.next.open, false, `${at}: open cleared`);
        assert.ok(r.changes.includes('resolved'), `${at}: 'resolved' change`);
      } else {
        assert.ok(!r.changes.includes('resolved'), `${at}: no 'resolved' change`);
        if (r.next.current) assert.equal(r.next.current.resolved, null, `${at}: still unresolved`);
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
    const r = applyEvent(undefined, check(1000, state), DEFAULT_ALARM_SETTINGS);
    assert.deepEqual(r.changes, ['opened'], `state ${state}`);
    assert.equal(r.ignored, undefined);
    const a = r.next.current!;
    assert.ok(a, `state ${state} opens an alarm`);
    assert.equal(r.next.open, true);
    assert.equal(r.next.count, 1);
    assert.deepEqual(steps(a), [`stateinc:${state}`, `statusinc:${STATUS.ongoing}`]);
    assert.deepEqual(
      a.steps.map((s) => [s.t, s.author]),
      [
        [1000, 'nagios.nagios1'],
        [1000, 'nagios.nagios1'],
      ],
    );
    assert.equal(a.state.val, state);
    assert.equal(a.state.locked, false);
    assert.equal(a.status.val, STATUS.ongoing);
    assert.equal(a.events_count, 1);
    assert.equal(a.output, `state ${state} at 1000`);
    assert.equal(a.opened_at, 1000);
    assert.equal(a.last_event, 1000);
    assert.equal(a.resolved, null);
    assert.equal(a.ack, undefined);
    assert.equal(a.entity, ENTITY);
  }
});

test('entity id: resource/component for a resource event, component for a component event', () => {
  const res = applyEvent(undefined, check(1000, 2), DEFAULT_ALARM_SETTINGS).next.current!;
  assert.equal(res.entity, 'disk/host1');
  assert.equal(res.component, 'host1');
  assert.equal(res.resource, 'disk');
  assert.ok(res.id.startsWith('disk/host1'), res.id);
  const comp = applyEvent(undefined, check(1000, 2, { source_type: 'component', resource: undefined }), DEFAULT_ALARM_SETTINGS).next
    .current!;
  assert.equal(comp.entity, 'host1');
  assert.equal(comp.component, 'host1');
  assert.equal('resource' in comp, false);
  assert.ok(comp.id.startsWith('host1:'), comp.id);
});

test('a check with state 0 and no open alarm opens nothing (the entity is still recorded)', () => {
  const r = applyEvent(undefined, check(1000, 0), DEFAULT_ALARM_SETTINGS);
  assert.deepEqual(r.changes, []);
  assert.equal(r.ignored, 'state 0 and no open alarm');
  assert.equal(r.next.current, null);
  assert.equal(r.next.open, false);
  assert.equal(r.next.count, 0);
  assert.equal(r.next.seen.length, 1, 'remembered, so a redelivery is recognised');
  // Another OK check on that document: still nothing.
  const r2 = applyEvent(r.next, check(1010, 0), DEFAULT_ALARM_SETTINGS);
  assert.equal(r2.ignored, 'state 0 and no open alarm');
  assert.equal(r2.next.current, null);
});

test('one open alarm per entity: later checks update the same alarm (output, last event, events_count)', () => {
  const { doc } = play(DEFAULT_ALARM_SETTINGS, [
    { ev: check(1000, 2), expect: { changes: ['opened'], events_count: 1 } },
    {
      ev: check(1010, 2, { output: 'still bad' }),
      expect: { changes: ['changed'], state: 2, status: STATUS.ongoing, events_count: 2, added: [] },
    },
    {
      ev: check(1020, 3, { output: 'worse' }),
      expect: { changes: ['changed'], state: 3, status: STATUS.ongoing, events_count: 3, added: ['stateinc:3'] },
    },
    {
      ev: check(1030, 1, { output: 'better' }),
      expect: { changes: ['changed'], state: 1, status: STATUS.ongoing, events_count: 4, added: ['statedec:1'] },
    },
  ]);
  const a = doc.current!;
  assert.equal(doc.count, 1, 'no second alarm');
  assert.equal(a.opened_at, 1000);
  assert.equal(a.output, 'better');
  assert.equal(a.last_event, 1030);
  assert.equal(a.last_update, 1030);
  assert.equal(a.state.t, 1030);
  assert.deepEqual(
    a.steps.map((s) => s.message),
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
    {
      beat: 1460,
      expect: { changes: ['resolved'], resolved: true, open: false, added: ['resolve'], state: 0, status: STATUS.off, events_count: 2 },
    },
  ]);
  const closed = results[5]!.resolved!;
  assert.equal(closed.resolved, 1460);
  assert.equal(closed.last_update, 1460);
  assert.deepEqual(closed.steps.at(-1), { type: 'resolve', t: 1460, author: 'axe', message: '' });
  assert.deepEqual(steps(closed), ['stateinc:2', 'statusinc:1', 'statedec:0', 'statusdec:0', 'resolve']);
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
  assert.equal(doc.current!.id, results[0]!.next.current!.id);
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
  assert.notEqual(second.id, first.id);
  assert.equal(second.entity, first.entity);
  assert.equal(second.opened_at, 2000);
  assert.equal(second.resolved, null);
  assert.equal(doc.count, 2);
  assert.equal(first.resolved, 1160, 'the first alarm as it was closed is unchanged');
});

test('a new alarm in the same second as the previous one was opened still gets a distinct id', () => {
  const s = settings({ resolveDelay: 0, stealthyWindow: 0 });
  const { doc, results } = play(s, [
    { ev: check(1000, 2) },
    { ev: check(1000, 0) },
    { beat: 1000, expect: { resolved: true } },
    { ev: check(1000, 2, { output: 'again' }), expect: { changes: ['opened'] } },
  ]);
  assert.notEqual(doc.current!.id, results[0]!.next.current!.id);
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
        steps: ['stateinc:3', 'statusinc:1', 'statedec:0', 'statusinc:2', 'statusdec:0', 'resolve'],
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
    assert.equal(doc.current!.status.val, row.status, row.why);
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
  assert.equal(doc.current!.status.val, STATUS.flapping, '10 changes in 900 s');
  const { doc: nine } = play(DEFAULT_ALARM_SETTINGS, ops.slice(0, 9));
  assert.notEqual(nine.current!.status.val, STATUS.flapping, '9 changes');
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
  assert.deepEqual(a.steps.at(-1), { type: 'changestate', t: 1010, author: 'alice', message: 'known issue', val: 1 });
  assert.equal(a.output, 'disk full');
  assert.equal(a.state.t, 1010);
  assert.equal(a.last_update, 1010);
  assert.equal(a.last_event, 1000, 'last_event is the last check');
});

test('changestate then a state-0 check while the lock holds state 0: the lock is released', () => {
  play(settings({ stealthyWindow: 5, resolveDelay: 60 }), [
    { ev: check(1000, 2) },
    { ev: act('changestate', 1010, { state: 0 }), expect: { state: 0, locked: true, status: STATUS.off } },
    // Spec: "sets and locks the state until a state-0 check"; "state 0 always applies and unlocks".
    { ev: check(1020, 0), expect: { state: 0, locked: false } },
    // So the next non-OK check must apply.
    { ev: check(1030, 2), expect: { state: 2, status: STATUS.ongoing, added: ['stateinc:2', 'statusinc:1'] } },
    { beat: 1100, expect: { resolved: false, open: true } },
  ]);
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
  assert.deepEqual(closed.cancel, { author: 'alice', message: 'cancel by alice at 1010', t: 1010 });
  assert.deepEqual(steps(closed), ['stateinc:2', 'statusinc:1', 'cancel', 'statusinc:4', 'stateinc:3', 'statedec:0', 'resolve']);
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
  assert.deepEqual(a.ack, { author: 'carol', message: 'ack by alice at 1050', t: 1050 });
  assert.deepEqual(
    a.steps.filter((s) => s.type.startsWith('ack')).map((s) => [s.type, s.author, s.t, s.message]),
    [
      ['ack', 'alice', 1010, 'looking'],
      ['ackremove', 'bob', 1030, 'ackremove by alice at 1030'],
      ['ack', 'carol', 1050, 'ack by alice at 1050'],
    ],
  );
  assert.equal(a.last_update, 1050);
  assert.equal(a.output, 'state 2 at 1000', 'an ack does not change the alarm output');
});

test('an ack without an author is authored by connector.connector_name', () => {
  const { doc } = play(DEFAULT_ALARM_SETTINGS, [{ ev: check(1000, 2) }, { ev: act('ack', 1010, { author: undefined }) }]);
  assert.equal(doc.current!.ack!.author, 'nagios.nagios1');
});

test('the ack survives state changes and is kept on the resolved alarm', () => {
  const { results } = play(settings({ resolveDelay: 60, stealthyWindow: 5 }), [
    { ev: check(1000, 2) },
    { ev: act('ack', 1010) },
    { ev: check(1020, 3), expect: { ack: 'alice' } },
    { ev: check(1030, 0), expect: { ack: 'alice' } },
    { beat: 1090, expect: { resolved: true, ack: 'alice' } },
  ]);
  assert.equal(results.at(-1)!.resolved!.ack!.t, 1010);
});

// ---------------------------------------------------------------- snooze, tickets, comment

test('snooze: duration or snooze_default; a non-positive duration is ignored', () => {
  const s = settings({ snoozeDefault: 300 });
  const { doc } = play(s, [
    { ev: check(1000, 2) },
    { ev: act('snooze', 1010, { duration: 600 }), expect: { changes: ['changed'], added: ['snooze:1610'] } },
    { ev: act('snooze', 1020), expect: { changes: ['changed'], added: ['snooze:1320'] } },
    { ev: act('snooze', 1030, { duration: 0 }), expect: { changes: [], ignored: /snooze duration must be positive/, added: [] } },
    { ev: act('snooze', 1040, { duration: -5 }), expect: { changes: [], ignored: /snooze duration must be positive/, added: [] } },
    {
      ev: act('snooze', 1050, { duration: 'soon' }),
      expect: { changes: [], ignored: /snooze duration must be positive.*"soon"/, added: [] },
    },
  ]);
  assert.deepEqual(doc.current!.snooze, { author: 'alice', until: 1320, t: 1020 });
  assert.equal(doc.current!.status.val, STATUS.ongoing, 'snooze does not change the status');
});

test('declareticket and assocticket set the ticket; assocticket without a ticket is ignored', () => {
  const { doc, results } = play(DEFAULT_ALARM_SETTINGS, [
    { ev: check(1000, 2) },
    { ev: act('declareticket', 1010), expect: { changes: ['changed'], added: ['declareticket'] } },
    { ev: act('assocticket', 1020), expect: { changes: [], ignored: 'assocticket without a ticket', added: [] } },
    { ev: act('assocticket', 1030, { ticket: 'INC-42' }), expect: { changes: ['changed'], added: ['assocticket'] } },
    { ev: act('declareticket', 1040, { ticket: 'INC-43', author: 'bob' }), expect: { changes: ['changed'], added: ['declareticket'] } },
  ]);
  assert.deepEqual(results[1]!.next.current!.ticket, { author: 'alice', value: 'N/A', t: 1010, type: 'declareticket' });
  assert.deepEqual(results[3]!.next.current!.ticket, { author: 'alice', value: 'INC-42', t: 1030, type: 'assocticket' });
  assert.deepEqual(doc.current!.ticket, { author: 'bob', value: 'INC-43', t: 1040, type: 'declareticket' });
});

test('comment adds a comment step and changes nothing else', () => {
  const { doc } = play(DEFAULT_ALARM_SETTINGS, [
    { ev: check(1000, 2) },
    {
      ev: act('comment', 1010, { output: 'rebooting it' }),
      expect: { changes: ['changed'], added: ['comment'], state: 2, status: STATUS.ongoing, events_count: 1, ack: null },
    },
  ]);
  assert.deepEqual(doc.current!.steps.at(-1), { type: 'comment', t: 1010, author: 'alice', message: 'rebooting it' });
  assert.equal(doc.current!.last_update, 1010);
});

// ---------------------------------------------------------------- events with no open alarm

test('table: every non-check alarm event on an entity with no open alarm is ignored with a reason', () => {
  const rows: Array<[string, Event]> = [
    ['ack', {}],
    ['ackremove', {}],
    ['cancel', {}],
    ['uncancel', {}],
    ['snooze', { duration: 60 }],
    ['changestate', { state: 2 }],
    ['declareticket', { ticket: 'T' }],
    ['assocticket', { ticket: 'T' }],
    ['comment', {}],
  ];
  const okDoc = applyEvent(undefined, check(900, 0), DEFAULT_ALARM_SETTINGS).next;
  for (const [type, extra] of rows) {
    for (const [where, doc] of [
      ['no document', undefined],
      ['entity seen OK', okDoc],
    ] as const) {
      const r = applyEvent(doc, act(type, 1000, extra), DEFAULT_ALARM_SETTINGS);
      assert.equal(r.ignored, `${type} with no open alarm on ${ENTITY}`, `${type} (${where})`);
      assert.deepEqual(r.changes, [], `${type} (${where})`);
      assert.equal(r.next.current, null, `${type} (${where}) opens nothing`);
      assert.equal(r.next.open, false);
      assert.equal(r.next.count, 0);
    }
    const comp = applyEvent(
      undefined,
      act(type, 1000, { ...extra, source_type: 'component', resource: undefined }),
      DEFAULT_ALARM_SETTINGS,
    );
    assert.equal(comp.ignored, `${type} with no open alarm on host1`, `${type} on a component`);
  }
});

test('events that do not act on alarms (perf, log) are ignored and not remembered', () => {
  const open = applyEvent(undefined, check(1000, 2), DEFAULT_ALARM_SETTINGS).next;
  for (const type of ['perf', 'log']) {
    const r = applyEvent(open, act(type, 1010), DEFAULT_ALARM_SETTINGS);
    assert.equal(r.ignored, `event_type ${type} does not act on alarms`);
    assert.deepEqual(r.changes, []);
    assert.deepEqual(r.next, open);
  }
});

// ---------------------------------------------------------------- max_steps

test('steps are bounded by max_steps: the oldest are dropped', () => {
  const s = settings({ maxSteps: 5 });
  const ops: Op[] = [{ ev: check(1000, 2) }];
  for (let i = 1; i <= 10; i++) ops.push({ ev: check(1000 + i * 1000, i % 2 ? 3 : 2) });
  const { doc } = play(s, ops);
  const a = doc.current!;
  assert.equal(a.steps.length, 5);
  assert.deepEqual(
    a.steps.map((x) => [label(x), x.t]),
    [
      ['statedec:2', 7000],
      ['stateinc:3', 8000],
      ['statedec:2', 9000],
      ['stateinc:3', 10000],
      ['statedec:2', 11000],
    ],
  );
  assert.equal(a.events_count, 11, 'events_count is not bounded');
  // Further actions keep the bound.
  const r = applyEvent(doc, act('ack', 20000), s);
  assert.equal(r.next.current!.steps.length, 5);
  assert.deepEqual(steps(r.next.current).at(-1), 'ack');
  assert.equal(r.next.current!.steps[0]!.t, 8000);
  // And the resolve step on beat.
  const off = applyEvent(r.next, check(30000, 0), s).next;
  const closed = onBeat(off, 30000 + s.resolveDelay, s).resolved!;
  assert.equal(closed.steps.length, 5);
  assert.deepEqual(steps(closed).slice(-3), ['statedec:0', 'statusdec:0', 'resolve']);
});

test('max_steps 1 at opening keeps only the status step', () => {
  const a = applyEvent(undefined, check(1000, 2), settings({ maxSteps: 1 })).next.current!;
  assert.deepEqual(steps(a), ['statusinc:1']);
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
    // The opening check again, much later: still nothing.
    { ev: open, expect: { ignored: REDELIVERY, events_count: 2, state: 3 } },
  ]);
  assert.equal(doc.count, 1);
  assert.deepEqual(steps(doc.current), ['stateinc:2', 'statusinc:1', 'stateinc:3', 'ack', 'ackremove', 'comment']);
});

test('redelivery: the document returned for a redelivery equals the one given', () => {
  const s = DEFAULT_ALARM_SETTINGS;
  const d1 = applyEvent(undefined, check(1000, 2), s).next;
  const d2 = applyEvent(d1, check(1010, 0), s).next;
  const r = applyEvent(d2, check(1010, 0), s);
  assert.equal(r.ignored, REDELIVERY);
  assert.deepEqual(r.next, d2);
  // An ignored event is remembered too: delivered again, it is a redelivery.
  const ignored = applyEvent(undefined, act('ack', 900), s);
  assert.match(ignored.ignored ?? '', /no open alarm/);
  assert.equal(applyEvent(ignored.next, act('ack', 900), s).ignored, REDELIVERY);
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
  const d1 = applyEvent(undefined, check(1000, 2), s).next;
  const snap1 = structuredClone(d1);
  const r = applyEvent(d1, act('ack', 1010), s);
  assert.deepEqual(d1, snap1);
  assert.notEqual(r.next, d1);
  const d2 = applyEvent(r.next, check(1100, 0), s).next;
  const snap2 = structuredClone(d2);
  const b = onBeat(d2, 1160, s);
  assert.ok(b.resolved);
  assert.deepEqual(d2, snap2, 'the beat did not touch its input');
  assert.equal(d2.current!.resolved, null);
});
