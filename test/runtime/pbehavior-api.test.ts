import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type ApiStack, type Json, startApiStack } from '../helpers/api-stack.js';
import { startEngine, stopEngine, whenConsuming } from '../helpers/broker.js';
import { waitFor } from '../helpers/index.js';

/*
 * Maintenance windows through the API, on the running chain cleaner -> che
 * -> pbehavior -> axe. Requests, codes and bodies after Canopsis v4
 * (capensis/canopsis release-22.10, lib/api/pbehavior, pbehaviortype,
 * pbehaviorreason: models.go, api.go; default types and reason from
 * database/fixtures/pbehavior.yml).
 */

const KEY = 'test-admin-key-pbehavior-api-01';
let stack: ApiStack;

const CHAIN = `
[engine:cleaner]
event_processing=canopsis.cleaner.process.event_processing
next=che
exchange=canopsis.events

[engine:che]
event_processing=canopsis.che.process.event_processing
next=pbehavior

[engine:pbehavior]
event_processing=canopsis.pbehavior.process.event_processing
beat_processing=canopsis.pbehavior.process.beat_processing
beat_interval=0.3
next=axe

[engine:axe]
event_processing=canopsis.axe.process.event_processing
beat_processing=canopsis.axe.process.beat_processing
beat_interval=0.3
`;

before(async () => {
  stack = await startApiStack({
    tag: 'pbhapi',
    port: 5797,
    authkey: KEY,
    runtime: '[dispatchers]\nevent_dispatchers =\n\n[alarms]\nresolve_delay = 100000\n',
    chain: { conf: CHAIN, engines: ['cleaner', 'che', 'pbehavior', 'axe'] },
  });
});

after(() => stack?.stop());

/** Restarts the pbehavior engine with its clock moved by `offset` seconds (tests only: CPS_CLOCK_OFFSET). */
async function movePbehaviorClock(offset: number): Promise<void> {
  const i = 2;
  await stopEngine(stack.engines[i]!);
  process.env.CPS_CLOCK_OFFSET = String(offset);
  stack.engines[i] = startEngine(stack.dir, 'pbehavior');
  delete process.env.CPS_CLOCK_OFFSET;
  await whenConsuming(stack.engines[i]!);
}

const call = (method: string, url: string, body?: unknown) => stack.call(method, url, body);

const alarmOf = async (resource: string) =>
  (await call('GET', `/api/v4/alarms?opened=true&search=${resource}&with_steps=true`)).body.data?.[0] as Json;

test('the default types and reason are there; a type of an existing priority or in use is refused', async () => {
  const types = await call('GET', '/api/v4/pbehavior-types?limit=100');
  assert.equal(types.status, 200);
  assert.deepEqual(types.body.data.map((t: Json) => [t.name, t.type]).sort(), [
    ['Default active', 'active'],
    ['Default inactive', 'inactive'],
    ['Default maintenance', 'maintenance'],
    ['Default pause', 'pause'],
  ]);
  assert.deepEqual(
    (await call('GET', '/api/v4/pbehavior-reasons')).body.data.map((r: Json) => r.name),
    ['Default'],
  );
  const custom = await call('POST', '/api/v4/pbehavior-types', {
    name: 'Urgent works',
    description: 'x',
    type: 'maintenance',
    priority: 10,
    icon_name: 'build',
  });
  assert.equal(custom.status, 201);
  assert.equal(custom.body.priority, 10);
  const clash = await call('POST', '/api/v4/pbehavior-types', {
    name: 'Other',
    description: 'x',
    type: 'pause',
    priority: 10,
    icon_name: '',
  });
  assert.deepEqual(clash.body, { errors: { priority: 'Priority already exists.' } });
  const bad = await call('POST', '/api/v4/pbehavior-types', { name: 'x', description: 'x', type: 'holiday', priority: 11 });
  assert.deepEqual(bad.body, { errors: { type: 'Type must be one of [active inactive maintenance pause].' } });
  const now = Math.floor(Date.now() / 1000);
  const user = await call('POST', '/api/v4/pbehaviors', {
    name: 'uses it',
    enabled: false,
    tstart: now,
    type: custom.body._id,
    reason: 'default-reason',
    color: '#000000',
    entity_pattern: [[{ field: 'name', cond: { type: 'eq', value: 'nothing' } }]],
  });
  assert.equal(user.status, 201, JSON.stringify(user.body));
  const inUse = await call('DELETE', `/api/v4/pbehavior-types/${custom.body._id}`);
  assert.equal(inUse.status, 400);
  assert.match(inUse.body.error, /is used by a pbehavior/);
  assert.equal((await call('DELETE', `/api/v4/pbehaviors/${user.body._id}`)).status, 204);
  assert.equal((await call('DELETE', `/api/v4/pbehavior-types/${custom.body._id}`)).status, 204);
  assert.equal((await call('GET', `/api/v4/pbehavior-types/${custom.body._id}`)).status, 404);
});

