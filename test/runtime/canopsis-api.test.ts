import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { hashPassword } from '../../runtime/web/auth.js';
import type { ApiClient } from '../../runtime/web/client.js';
import { type ApiStack, startApiStack } from '../helpers/api-stack.js';
import { waitFor } from '../helpers/index.js';

/*
 * Canopsis v4's own API scenarios, replayed against the appliance running
 * for real (cleaner -> che -> axe and the webserver over HTTPS). Each test
 * names the scenario or handler of capensis/canopsis it takes its requests,
 * status codes and bodies from:
 *   F = community/go-engines-community/tests/functional/features/api/core on release-22.10
 *   L = community/go-engines-community/lib on release-22.10 (release-24.10 for lib/api/alarmaction)
 * "should be" compares the whole body; "should contain" (Canopsis' step) only
 * what is given, arrays element by element.
 * The user is root, an admin, as in Canopsis' fixtures; noperms is a
 * read-only user here (Canopsis: a role without the permission).
 */

const KEY = 'test-admin-key-canopsis-api-0123';
let stack: ApiStack;
let client: ApiClient;

before(async () => {
  stack = await startApiStack({
    tag: 'cpsapi',
    port: 5796,
    authkey: KEY,
    runtime:
      '[dispatchers]\nevent_dispatchers =\n\n[alarms]\nresolve_delay = 1\ncancel_delay = 3600\nflapping_count = 10\nflapping_window = 3600\nstealthy_window = 0\nmax_steps = 2000\nsnooze_default = 300\n',
    users: `[user:root]\nrole = admin\npassword_hash = ${await hashPassword('test')}\n\n[user:noperms]\nrole = readonly\npassword_hash = ${await hashPassword('test')}\n`,
  });
  client = stack.client;
});

after(() => stack?.stop());

// biome-ignore lint/suspicious/noExplicitAny: bodies are whatever JSON the API answers
type Json = any;
type Who = 'root' | 'noperms' | 'nobody' | { bearer: string };

/** "When I am X / When I do METHOD URL: body" */
async function call(who: Who, method: string, url: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const headers: Record<string, string> = {};
  if (who === 'root' || who === 'noperms') headers.authorization = `Basic ${Buffer.from(`${who}:test`).toString('base64')}`;
  else if (typeof who === 'object') headers.authorization = `Bearer ${who.bearer}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await client.fetch(`${client.origin}${url}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json: Json = text;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: compared as text
  }
  return { status: r.status, body: json };
}

