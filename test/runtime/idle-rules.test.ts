import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { applyEvent, onBeat } from '../../runtime/alarm/apply.js';
import { DEFAULT_ALARM_SETTINGS, STATUS } from '../../runtime/alarm/model.js';
import { type IdleCandidate, type IdleRule, idleOutcomes } from '../../runtime/idle/rules.js';
import type { PbehaviorInfo } from '../../runtime/pbehavior/model.js';
import { pbehaviorInfo, storedAlarm } from '../helpers/alarms.js';
import { type ApiStack, startApiStack } from '../helpers/api-stack.js';
import { waitFor } from '../helpers/index.js';

/*
 * Idle rules, as Canopsis v4 applies them to entities (capensis/canopsis
 * release-22.10: lib/canopsis/idlerule/rule.go, lib/canopsis/idlealarm/
 * service.go for the noevents event, lib/canopsis/alarm/event_processor.go
 * updateAlarmOnNoEventsEvent for its effect, lib/api/idlerule for the API).
 */

const rule = (key: string, over: Partial<IdleRule> = {}): IdleRule & { key: string } => ({
  key,
  name: key,
  description: '',
  author: 'root',
  enabled: true,
  type: 'entity',
  priority: 1,
  duration: { value: 10, unit: 'm' },
  entity_pattern: [[{ field: 'component', cond: { type: 'eq', value: 'web1' } }]],
  disable_during_periods: [],
  created: 0,
  updated: 0,
  ...over,
});
const candidate = (lastEvent: number, alarm?: IdleCandidate['alarm']): IdleCandidate => ({
  entity: { _id: 'disk/web1', name: 'disk', type: 'resource', component: 'web1', connector: 'nagios/n1', last_event_date: lastEvent },
  ...(alarm ? { alarm } : {}),
});
/** The events the rules call for. */
const idleEvents = (rules: Array<IdleRule & { key: string }>, candidates: IdleCandidate[], now: number) =>
  idleOutcomes(rules, candidates, now).flatMap((o) => ('event' in o ? [o.event] : []));
/** The entity's open alarm, opened at `opened`, last event and update then too. */
const openAlarm = (opened: number, over: { status?: number; pbehavior?: PbehaviorInfo; state?: number } = {}) => {
  const doc = storedAlarm({ id: 'a1', entity: 'disk/web1', opened, state: over.state ?? 2 });
  if (over.status !== undefined) doc.v.status.val = over.status;
  if (over.pbehavior) doc.v.pbehavior_info = over.pbehavior;
  return doc;
};

test('an entity silent for longer than the first matching rule gets a noevents event; not twice; not in a disabled period', () => {
  const now = 10_000;
  assert.deepEqual(idleEvents([rule('ten-minutes')], [candidate(now - 599)], now), [], 'not yet');
  const [e] = idleEvents(
    [rule('late', { priority: 2, duration: { value: 1, unit: 's' } }), rule('ten-minutes')],
    [candidate(now - 600)],
    now,
  );
  assert.deepEqual(e, {
    connector: 'nagios',
    connector_name: 'n1',
    event_type: 'noevents',
    source_type: 'resource',
    component: 'web1',
    resource: 'disk',
    state: 3,
    output: 'Idle rule ten-minutes',
    author: 'system',
    initiator: 'system',
    idle_rule: 'ten-minutes',
    timestamp: now,
  });
  assert.deepEqual(idleEvents([rule('r')], [candidate(0, { doc: openAlarm(0, { status: STATUS.noevents }) })], now), [], 'already idle');
  const maintenance = pbehaviorInfo('maintenance');
  assert.deepEqual(
    idleEvents(
      [rule('r', { disable_during_periods: ['maintenance'] })],
      [candidate(0, { doc: openAlarm(0, { pbehavior: maintenance }) })],
      now,
    ),
    [],
  );
  assert.deepEqual(idleEvents([rule('r', { enabled: false })], [candidate(0)], now), []);
  assert.deepEqual(
    idleEvents([rule('r', { entity_pattern: [[{ field: 'component', cond: { type: 'eq', value: 'db1' } }]] })], [candidate(0)], now),
    [],
  );
});

