import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyEvent } from '../../runtime/alarm/apply.js';
import { DEFAULT_ALARM_SETTINGS } from '../../runtime/alarm/model.js';
import { DEFAULT_REASON, DEFAULT_TYPES, type PBehavior, type PbehaviorInfo, type PbhType } from '../../runtime/pbehavior/model.js';
import { checkPattern, type MatchableEntity, matches } from '../../runtime/pbehavior/pattern.js';
import { checkRrule, defaultTypes, type Identified, inSpan, type Models, resolve, typeAt } from '../../runtime/pbehavior/resolve.js';

/*
 * Which pbehavior is in force, as Canopsis v4 decides it. Sources, on
 * capensis/canopsis release-22.10 under community/go-engines-community/:
 * lib/canopsis/pbehavior/type_computer.go (exdates first, then the RRULE
 * spans, then the inactive gaps of an active pbehavior), type_resolver.go
 * (priority, then newest, then id; the default active type means none),
 * database/fixtures/pbehavior.yml (default types), lib/canopsis/pattern.
 */

const T = (iso: string) => Date.parse(iso) / 1000;
const models = (extra: Array<[string, PbhType]> = []): Models => ({
  types: new Map([...DEFAULT_TYPES.map((t) => [t.id, t.doc] as [string, PbhType]), ...extra]),
  reasons: new Map([[DEFAULT_REASON.id, DEFAULT_REASON.doc]]),
  exceptions: new Map(),
});
const web1: MatchableEntity = { _id: 'web1', name: 'web1', type: 'component', connector: 'nagios/n1', component: 'web1' };
const disk: MatchableEntity = { _id: 'disk/web1', name: 'disk', type: 'resource', connector: 'nagios/n1', component: 'web1' };

const pbh = (key: string, over: Partial<PBehavior> = {}): Identified<PBehavior> => ({
  key,
  author: 'root',
  name: key,
  enabled: true,
  tstart: T('2026-01-05T08:00:00Z'),
  tstop: T('2026-01-05T10:00:00Z'),
  rrule: '',
  exdates: [],
  exceptions: [],
  type: 'default-maintenance',
  reason: DEFAULT_REASON.id,
  entity_pattern: [[{ field: 'name', cond: { type: 'eq', value: 'web1' } }]],
  color: '',
  comments: [],
  created: 1,
  updated: 1,
  ...over,
});

test('a single span: in force from tstart to tstop, not after; a weekly RRULE repeats it every Monday', () => {
  const once = pbh('once');
  assert.equal(inSpan(once, T('2026-01-05T07:59:59Z')), false);
  assert.equal(inSpan(once, T('2026-01-05T08:00:00Z')), true);
  assert.equal(inSpan(once, T('2026-01-05T09:59:59Z')), true);
  assert.equal(inSpan(once, T('2026-01-05T10:00:00Z')), false);
  assert.equal(inSpan(once, T('2026-01-12T09:00:00Z')), false);
  const weekly = pbh('weekly', { rrule: 'FREQ=WEEKLY;BYDAY=MO' });
  for (const day of ['2026-01-05', '2026-01-12', '2026-03-30']) {
    assert.equal(inSpan(weekly, T(`${day}T09:00:00Z`)), true, `${day} 09:00`);
    assert.equal(inSpan(weekly, T(`${day}T10:30:00Z`)), false, `${day} 10:30`);
  }
  assert.equal(inSpan(weekly, T('2026-01-13T09:00:00Z')), false, 'a Tuesday');
  const twice = pbh('twice', { rrule: 'FREQ=WEEKLY;BYDAY=MO;COUNT=2' });
  assert.equal(inSpan(twice, T('2026-01-12T09:00:00Z')), true);
  assert.equal(inSpan(twice, T('2026-01-19T09:00:00Z')), false, 'COUNT=2 ends it');
  const forever = pbh('forever', { tstop: undefined });
  assert.equal(inSpan(forever, T('2030-01-01T00:00:00Z')), true, 'no tstop and no rrule: open-ended');
  assert.match(checkRrule('FREQ=SOMETIMES', 0) ?? '', /not an RFC 5545 recurrence rule/);
  assert.equal(checkRrule('FREQ=DAILY;INTERVAL=2', 0), undefined);
});

test('exdates (the pbehavior’s and its exceptions’) come first and give their own type; a disabled pbehavior gives none', () => {
  const m = models();
  m.exceptions.set('holidays', {
    name: 'holidays',
    description: '',
    created: 0,
    exdates: [{ begin: T('2026-01-12T00:00:00Z'), end: T('2026-01-13T00:00:00Z'), type: 'default-active' }],
  });
  const p = pbh('weekly', {
    rrule: 'FREQ=WEEKLY;BYDAY=MO',
    exdates: [{ begin: T('2026-01-19T08:30:00Z'), end: T('2026-01-19T09:00:00Z'), type: 'default-pause' }],
    exceptions: ['holidays'],
  });
  assert.equal(typeAt(p, T('2026-01-05T09:00:00Z'), m), 'default-maintenance');
  assert.equal(typeAt(p, T('2026-01-12T09:00:00Z'), m), 'default-active', 'the exception’s exdate');
  assert.equal(typeAt(p, T('2026-01-19T08:45:00Z'), m), 'default-pause', 'its own exdate');
  assert.equal(typeAt(p, T('2026-01-19T09:15:00Z'), m), 'default-maintenance', 'after the exdate, the rrule again');
  assert.equal(typeAt({ ...p, enabled: false }, T('2026-01-05T09:00:00Z'), m), undefined);
});