test('a weekly maintenance window created through the API: the alarm is born in it, leaves it when disabled, when the window closes, enters it again a week later; delete, then 404', async () => {
  const now = Math.floor(Date.now() / 1000);
  const invalid = await call('POST', '/api/v4/pbehaviors', {
    enabled: true,
    tstart: now,
    tstop: now - 1,
    rrule: 'FREQ=SOMETIMES',
    type: 'nope',
    reason: 'default-reason',
    color: 'blue',
    entity_pattern: [[{ field: 'colour', cond: { type: 'eq', value: 'x' } }]],
  });
  assert.equal(invalid.status, 400);
  assert.deepEqual(Object.keys(invalid.body.errors).sort(), ['color', 'entity_pattern', 'name', 'rrule', 'tstop', 'type']);
  assert.equal(invalid.body.errors.name, 'Name is missing.');
  assert.equal(invalid.body.errors.type, "Type doesn't exist.");

  const body = {
    name: 'web1 works',
    enabled: true,
    tstart: now - 600,
    tstop: now + 3600,
    rrule: 'FREQ=WEEKLY',
    type: 'default-maintenance',
    reason: 'default-reason',
    color: '#2FAB63',
    exdates: [],
    exceptions: [],
    entity_pattern: [[{ field: 'component', cond: { type: 'eq', value: 'web1' } }]],
  };
  const created = await call('POST', '/api/v4/pbehaviors', body);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body._id as string;
  assert.match(id, /^[0-9a-f-]{36}$/);
  assert.equal(created.body.type.name, 'Default maintenance', 'the type expanded, as Response');
  assert.equal(created.body.reason.name, 'Default');
  assert.deepEqual(created.body.author, { _id: 'authkey', name: 'authkey' });

  await call('POST', '/api/v4/event', {
    connector: 'nagios',
    connector_name: 'n1',
    event_type: 'check',
    component: 'web1',
    resource: 'cpu',
    state: 2,
    output: 'hot',
  });
  const a = await waitFor('the alarm in maintenance', async () => {
    const x = await alarmOf('cpu');
    return x?.v.pbehavior_info ? x : undefined;
  });
  assert.equal(a.v.pbehavior_info.id, id);
  assert.equal(a.v.pbehavior_info.canonical_type, 'maintenance');
  assert.deepEqual(
    a.v.steps.map((s: Json) => s._t),
    ['stateinc', 'statusinc', 'pbhenter'],
  );
  // The open-alarms view without what is in maintenance: Canopsis' pbehavior_pattern (mongo_query.go
  // handlePbehaviorPattern, pattern/pbehavior_info.go: an alarm in no pbehavior is "active"), the console's default.
  const view = async (pattern: unknown) =>
    (await call('GET', `/api/v4/alarms?opened=true&search=web1&pbehavior_pattern=${encodeURIComponent(JSON.stringify(pattern))}`)).body;
  const activeOnly = [[{ field: 'pbehavior_info.canonical_type', cond: { type: 'eq', value: 'active' } }]];
  await call('POST', '/api/v4/event', {
    connector: 'nagios',
    connector_name: 'n1',
    event_type: 'check',
    component: 'web1-outside',
    resource: 'disk',
    state: 1,
    output: 'full',
  });
  await waitFor('the alarm outside the window', async () => (await alarmOf('disk'))?.v.component === 'web1-outside');
  const visible = await view(activeOnly);
  assert.deepEqual(
    visible.data.map((x: Json) => x.v.resource),
    ['disk'],
    'the alarm in maintenance is left out of the active view',
  );
  assert.equal(visible.meta.total_count, 1);
  const inMaintenance = await view([[{ field: 'pbehavior_info.canonical_type', cond: { type: 'is_one_of', value: ['maintenance'] } }]]);
  assert.deepEqual(
    inMaintenance.data.map((x: Json) => x.v.resource),
    ['cpu'],
  );
  // A pattern the store cannot say (neq) is matched after the query: the same answer.
  const notMaintenance = await view([[{ field: 'pbehavior_info.canonical_type', cond: { type: 'neq', value: 'maintenance' } }]]);
  assert.deepEqual(
    notMaintenance.data.map((x: Json) => x.v.resource),
    ['disk'],
  );
  assert.equal(notMaintenance.meta.total_count, 1);
  const badPattern = await call('GET', `/api/v4/alarms?pbehavior_pattern=${encodeURIComponent('[[{"field":"pbehavior_info.nope"}]]')}`);
  assert.deepEqual(badPattern, { status: 400, body: { errors: { pbehavior_pattern: 'PbehaviorPattern is invalid.' } } });

  const off = await call('PUT', `/api/v4/pbehaviors/${id}`, { ...body, enabled: false });
  assert.equal(off.status, 200);
  assert.equal(off.body.enabled, false);
  // The API asked the engine to recompute: the alarm leaves without waiting for the minute's job.
  await waitFor('the alarm out of maintenance', async () => (await alarmOf('cpu'))?.v.pbehavior_info === undefined, 20_000);
  assert.equal((await alarmOf('cpu')).v.steps.at(-1)._t, 'pbhleave');

  // Enabled again, and time moved (the engine's clock, CPS_CLOCK_OFFSET): two hours later the weekly window is
  // closed, a week later it is open again.
  await call('PUT', `/api/v4/pbehaviors/${id}`, body);
  await waitFor('in maintenance again', async () => (await alarmOf('cpu'))?.v.pbehavior_info?.id === id, 20_000);
  await movePbehaviorClock(2 * 3600);
  await waitFor('out when the window closes', async () => (await alarmOf('cpu'))?.v.pbehavior_info === undefined, 20_000);
  await movePbehaviorClock(7 * 24 * 3600);
  await waitFor('in again a week later', async () => (await alarmOf('cpu'))?.v.pbehavior_info?.id === id, 20_000);
  assert.deepEqual(
    (await alarmOf('cpu')).v.steps.map((s: Json) => s._t),
    ['stateinc', 'statusinc', 'pbhenter', 'pbhleave', 'pbhenter', 'pbhleave', 'pbhenter'],
  );

  assert.equal((await call('DELETE', `/api/v4/pbehaviors/${id}`)).status, 204);
  assert.deepEqual(await call('GET', `/api/v4/pbehaviors/${id}`), { status: 404, body: { error: 'Not found' } });
  assert.equal((await call('PUT', `/api/v4/pbehaviors/${id}`, body)).status, 404);
});