test('an alarm rule: an alarm without events for the duration gets the operation, once, until its entity speaks', () => {
  const now = 10_000;
  const ackStale = rule('ack-stale', {
    type: 'alarm',
    alarm_condition: 'last_event',
    entity_pattern: [],
    // alarm.go fields: major and up only.
    alarm_pattern: [[{ field: 'v.state.val', cond: { type: 'gt', value: 1 } }]],
    operation: { type: 'ack', parameters: { output: 'stale, acked by rule' } },
  });
  const stale = openAlarm(now - 600);
  assert.deepEqual(idleOutcomes([ackStale], [candidate(now - 600, { doc: openAlarm(now - 599) })], now), [], 'not yet');
  const [o] = idleOutcomes([ackStale], [candidate(now - 600, { doc: stale })], now);
  assert.deepEqual(o, {
    event: {
      connector: 'nagios',
      connector_name: 'n1',
      event_type: 'ack',
      source_type: 'resource',
      component: 'web1',
      resource: 'disk',
      output: 'stale, acked by rule',
      author: 'system',
      initiator: 'system',
      idle_rule: 'ack-stale',
      idle_rule_apply: 'alarm_last_event',
      timestamp: now,
    },
  });
  assert.deepEqual(idleOutcomes([ackStale], [candidate(0, { doc: stale, idleApplied: 'alarm_last_event' })], now), [], 'applied already');
  assert.deepEqual(idleOutcomes([ackStale], [candidate(0, { doc: openAlarm(0, { state: 1 }) })], now), [], 'the alarm pattern');
  assert.deepEqual(idleOutcomes([ackStale], [candidate(0)], now), [], 'no alarm, nothing to act on');

  // The same alarm, a silent entity, an entity rule of lower priority: the first rule that applies wins.
  const both = idleOutcomes([rule('entity-rule', { priority: 2 }), ackStale], [candidate(0, { doc: stale })], now);
  assert.deepEqual(
    both.map((x) => ('event' in x ? x.event.event_type : 'pbehavior')),
    ['ack'],
  );
  const pbh = idleOutcomes(
    [
      rule('pause', {
        type: 'alarm',
        alarm_condition: 'last_update',
        entity_pattern: [],
        operation: {
          type: 'pbehavior',
          parameters: { name: 'p', type: 'default-pause', reason: 'default-reason', start_on_trigger: true },
        },
      }),
    ],
    [candidate(0, { doc: stale })],
    now,
  );
  assert.equal(pbh.length, 1);
  assert.ok('pbehavior' in pbh[0]! && pbh[0].apply === 'alarm_last_update' && pbh[0].entity === 'disk/web1');

  // axe remembers the rule on the entity's alarm document until a check says the entity is alive.
  const s = DEFAULT_ALARM_SETTINGS;
  const check = {
    connector: 'nagios',
    connector_name: 'n1',
    event_type: 'check',
    source_type: 'resource',
    component: 'web1',
    resource: 'disk',
  };
  const opened = applyEvent(undefined, { ...check, state: 2, output: 'x', timestamp: 100 }, s, { now: 100 }).next;
  const acked = applyEvent(opened, { ...(o as { event: Record<string, unknown> }).event, timestamp: 200 }, s, { now: 200 }).next;
  assert.equal(acked.idle_rule_apply, 'alarm_last_event');
  assert.equal(acked.current?.v.ack?.m, 'stale, acked by rule');
  assert.equal(applyEvent(acked, { ...check, state: 2, output: 'alive', timestamp: 300 }, s, { now: 300 }).next.idle_rule_apply, undefined);
  const updateRule = { ...acked, idle_rule_apply: 'alarm_last_update' };
  assert.equal(
    applyEvent(updateRule, { ...check, state: 2, output: 'same', timestamp: 300 }, s, { now: 300 }).next.idle_rule_apply,
    'alarm_last_update',
    'a check that changes nothing does not end "no update"',
  );
  assert.equal(
    applyEvent(updateRule, { ...check, state: 3, output: 'worse', timestamp: 300 }, s, { now: 300 }).next.idle_rule_apply,
    undefined,
  );
});