test('an active pbehavior makes its entities inactive between its spans (business hours)', () => {
  const m = models();
  const hours = pbh('hours', {
    type: 'default-active',
    rrule: 'FREQ=DAILY',
    tstart: T('2026-01-05T08:00:00Z'),
    tstop: T('2026-01-05T18:00:00Z'),
  });
  assert.equal(typeAt(hours, T('2026-01-06T12:00:00Z'), m), 'default-active');
  assert.equal(typeAt(hours, T('2026-01-06T20:00:00Z'), m), 'default-inactive');
  assert.equal(typeAt(hours, T('2026-01-01T20:00:00Z'), m), undefined, 'before it starts: nothing');
  // Resolved: in hours the default active type means "no pbehavior"; out of hours, inactive.
  assert.equal(resolve([hours], web1, T('2026-01-06T12:00:00Z'), m), undefined);
  assert.equal(resolve([hours], web1, T('2026-01-06T20:00:00Z'), m)?.canonical_type, 'inactive');
});

test('among pbehaviors in force the highest priority wins, then the newest, then the greatest id; patterns select entities', () => {
  const m = models([['custom-maintenance', { name: 'Urgent works', description: '', type: 'maintenance', priority: 10, icon_name: '' }]]);
  const at = T('2026-01-05T09:00:00Z');
  const pause = pbh('p-pause', { type: 'default-pause', created: 5 });
  const maint = pbh('p-maint', { type: 'default-maintenance', created: 9 });
  assert.equal(resolve([maint, pause], web1, at, m)?.id, 'p-pause', 'priority 3 beats 2 whatever the age');
  const urgent = pbh('p-urgent', { type: 'custom-maintenance', created: 1 });
  const info = resolve([maint, pause, urgent], web1, at, m)!;
  assert.deepEqual(info, {
    timestamp: at,
    id: 'p-urgent',
    name: 'p-urgent',
    reason: DEFAULT_REASON.id,
    reason_name: 'Default',
    type: 'custom-maintenance',
    type_name: 'Urgent works',
    canonical_type: 'maintenance',
  });
  const older = pbh('p-a', { created: 1 });
  const newer = pbh('p-b', { created: 2 });
  assert.equal(resolve([older, newer], web1, at, m)?.id, 'p-b', 'same priority: the newest');
  assert.equal(resolve([pbh('p-a'), pbh('p-z')], web1, at, m)?.id, 'p-z', 'same priority and age: the greatest id');
  assert.equal(resolve([maint], disk, at, m), undefined, 'the pattern names web1 only');
  assert.deepEqual(defaultTypes(m.types), { active: 'default-active', inactive: 'default-inactive' });
});

test('entity patterns: OR of groups, AND within; string conditions; bad patterns refused with where', () => {
  const p = (cond: { type: string; value?: unknown }, field = 'name') => [[{ field, cond }]];
  const yes = (pat: ReturnType<typeof p>, e = disk) => assert.equal(matches(pat, e), true, JSON.stringify(pat));
  const no = (pat: ReturnType<typeof p>, e = disk) => assert.equal(matches(pat, e), false, JSON.stringify(pat));
  yes(p({ type: 'eq', value: 'disk' }));
  no(p({ type: 'neq', value: 'disk' }));
  yes(p({ type: 'is_one_of', value: ['cpu', 'disk'] }));
  yes(p({ type: 'contain', value: 'is' }));
  yes(p({ type: 'begin_with', value: 'di' }));
  no(p({ type: 'end_with', value: 'di' }));
  yes(p({ type: 'regexp', value: '^d.s' }));
  yes(p({ type: 'eq', value: 'web1' }, 'component'));
  yes(p({ type: 'exist', value: false }, 'category'));
  yes(p({ type: 'eq', value: 'prod' }, 'infos.env'), { ...disk, infos: { env: { value: 'prod' } } });
  assert.equal(matches([], disk), true, 'an empty pattern matches everything');
  const either = [[{ field: 'type', cond: { type: 'eq', value: 'component' } }], [{ field: 'name', cond: { type: 'eq', value: 'disk' } }]];
  assert.equal(matches(either, disk), true);
  assert.equal(matches([[...either[0]!, ...either[1]!]], disk), false, 'both in one group: AND');
  assert.match(
    checkPattern([[{ field: 'colour', cond: { type: 'eq', value: 'x' } }]]) ?? '',
    /entity_pattern\.0\.0\.field "colour" is not an entity field/,
  );
  assert.match(
    checkPattern([[{ field: 'name', cond: { type: 'looks_like', value: 'x' } }]]) ?? '',
    /entity_pattern\.0\.0\.cond\.type must be one of/,
  );
  assert.match(checkPattern([[{ field: 'name', cond: { type: 'regexp', value: '(' } }]]) ?? '', /not a regular expression/);
  assert.match(checkPattern([[]]) ?? '', /entity_pattern\.0 must be a non-empty array/);
  assert.equal(checkPattern(either), undefined);
});

