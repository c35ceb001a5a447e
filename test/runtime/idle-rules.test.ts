import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { applyEvent, onBeat } from '../../runtime/alarm/apply.js';
import { DEFAULT_ALARM_SETTINGS, STATUS } from '../../runtime/alarm/model.js';
import { type IdleCandidate, type IdleRule, idleEvents } from '../../runtime/idle/rules.js';
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
  assert.deepEqual(idleEvents([rule('r')], [candidate(0, { statusVal: STATUS.noevents })], now), [], 'already idle');
  const maintenance = {
    timestamp: 0,
    id: 'p',
    name: 'p',
    reason: '',
    reason_name: '',
    type: 't',
    type_name: 't',
    canonical_type: 'maintenance' as const,
  };
  assert.deepEqual(
    idleEvents([rule('r', { disable_during_periods: ['maintenance'] })], [candidate(0, { statusVal: 1, pbehavior: maintenance })], now),
    [],
  );
  assert.deepEqual(idleEvents([rule('r', { enabled: false })], [candidate(0)], now), []);
  assert.deepEqual(
    idleEvents([rule('r', { entity_pattern: [[{ field: 'component', cond: { type: 'eq', value: 'db1' } }]] })], [candidate(0)], now),
    [],
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
  });
  assert.equal(bad.status, 400);
  assert.match(bad.body.errors.type, /not supported yet/);
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