test('noevents opens an alarm at its state with status noevents (5); the next check recomputes the status', () => {
  const s = DEFAULT_ALARM_SETTINGS;
  const idle = {
    connector: 'nagios',
    connector_name: 'n1',
    event_type: 'noevents',
    source_type: 'resource',
    component: 'web1',
    resource: 'disk',
    state: 3,
    output: 'Idle rule r',
    author: 'system',
    initiator: 'system',
    timestamp: 1000,
  };
  const opened = applyEvent(undefined, idle, s, { now: 1000 });
  assert.deepEqual(opened.changes, ['opened']);
  const a = opened.next.current!;
  assert.deepEqual(
    a.v.steps.map((x) => `${x._t}:${x.val}:${x.a}`),
    ['stateinc:3:system', 'statusinc:5:system'],
  );
  assert.equal(applyEvent(opened.next, { ...idle, timestamp: 1001 }, s, { now: 1001 }).ignored, 'already idle');
  assert.deepEqual(onBeat(opened.next, 5000, s).changes, [], 'time alone leaves an idle alarm idle');
  const back = applyEvent(opened.next, { ...idle, event_type: 'check', state: 1, output: 'alive', author: undefined, timestamp: 1100 }, s, {
    now: 1100,
  });
  const b = back.next.current!;
  assert.equal(b.v.status.val, STATUS.ongoing, 'a check: the status computed again');
  assert.equal(b.v.state.val, 1);
  assert.equal(applyEvent(undefined, { ...idle, state: 0 }, s, { now: 1000 }).ignored, 'noevents at state 0 and no open alarm');
});

const KEY = 'test-admin-key-idle-rules-0123';
let stack: ApiStack;

before(async () => {
  stack = await startApiStack({
    tag: 'idle',
    port: 5798,
    authkey: KEY,
    runtime: '[dispatchers]\nevent_dispatchers =\n\n[alarms]\nresolve_delay = 100000\n',
  });
});

after(() => stack?.stop());

const call = (method: string, url: string, body?: unknown) => stack.call(method, url, body);