/** Canopsis' "the response body should contain": every given key, recursively; arrays of the same length, item by item. */
function contains(actual: Json, expected: Json, where = 'body'): void {
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${where}: expected an array, got ${JSON.stringify(actual)}`);
    assert.equal(actual.length, expected.length, `${where}: ${JSON.stringify(actual)}`);
    for (const [i, x] of expected.entries()) contains(actual[i], x, `${where}[${i}]`);
  } else if (expected && typeof expected === 'object') {
    assert.ok(actual && typeof actual === 'object', `${where}: expected an object, got ${JSON.stringify(actual)}`);
    for (const [k, v] of Object.entries(expected)) contains(actual[k], v, `${where}.${k}`);
  } else assert.deepEqual(actual, expected, where);
}

const resourceEvent = (component: string, resource: string, state: number, extra: Record<string, unknown> = {}) => ({
  connector: 'test-connector',
  connector_name: 'test-connector-name',
  source_type: 'resource',
  event_type: 'check',
  component,
  resource,
  state,
  output: `${resource}-output`,
  ...extra,
});

async function openAlarm(component: string, resource: string, state = 2, extra: Record<string, unknown> = {}): Promise<Json> {
  const sent = await call('root', 'POST', '/api/v4/event', resourceEvent(component, resource, state, extra));
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  return waitFor(`the alarm of ${resource}/${component}`, async () => {
    const r = await call('root', 'GET', `/api/v4/alarms?opened=true&search=${encodeURIComponent(resource)}`);
    return r.body.data?.find((a: Json) => a.d === `${resource}/${component}`);
  });
}

test('F/authenticate.feature: login, Bearer access, logout, 401 after logout, bad credentials, missing fields', async () => {
  const login = await call('nobody', 'POST', '/api/v4/login', { username: 'root', password: 'test' });
  assert.equal(login.status, 200);
  assert.match(login.body.access_token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'a JWT');
  const token = { bearer: login.body.access_token as string };
  assert.equal((await call(token, 'GET', '/api/v4/alarms')).status, 200);
  assert.equal((await call(token, 'POST', '/api/v4/logout')).status, 204);
  assert.equal((await call(token, 'GET', '/api/v4/alarms')).status, 401, 'a token is dead after logout');
  assert.equal((await call('nobody', 'POST', '/api/v4/login', { username: 'nouser', password: 'nopass' })).status, 401);
  const empty = await call('nobody', 'POST', '/api/v4/login', {});
  assert.equal(empty.status, 400);
  assert.deepEqual(empty.body, { errors: { password: 'Password is missing.', username: 'Username is missing.' } });
  assert.equal((await call('nobody', 'POST', '/api/v4/logout')).status, 401);
  assert.equal((await call({ bearer: `${login.body.access_token}x` }, 'GET', '/api/v4/alarms')).status, 401, 'a forged token');
  // A read-only user's token reads, and cannot write (Canopsis: 403 without the permission).
  const ro = await call('nobody', 'POST', '/api/v4/login', { username: 'noperms', password: 'test' });
  assert.equal((await call({ bearer: ro.body.access_token }, 'GET', '/api/v4/alarms')).status, 200);
  assert.equal((await call({ bearer: ro.body.access_token }, 'POST', '/api/v4/event', resourceEvent('c', 'r', 1))).status, 403);
});

test('F/event.feature: sent, failed and retry lists, author from the caller, 200 even when every event fails, 401, 403', async () => {
  assert.equal((await call('nobody', 'POST', '/api/v4/event')).status, 401);
  assert.equal((await call('noperms', 'POST', '/api/v4/event', {})).status, 403);
  const event = {
    connector: 'test_connector',
    connector_name: 'test_connectorname',
    source_type: 'resource',
    event_type: 'check',
    component: 'test_component',
    state: 1,
    resource: 'test_resource',
  };
  const one = await call('root', 'POST', '/api/v4/event', event);
  assert.equal(one.status, 200);
  contains(one.body, { sent_events: [{ author: 'root', ...event }], failed_events: [], retry_events: [] });
  const array = await call('root', 'POST', '/api/v4/event', [
    { ...event, component: 'test_component_array', resource: 'test_resource_array' },
    { author: 'test_author', ...event, component: 'test_component_array', resource: 'test_resource_array2' },
  ]);
  assert.equal(array.status, 200);
  contains(array.body, {
    sent_events: [
      { author: 'root', ...event, component: 'test_component_array', resource: 'test_resource_array' },
      { author: 'test_author', ...event, component: 'test_component_array', resource: 'test_resource_array2' },
    ],
    failed_events: [],
    retry_events: [],
  });
  const { event_type: _t, ...noType } = event;
  const noTypeAnswer = await call('root', 'POST', '/api/v4/event', noType);
  assert.equal(noTypeAnswer.status, 200);
  contains(noTypeAnswer.body, { sent_events: [], failed_events: [noType], retry_events: [] });
  const numericType = await call('root', 'POST', '/api/v4/event', { ...event, event_type: 123 });
  contains(numericType.body, { sent_events: [], failed_events: [{ ...event, event_type: 123 }], retry_events: [] });
  // processValue sets source_type from the fields present, whatever the event said.
  const derived = await call('root', 'POST', '/api/v4/event', { ...event, source_type: 'component' });
  contains(derived.body, { sent_events: [{ source_type: 'resource' }] });
  const noBody = await call('root', 'POST', '/api/v4/event', 'text');
  assert.equal(noBody.status, 400, 'neither an object nor an array');
});

test("F/alarm_get.feature: an alarm's shape, the entity inside, open and recently resolved by default, search, sort, multi_sort", async () => {
  const a = await openAlarm('test-component-to-alarm-get', 'test-resource-to-alarm-get-1', 2, { long_output: 'long' });
  // The keys and values the scenario's expected body holds for an alarm of one check event.
  contains(a, {
    entity: {
      _id: 'test-resource-to-alarm-get-1/test-component-to-alarm-get',
      category: null,
      connector: 'test-connector/test-connector-name',
      component: 'test-component-to-alarm-get',
      enabled: true,
      impact_level: 1,
      infos: {},
      name: 'test-resource-to-alarm-get-1',
      type: 'resource',
    },
    impact_state: 2,
    infos: {},
    v: {
      children: [],
      component: 'test-component-to-alarm-get',
      connector: 'test-connector',
      connector_name: 'test-connector-name',
      infos: {},
      infos_rule_version: {},
      initial_long_output: 'long',
      initial_output: 'test-resource-to-alarm-get-1-output',
      long_output: 'long',
      long_output_history: ['long'],
      output: 'test-resource-to-alarm-get-1-output',
      parents: [],
      resource: 'test-resource-to-alarm-get-1',
      pbh_inactive_duration: 0,
      snooze_duration: 0,
      state: {
        _t: 'stateinc',
        a: 'test-connector.test-connector-name',
        user_id: '',
        m: 'test-resource-to-alarm-get-1-output',
        initiator: 'external',
        val: 2,
      },
      status: { _t: 'statusinc', a: 'test-connector.test-connector-name', val: 1 },
      total_state_changes: 1,
      events_count: 1,
    },
  });
  for (const k of ['t', 'v.creation_date', 'v.last_event_date', 'v.last_update_date', 'v.duration', 'v.current_state_duration'])
    assert.equal(typeof k.split('.').reduce((o, p) => o?.[p], a), 'number', `${k} is a number`);
  assert.match(a.v.display_name, /^[A-Z]{2}-[A-Z]{2}-[A-Z]{2}$/, 'display_name as Canopsis makes them (PU-YA-QB)');
  assert.ok(!('resolved' in a.v), 'no resolved key on an open alarm');
  assert.ok(!('steps' in a.v), 'no steps in a list');

  await openAlarm('test-component-to-alarm-get', 'test-resource-to-alarm-get-2', 3);
  await openAlarm('test-component-to-alarm-get', 'test-resource-to-alarm-get-3', 1);
  // Resolve -3: state 0, then the resolve delay (1 s) on axe's beat.
  await call('root', 'POST', '/api/v4/event', resourceEvent('test-component-to-alarm-get', 'test-resource-to-alarm-get-3', 0));
  await waitFor(
    'alarm 3 resolved',
    async () => (await call('root', 'GET', '/api/v4/alarms?opened=false&search=to-alarm-get-3')).body.data?.length === 1,
  );

  const ids = (r: { body: Json }) => r.body.data.map((x: Json) => x.v.resource);
  const all = await call('root', 'GET', '/api/v4/alarms?search=test-resource-to-alarm-get');
  assert.equal(all.status, 200);
  assert.deepEqual(
    new Set(ids(all)),
    new Set(['test-resource-to-alarm-get-1', 'test-resource-to-alarm-get-2', 'test-resource-to-alarm-get-3']),
    'opened omitted: open and recently resolved',
  );
  const resolved = all.body.data.find((x: Json) => x.v.resource === 'test-resource-to-alarm-get-3');
  contains(resolved.v, { state: { _t: 'statedec', val: 0 }, status: { _t: 'statusdec', val: 0 } });
  assert.equal(typeof resolved.v.resolved, 'number');
  assert.deepEqual(ids(await call('root', 'GET', '/api/v4/alarms?search=test-resource-to-alarm-get&opened=true')).sort(), [
    'test-resource-to-alarm-get-1',
    'test-resource-to-alarm-get-2',
  ]);
  assert.deepEqual(ids(await call('root', 'GET', '/api/v4/alarms?search=test-resource-to-alarm-get&opened=false')), [
    'test-resource-to-alarm-get-3',
  ]);
  assert.deepEqual(ids(await call('root', 'GET', '/api/v4/alarms?search=test-resource-to-alarm-get&sort_by=v.state.val&sort=desc')), [
    'test-resource-to-alarm-get-2',
    'test-resource-to-alarm-get-1',
    'test-resource-to-alarm-get-3',
  ]);
  assert.deepEqual(
    ids(
      await call(
        'root',
        'GET',
        '/api/v4/alarms?search=test-resource-to-alarm-get&multi_sort[]=v.status.val,asc&multi_sort[]=v.state.val,desc',
      ),
    ),
    ['test-resource-to-alarm-get-3', 'test-resource-to-alarm-get-2', 'test-resource-to-alarm-get-1'],
  );
  const t0 = a.t;
  const window = await call('root', 'GET', `/api/v4/alarms?search=test-resource-to-alarm-get&time_field=t&tstart=${t0}&tstop=${t0}`);
  assert.ok(ids(window).includes('test-resource-to-alarm-get-1'));
  assert.equal((await call('root', 'GET', '/api/v4/alarms?search=nothing-is-called-this')).body.data.length, 0);
  contains((await call('root', 'GET', '/api/v4/alarms?search=test-resource-to-alarm-get&limit=2')).body.meta, {
    page: 1,
    page_count: 2,
    per_page: 2,
    total_count: 3,
  });

  const one = await call('root', 'GET', `/api/v4/alarms/${a._id}`);
  assert.equal(one.status, 200);
  contains(one.body, { _id: a._id, entity: { _id: 'test-resource-to-alarm-get-1/test-component-to-alarm-get' } });
  assert.deepEqual(
    one.body.v.steps.map((s: Json) => s._t),
    ['stateinc', 'statusinc'],
  );
});

test('F/alarm_get.feature: invalid requests, not found, 401 and 403 bodies', async () => {
  const bad = async (url: string) => {
    const r = await call('root', 'GET', url);
    assert.equal(r.status, 400, url);
    return r.body;
  };
  assert.deepEqual(await bad('/api/v4/alarms?filters[]=not-exist'), { errors: { filter: "Filter doesn't exist." } });
  assert.deepEqual(await bad('/api/v4/alarms?time_field=unknown'), {
    errors: { time_field: 'TimeField must be one of [t v.creation_date v.resolved v.last_update_date v.last_event_date] or empty.' },
  });
  contains(await bad('/api/v4/alarms?multi_sort[]=t,asc&multi_sort[]=v.last_event_date,desc&sort_by=v.duration&sort=desc'), {
    errors: { sort_by: "Can't be present both SortBy and MultiSort." },
  });
  for (const m of ['v.last_event_date', 'v.last_event_date,bad', 'v.last_event_date,desc,extra'])
    contains(await bad(`/api/v4/alarms?search=test-alarm-multi-sort-get&multi_sort[]=t,asc&multi_sort[]=${m}`), {
      errors: { multi_sort: 'Invalid multi_sort value.' },
    });
  const missing = await call('root', 'GET', '/api/v4/alarms/not-exist');
  assert.equal(missing.status, 404);
  assert.deepEqual(missing.body, { error: 'Not found' });
  assert.equal((await call('nobody', 'GET', '/api/v4/alarms')).status, 401);
  assert.equal((await call('nobody', 'GET', '/api/v4/alarms/not-exist')).status, 401);
  // lib/api/common/models.go NewPaginatedMeta
  assert.deepEqual((await call('root', 'GET', '/api/v4/alarms?search=nothing-is-called-this&page=2')).body, {
    error: 'page is out of range',
  });
});

const alarmNow = async (id: string, ready: (a: Json) => boolean, what: string) =>
  waitFor(what, async () => {
    const r = await call('root', 'GET', `/api/v4/alarms/${id}`);
    return ready(r.body) ? r.body : undefined;
  });

test('L/api/alarmaction (release-24.10): each action answers 204 and acts; 404 when it cannot apply; 400 with {errors}', async () => {
  const a = await openAlarm('test-component-actions', 'test-resource-actions', 2);
  const put = (action: string, body: unknown = {}) => call('root', 'PUT', `/api/v4/alarms/${a._id}/${action}`, body);

  assert.equal((await put('ack', { comment: 'on it' })).status, 204);
  const acked = await alarmNow(a._id, (x) => x.v.ack, 'acked');
  contains(acked.v.ack, { _t: 'ack', a: 'root', user_id: 'root', m: 'on it', initiator: 'user', val: 0 });
  assert.equal((await put('ackremove')).status, 204);
  await alarmNow(a._id, (x) => !x.v.ack, 'ack removed');
  assert.deepEqual((await put('ackremove')).body, { error: 'Not found' }, 'store.go AckRemove: v.ack must be there');

  assert.equal((await put('snooze', { duration: { value: 1, unit: 'h' }, comment: 'later' })).status, 204);
  const snoozed = await alarmNow(a._id, (x) => x.v.snooze, 'snoozed');
  assert.equal(snoozed.v.snooze.val - snoozed.v.snooze.t, 3600, 'DurationWithUnit 1 h');
  assert.equal((await put('snooze', { duration: { value: 1, unit: 'h' } })).status, 404, 'already snoozed');
  const badUnit = await put('snooze', { duration: { value: 1, unit: 'parsec' } });
  assert.equal(badUnit.status, 400);
  assert.ok(badUnit.body.errors['duration.unit']);
  assert.deepEqual((await put('comment', {})).body, { errors: { comment: 'Comment is missing.' } });

  assert.equal((await put('assocticket', { ticket: 'TICKET-1', data: { url: 'https://tickets/1' } })).status, 204);
  const ticketed = await alarmNow(a._id, (x) => x.v.ticket, 'ticket');
  contains(ticketed.v.ticket, { _t: 'assocticket', a: 'root', val: 'TICKET-1', data: { url: 'https://tickets/1' } });
  assert.equal((await put('comment', { comment: 'looked at it' })).status, 204);
  await alarmNow(a._id, (x) => x.v.last_comment?.m === 'looked at it', 'last comment');
  assert.equal((await put('changestate', { state: 3, comment: 'worse' })).status, 204);
  const changed = await alarmNow(a._id, (x) => x.v.state.val === 3, 'state changed');
  contains(changed.v.state, { _t: 'changestate', a: 'root', m: 'worse' });
  assert.deepEqual((await put('changestate', {})).body, { errors: { state: 'State is missing.' } });

  assert.equal((await put('cancel', { comment: 'false alarm' })).status, 204);
  const cancelled = await alarmNow(a._id, (x) => x.v.canceled, 'cancelled');
  assert.equal(cancelled.v.status.val, 4);
  assert.equal((await put('cancel')).status, 404, 'already cancelled');
  assert.equal((await put('uncancel')).status, 204);
  const back = await alarmNow(a._id, (x) => !x.v.canceled, 'uncancelled');
  assert.equal(back.v.status.val, 1);
  assert.deepEqual(
    back.v.steps.map((s: Json) => s._t),
    [
      'stateinc',
      'statusinc',
      'ack',
      'ackremove',
      'snooze',
      'assocticket',
      'comment',
      'changestate',
      'cancel',
      'statusinc',
      'uncancel',
      'statusdec',
    ],
  );
  assert.equal((await call('root', 'PUT', '/api/v4/alarms/not-exist/ack', {})).status, 404);
  assert.equal((await call('noperms', 'PUT', `/api/v4/alarms/${a._id}/ack`, {})).status, 403);
});

test('L/api/alarmaction bulk routes (release-24.10 lib/api/bulk/handler.go): 207, one answer per item', async () => {
  const a = await openAlarm('test-component-bulk', 'test-resource-bulk', 1);
  const r = await call('root', 'PUT', '/api/v4/bulk/alarms/ack', [
    { _id: a._id, comment: 'bulk' },
    { _id: 'not-exist' },
    { comment: 'no id' },
    'x',
  ]);
  assert.equal(r.status, 207);
  assert.deepEqual(r.body, [
    { id: a._id, status: 200, item: { _id: a._id, comment: 'bulk' } },
    { status: 404, item: { _id: 'not-exist' }, error: 'Not found' },
    { status: 400, item: { comment: 'no id' }, errors: { _id: 'ID is missing.' } },
    { status: 400, item: 'x', error: 'request has invalid structure' },
  ]);
  await alarmNow(a._id, (x) => x.v.ack?.m === 'bulk', 'acked in bulk');
});

test('POST /api/v4/alarm-details (L/api/alarm/api.go GetDetails): 207, steps paged, reversed; 404 per unknown id', async () => {
  const a = await openAlarm('test-component-details', 'test-resource-details', 1);
  await call('root', 'PUT', `/api/v4/alarms/${a._id}/comment`, { comment: 'one' });
  await alarmNow(a._id, (x) => x.v.last_comment, 'commented');
  const r = await call('root', 'POST', '/api/v4/alarm-details', [
    { _id: a._id, steps: { page: 1, limit: 2, reversed: true } },
    { _id: 'not-exist', steps: { page: 1 } },
  ]);
  assert.equal(r.status, 207);
  assert.equal(r.body[0].status, 200);
  assert.deepEqual(
    r.body[0].data.steps.data.map((s: Json) => s._t),
    ['comment', 'statusinc'],
  );
  assert.deepEqual(r.body[0].data.steps.meta, { page: 1, per_page: 2, page_count: 2, total_count: 3 });
  assert.deepEqual(r.body[1], { _id: 'not-exist', status: 404, error: 'Not found' });
  assert.equal(
    (await call('noperms', 'POST', '/api/v4/alarm-details', [{ _id: a._id }])).status,
    207,
    'a read, allowed to read-only users',
  );
});

test('F/entity_get.feature and entitybasic_get.feature: search on name and type, type[], the shape, 404, 401', async () => {
  await openAlarm('test-component-to-entity-get', 'test-resource-to-entity-get-1', 2);
  const r = await call('root', 'GET', '/api/v4/entities?search=to-entity-get');
  assert.equal(r.status, 200);
  const byId = new Map(r.body.data.map((e: Json) => [e._id, e]));
  contains(byId.get('test-resource-to-entity-get-1/test-component-to-entity-get'), {
    category: null,
    connector: 'test-connector/test-connector-name',
    enabled: true,
    old_entity_patterns: null,
    component: 'test-component-to-entity-get',
    impact_level: 1,
    infos: {},
    name: 'test-resource-to-entity-get-1',
    type: 'resource',
    ok_events: 0,
    ko_events: 0,
    state: 2,
    status: 1,
    impact_state: 2,
  });
  contains(byId.get('test-component-to-entity-get'), { type: 'component', state: 0, status: 0, impact_state: 0 });
  const types = await call('root', 'GET', '/api/v4/entities?search=test-connector&type[]=connector');
  contains(types.body.data, [
    { _id: 'test-connector/test-connector-name', name: 'test-connector-name', connector_type: 'test-connector', type: 'connector' },
  ]);
  assert.equal((await call('root', 'GET', '/api/v4/entities?type[]=planet')).status, 400);
  const basic = await call(
    'root',
    'GET',
    `/api/v4/entitybasics?_id=${encodeURIComponent('test-resource-to-entity-get-1/test-component-to-entity-get')}`,
  );
  assert.equal(basic.status, 200);
  contains(basic.body, {
    _id: 'test-resource-to-entity-get-1/test-component-to-entity-get',
    name: 'test-resource-to-entity-get-1',
    type: 'resource',
  });
  assert.equal((await call('root', 'GET', '/api/v4/entitybasics?_id=not-exist')).status, 404);
  assert.equal((await call('nobody', 'GET', '/api/v4/entities')).status, 401);
});

test('GET /api/v4/app-info (L/api/appinfo) and /api/v4/healthcheck/live (develop lib/api/healthcheck LiveResponse)', async () => {
  const info = await call('root', 'GET', '/api/v4/app-info');
  assert.equal(info.status, 200);
  assert.match(info.body.version, /^\d+\.\d+\.\d+/);
  contains(info.body, { login: { casconfig: { enable: false }, ldapconfig: { enable: false }, saml2config: { enable: false } } });
  assert.equal((await call('nobody', 'GET', '/api/v4/app-info')).status, 401, 'protected, as in router.go');
  assert.deepEqual((await call('root', 'GET', '/api/v4/healthcheck/live')).body, { ok: true });
});