test('axe follows the pbehavior the engine reports: born in it, pbhleave and pbhenter steps, inactive time counted once', () => {
  // partial_update_alarm.go: PartialUpdatePbhEnter / PbhLeave (steps with pbehavior_canonical_type, output
  // "Pbehavior NAME. Type: TYPE. Reason: REASON.", start/stopInactiveInterval, pbh_inactive_duration);
  // event_processor.go createAlarm: an alarm opened in a pbehavior gets its pbhenter step at once.
  const s = DEFAULT_ALARM_SETTINGS;
  const info: PbehaviorInfo = {
    timestamp: 1000,
    id: 'pbh-1',
    name: 'weekly works',
    reason: DEFAULT_REASON.id,
    reason_name: 'Default',
    type: 'default-maintenance',
    type_name: 'Default maintenance',
    canonical_type: 'maintenance',
  };
  const ev = (t: number, extra: Record<string, unknown>) => ({
    connector: 'nagios',
    connector_name: 'n1',
    event_type: 'check',
    source_type: 'resource',
    component: 'web1',
    resource: 'disk',
    state: 2,
    output: 'full',
    timestamp: t,
    ...extra,
  });
  const clock = (now: number) => ({ now, newId: () => '00000000-0000-4000-8000-000000000001' });
  const born = applyEvent(undefined, ev(1000, { pbehavior_info: info }), s, clock(1000));
  assert.deepEqual(born.changes, ['opened', 'pbhenter']);
  const a1 = born.next.current!;
  assert.deepEqual(
    a1.v.steps.map((x) => x._t),
    ['stateinc', 'statusinc', 'pbhenter'],
  );
  const enter = a1.v.steps[2]!;
  assert.equal(enter.m, 'Pbehavior weekly works. Type: Default maintenance. Reason: Default.');
  assert.equal(enter.a, 'system');
  assert.equal(enter.pbehavior_canonical_type, 'maintenance');
  assert.deepEqual(a1.v.pbehavior_info, info);
  assert.equal(a1.v.inactive_start, 1000);

  const same = applyEvent(born.next, ev(1100, { pbehavior_info: info, output: 'still full' }), s, clock(1100));
  assert.deepEqual(same.changes, ['changed'], 'the same pbehavior: no step');
  const snoozed = applyEvent(same.next, { ...ev(1200, {}), event_type: 'snooze', duration: 1000, author: 'alice' }, s, clock(1200));
  const left = applyEvent(snoozed.next, ev(1600, { pbehavior_info: null }), s, clock(1600));
  assert.deepEqual(left.changes, ['changed', 'pbhleave']);
  const a2 = left.next.current!;
  assert.equal(a2.v.pbehavior_info, undefined);
  assert.equal(a2.v.steps.at(-1)!._t, 'pbhleave');
  assert.equal(a2.v.steps.at(-1)!.pbehavior_canonical_type, 'maintenance');
  assert.equal(a2.v.pbh_inactive_duration, 600);
  assert.equal(a2.v.inactive_start, 1000, 'still snoozed: still inactive');
  const woke = applyEvent(left.next, { ...ev(1700, {}), event_type: 'unsnooze' }, s, clock(1700));
  assert.equal(woke.next.current!.v.inactive_duration, 700, 'inactive from the pbhenter to the unsnooze, counted once');
  assert.equal(woke.next.current!.v.inactive_start, undefined);

  const pause = { ...info, id: 'pbh-2', type: 'default-pause', type_name: 'Default pause', canonical_type: 'pause' as const };
  const entered = applyEvent(woke.next, { ...ev(1800, {}), event_type: 'pbhenter', pbehavior_info: pause }, s, clock(1800));
  assert.deepEqual(entered.changes, ['pbhenter']);
  const again = applyEvent(entered.next, { ...ev(1801, {}), event_type: 'pbhenter', pbehavior_info: pause }, s, clock(1801));
  assert.equal(again.ignored, 'the alarm is already in this pbehavior');
  const switched = applyEvent(entered.next, ev(1900, { pbehavior_info: info }), s, clock(1900));
  assert.deepEqual(switched.changes, ['changed', 'pbhleave', 'pbhenter'], 'from one pbehavior to another: leave, then enter');
  const out = applyEvent(switched.next, { ...ev(2000, {}), event_type: 'pbhleave' }, s, clock(2000));
  assert.deepEqual(out.changes, ['pbhleave']);
  assert.equal(applyEvent(out.next, { ...ev(2001, {}), event_type: 'pbhleave' }, s, clock(2001)).ignored, 'the alarm is in no pbehavior');
  const plain = applyEvent(out.next, ev(2100, {}), s, clock(2100));
  assert.deepEqual(plain.changes, ['changed'], 'an event that did not go through the pbehavior engine says nothing about pbehaviors');
});