test('bulk pbehaviors (lib/api/bulk/handler.go): 207, one answer per item, created, refused or not found', async () => {
  const now = Math.floor(Date.now() / 1000);
  const valid = {
    name: 'bulk one',
    enabled: false,
    tstart: now,
    type: 'default-pause',
    reason: 'default-reason',
    color: '#FFFFFF',
    entity_pattern: [[{ field: 'name', cond: { type: 'eq', value: 'nothing' } }]],
  };
  const created = await call('POST', '/api/v4/bulk/pbehaviors', [valid, { ...valid, name: '' }, 'x']);
  assert.equal(created.status, 207);
  assert.equal(created.body[0].status, 200);
  assert.match(created.body[0].id, /^[0-9a-f-]{36}$/);
  assert.deepEqual(created.body[1], { status: 400, item: { ...valid, name: '' }, errors: { name: 'Name is missing.' } });
  assert.deepEqual(created.body[2], { status: 400, item: 'x', error: 'request has invalid structure' });
  const id = created.body[0].id as string;
  const updated = await call('PUT', '/api/v4/bulk/pbehaviors', [{ ...valid, _id: id, name: 'bulk renamed' }]);
  assert.deepEqual(updated.body, [{ id, status: 200, item: { ...valid, _id: id, name: 'bulk renamed' } }]);
  assert.equal((await call('GET', `/api/v4/pbehaviors/${id}`)).body.name, 'bulk renamed');
  const deleted = await call('DELETE', '/api/v4/bulk/pbehaviors', [{ _id: id }, { _id: 'nope' }, {}]);
  assert.deepEqual(deleted.body, [
    { id, status: 200, item: { _id: id } },
    { status: 404, item: { _id: 'nope' }, error: 'Not found' },
    { status: 400, item: {}, errors: { _id: 'ID is missing.' } },
  ]);
  assert.equal((await call('GET', `/api/v4/pbehaviors/${id}`)).status, 404);
});