test('a connector that goes silent raises the idle alarm, through an idle rule made with the API', async () => {
  const bad = await call('POST', '/api/v4/idle-rules', {
    name: 'x',
    enabled: true,
    type: 'alarm',
    priority: 1,
    duration: { value: 1, unit: 's' },
    entity_pattern: [],
    alarm_pattern: [[{ field: 'v.state.val', cond: { type: 'regexp', value: '2' } }]],
    operation: { type: 'snooze', parameters: {} },
  });
  assert.equal(bad.status, 400);
  assert.deepEqual(Object.keys(bad.body.errors).sort(), ['alarm_condition', 'alarm_pattern', 'operation.parameters.duration']);
  assert.match(bad.body.errors.alarm_pattern, /alarm_pattern\.0\.0\.cond\.type must be one of eq, neq, gt, lt/);
  const created = await call('POST', '/api/v4/idle-rules', {
    name: 'silent hosts',
    description: 'no news for 2 s',
    enabled: true,
    type: 'entity',
    priority: 1,
    duration: { value: 2, unit: 's' },
    entity_pattern: [[{ field: 'component', cond: { type: 'eq', value: 'quiet-host' } }]],
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.author, 'authkey');
  assert.equal((await call('GET', `/api/v4/idle-rules/${created.body._id}`)).body.name, 'silent hosts');

  // The host says it is fine once (state 0: no alarm), then nothing.
  await call('POST', '/api/v4/event', {
    connector: 'nagios',
    connector_name: 'n1',
    event_type: 'check',
    component: 'quiet-host',
    resource: 'ping',
    state: 0,
    output: 'ok',
  });
  await call('POST', '/api/v4/event', {
    connector: 'nagios',
    connector_name: 'n1',
    event_type: 'check',
    component: 'busy-host',
    resource: 'ping',
    state: 0,
    output: 'ok',
  });
  const idle = await waitFor(
    'the idle alarm',
    async () => (await call('GET', '/api/v4/alarms?opened=true&search=quiet-host')).body.data?.[0],
    30_000,
    250,
  );
  assert.equal(idle.v.status.val, 5, 'status noevents');
  assert.equal(idle.v.state.val, 3);
  assert.equal(idle.v.output, 'Idle rule silent hosts');
  assert.equal((await call('GET', '/api/v4/alarms?opened=true&search=busy-host')).body.data.length, 0, 'the rule names quiet-host only');

  // It speaks again: the alarm is ongoing at the state it reports.
  await call('POST', '/api/v4/event', {
    connector: 'nagios',
    connector_name: 'n1',
    event_type: 'check',
    component: 'quiet-host',
    resource: 'ping',
    state: 1,
    output: 'slow',
  });
  await waitFor('the alarm ongoing again', async () => (await call('GET', `/api/v4/alarms/${idle._id}`)).body.v.status.val === 1);
  assert.equal((await call('DELETE', `/api/v4/idle-rules/${created.body._id}`)).status, 204);
});

test('an alarm rule made with the API puts a ticket on an alarm that gets no event for its duration, once', async () => {
  const created = await call('POST', '/api/v4/idle-rules', {
    name: 'ticket for stale criticals',
    enabled: true,
    type: 'alarm',
    priority: 1,
    duration: { value: 2, unit: 's' },
    alarm_condition: 'last_event',
    entity_pattern: [[{ field: 'component', cond: { type: 'begin_with', value: 'stale-' } }]],
    alarm_pattern: [[{ field: 'v.state.val', cond: { type: 'eq', value: 3 } }]],
    operation: { type: 'assocticket', parameters: { output: 'no news for 2 s', ticket: 'IDLE-1' } },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const send = (component: string, state: number) =>
    call('POST', '/api/v4/event', {
      connector: 'nagios',
      connector_name: 'n1',
      event_type: 'check',
      component,
      resource: 'cpu',
      state,
      output: 'x',
    });
  await send('stale-critical', 3);
  await send('stale-major', 2);
  const acked = await waitFor(
    'the stale critical alarm given its ticket by the rule',
    async () => {
      const a = (await call('GET', '/api/v4/alarms?opened=true&search=stale-critical')).body.data?.[0];
      return a?.v.ticket ? a : undefined;
    },
    30_000,
    250,
  );
  assert.equal(acked.v.ticket.val, 'IDLE-1');
  assert.equal(acked.v.ticket.a, 'system');
  const major = (await call('GET', '/api/v4/alarms?opened=true&search=stale-major')).body.data[0];
  assert.equal(major.v.ticket, undefined, 'the alarm pattern names critical alarms only');
  // Applied once: no second ticket step while the entity stays silent (a second assocticket would add one).
  const steps = async () =>
    (await call('GET', `/api/v4/alarms/${acked._id}`)).body.v.steps.filter((x: { _t: string }) => x._t === 'assocticket').length;
  // A later idle check is proven by a second alarm ticketed after the first: the first still has its one ticket.
  await send('stale-later', 3);
  await waitFor(
    'a later idle check',
    async () => (await call('GET', '/api/v4/alarms?opened=true&search=stale-later')).body.data?.[0]?.v.ticket,
    30_000,
    250,
  );
  assert.equal(await steps(), 1);
  assert.equal((await call('DELETE', `/api/v4/idle-rules/${created.body._id}`)).status, 204);
});