test('PATCH changes only the fields given (PatchRequest); comments (lib/api/pbehaviorcomment) are kept by updates', async () => {
  const now = Math.floor(Date.now() / 1000);
  const body = {
    name: 'patched',
    enabled: false,
    tstart: now,
    tstop: now + 60,
    type: 'default-pause',
    reason: 'default-reason',
    color: '#FFFFFF',
    entity_pattern: [[{ field: 'name', cond: { type: 'eq', value: 'nothing' } }]],
  };
  const id = (await call('POST', '/api/v4/pbehaviors', body)).body._id as string;
  const patched = await call('PATCH', `/api/v4/pbehaviors/${id}`, { name: 'renamed', tstop: null });
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
  assert.equal(patched.body.name, 'renamed');
  assert.equal(patched.body.tstop, null, 'null clears the stop: no end');
  assert.equal(patched.body.type._id, 'default-pause', 'the rest as it was');
  assert.deepEqual(patched.body.entity_pattern, body.entity_pattern);
  assert.deepEqual((await call('PATCH', `/api/v4/pbehaviors/${id}`, { type: 'nope' })).body, { errors: { type: "Type doesn't exist." } });
  assert.equal((await call('PATCH', '/api/v4/pbehaviors/nope', { name: 'x' })).status, 404);

  const comment = await call('POST', '/api/v4/pbehavior-comments', { pbehavior: id, message: 'waiting for the vendor' });
  assert.equal(comment.status, 201);
  assert.equal(comment.body.message, 'waiting for the vendor');
  assert.deepEqual(comment.body.author, { _id: 'authkey', name: 'authkey' });
  assert.deepEqual((await call('POST', '/api/v4/pbehavior-comments', { pbehavior: id })).body, {
    errors: { message: 'Message is missing.' },
  });
  assert.equal((await call('POST', '/api/v4/pbehavior-comments', { pbehavior: 'nope', message: 'x' })).status, 404);
  await call('PUT', `/api/v4/pbehaviors/${id}`, { ...body, name: 'put' });
  assert.deepEqual(
    (await call('GET', `/api/v4/pbehaviors/${id}`)).body.comments.map((c: Json) => c.message),
    ['waiting for the vendor'],
    'a PUT keeps the comments',
  );
  assert.equal((await call('DELETE', `/api/v4/pbehavior-comments/${comment.body._id}`)).status, 204);
  assert.equal((await call('DELETE', `/api/v4/pbehavior-comments/${comment.body._id}`)).status, 404);
  assert.deepEqual((await call('GET', `/api/v4/pbehaviors/${id}`)).body.comments, []);
  assert.equal((await call('DELETE', `/api/v4/pbehaviors/${id}`)).status, 204);
});
