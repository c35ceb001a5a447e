import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { StoredAlarm } from '../../runtime/alarm/model.js';
import type { Entity } from '../../runtime/engines/che.js';
import { SqliteStore } from '../../runtime/store/sqlite.js';
import type { Stored } from '../../runtime/store/types.js';
import { hashPassword } from '../../runtime/web/auth.js';
import type { ApiClient } from '../../runtime/web/client.js';
import { alarmView, alarmViewJson } from '../../runtime/web/views.js';
import { storedAlarm } from '../helpers/alarms.js';
import { type ApiStack, startApiStack } from '../helpers/api-stack.js';
import { waitFor } from '../helpers/index.js';

/*
 * Check events through the real broker and engines (cleaner -> che -> axe)
 * become alarms read and acted on through the REST API, on the embedded store,
 * over HTTPS with a self-signed certificate at the default etc/ssl/ paths.
 */

const KEY = 'test-admin-key-0123456789';
const RO_KEY = 'test-readonly-key-0123456789';
let stack: ApiStack;
let client: ApiClient;

const FAILING = `
export const dispatcher = {
  name: 'failing',
  create: () => ({ name: 'failing', dump: () => { throw new Error('this dispatcher always fails'); } }),
};
`;

before(async () => {
  const { keyHash } = await import('../../runtime/web/auth.js');
  stack = await startApiStack({
    tag: 'alarms',
    port: 5791,
    authkey: KEY,
    plugins: { 'failing-dispatcher.mjs': FAILING },
    runtime:
      '[dispatchers]\nevent_dispatchers = database,failing\n\n[alarms]\nresolve_delay = 1\ncancel_delay = 3600\nflapping_count = 4\nflapping_window = 600\nstealthy_window = 0\nmax_steps = 50\nsnooze_default = 300\n',
    users: `[user:viewer]\nrole = readonly\npassword_hash = ${await hashPassword('viewer-pass')}\n\n[key:dashboard]\nrole = readonly\nkey_sha256 = ${keyHash(RO_KEY)}\n`,
  });
  client = stack.client;
});

after(() => stack?.stop());

const api = async (method: string, url: string, body?: unknown, headers: Record<string, string> = { 'x-canopsis-authkey': KEY }) => {
  const r = await client.fetch(`${client.origin}${url}`, {
    method,
    headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  // biome-ignore lint/suspicious/noExplicitAny: the tests read whatever JSON the API answers
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: r.status, body: json };
};

const check = (component: string, state: number, extra: Record<string, unknown> = {}) => ({
  connector: 'nagios',
  connector_name: 'nagios1',
  event_type: 'check',
  source_type: 'resource',
  component,
  resource: 'cpu',
  state,
  output: `state ${state}`,
  ...extra,
});

test('a check at state 2 opens an alarm, state 0 resolves it after the resolve delay, read back through the API', async () => {
  const sent = await api('POST', '/api/v4/event', check('web1', 2));
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  assert.equal(sent.body.sent_events.length, 1);
  const opened = await waitFor('the alarm open', async () => {
    const r = await api('GET', '/api/v4/alarms?opened=true&entity=cpu/web1');
    return r.body.data?.length === 1 ? r.body : undefined;
  });
  assert.deepEqual(opened.meta, { page: 1, page_count: 1, per_page: 10, total_count: 1 });
  const alarm = opened.data[0];
  assert.match(alarm._id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a UUID, as Canopsis gives');
  assert.equal(alarm.v.state.val, 2);
  assert.equal(alarm.v.status.val, 1);
  assert.equal(alarm.v.steps, undefined, 'lists leave steps out');
  assert.equal(alarm.entity._id, 'cpu/web1');
  const one = await api('GET', `/api/v4/alarms/${alarm._id}`);
  assert.deepEqual(
    one.body.v.steps.map((s: { _t: string }) => s._t),
    ['stateinc', 'statusinc'],
  );

  await api('POST', '/api/v4/event', check('web1', 0));
  const resolved = await waitFor(
    'the alarm resolved',
    async () => {
      const r = await api('GET', `/api/v4/alarms/${alarm._id}`);
      return r.body.v.resolved ? r.body : undefined;
    },
    30_000,
  );
  assert.deepEqual(
    resolved.v.steps.map((s: { _t: string }) => s._t),
    ['stateinc', 'statusinc', 'statedec', 'statusdec'],
  );
  assert.ok(resolved.v.duration >= 1, 'a resolved alarm says how long it lasted');
  const closed = await api('GET', '/api/v4/alarms?opened=false');
  assert.ok(closed.body.data.some((a: { _id: string }) => a._id === alarm._id));
  const entities = await api('GET', '/api/v4/entities?type=resource');
  assert.ok(entities.body.data.some((e: { _id: string; component: string }) => e._id === 'cpu/web1' && e.component === 'web1'));
});

test('ack through the API, the same event twice adds one step, flapping is detected', async () => {
  const ts = Math.floor(Date.now() / 1000);
  const first = check('db1', 3, { timestamp: ts });
  await api('POST', '/api/v4/event', [first, first]);
  const alarm = await waitFor('db1 alarm', async () => (await api('GET', '/api/v4/alarms?opened=true&entity=cpu/db1')).body.data?.[0]);
  const ack = await api('PUT', `/api/v4/alarms/${alarm._id}/ack`, { comment: 'on it' });
  assert.equal(ack.status, 204, JSON.stringify(ack.body));
  const acked = await waitFor('acked', async () => {
    const a = (await api('GET', `/api/v4/alarms/${alarm._id}`)).body;
    return a.v.ack ? a : undefined;
  });
  assert.equal(acked.v.ack.a, 'authkey');
  assert.equal(acked.v.ack.m, 'on it');
  assert.equal(acked.v.ack.initiator, 'user');
  assert.equal(acked.v.events_count, 1, 'the duplicate check added nothing');

  for (const [i, state] of [1, 3, 1, 3].entries()) await api('POST', '/api/v4/event', check('db1', state, { timestamp: ts + 1 + i }));
  const after5 = await waitFor('the 4 state changes applied', async () => {
    const a = (await api('GET', `/api/v4/alarms/${alarm._id}`)).body;
    return a.v.events_count === 5 ? a : undefined;
  });
  assert.equal(after5.v.status.val, 3, '5 state changes within the window (4 needed): flapping');
});

test('authentication: 401 without credentials, 403 for read-only on writes, basic users, 413 for a huge body, 400 for a bad query', async () => {
  assert.equal((await api('GET', '/api/v4/alarms', undefined, {})).status, 401);
  assert.equal((await api('GET', '/api/v4/alarms', undefined, { 'x-canopsis-authkey': 'wrong' })).status, 401);
  assert.equal((await api('GET', `/api/v4/alarms?authkey=${KEY}`, undefined, {})).status, 200);
  assert.equal((await api('GET', '/api/v4/alarms', undefined, { 'x-canopsis-authkey': RO_KEY })).status, 200);
  assert.equal((await api('POST', '/api/v4/event', check('x', 1), { 'x-canopsis-authkey': RO_KEY })).status, 403);
  const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
  assert.equal((await api('GET', '/api/v4/entities', undefined, basic('viewer', 'viewer-pass'))).status, 200);
  assert.equal((await api('GET', '/api/v4/entities', undefined, basic('viewer', 'nope'))).status, 401);
  assert.equal((await api('POST', '/api/v4/event', check('x', 1), basic('viewer', 'viewer-pass'))).status, 403);
  const huge = await api('POST', '/api/v4/event', JSON.stringify(check('x', 1, { output: 'z'.repeat(2 * 1024 * 1024) })));
  assert.equal(huge.status, 413);
  assert.doesNotMatch(JSON.stringify(huge.body), /at .*\.js/, 'no stack trace');
  const bad = await api('GET', '/api/v4/alarms?limit=0');
  assert.equal(bad.status, 400);
  assert.deepEqual(bad.body, { errors: { limit: 'Limit should be greater than 0.' } });
  // Canopsis answers 200 and hands the refused event back (lib/api/event/api.go); we add why.
  const invalid = await api('POST', '/api/v4/event', { connector: 'x' });
  assert.equal(invalid.status, 200);
  assert.deepEqual(invalid.body.failed_events, [{ connector: 'x' }]);
  assert.match(invalid.body.failed_reasons[0], /missing or empty fields/);
});

test('/metrics is Prometheus text with per-engine queue figures', async () => {
  const r = await client.fetch(`${client.origin}/metrics`, { headers: { 'x-canopsis-authkey': KEY } });
  assert.equal(r.status, 200);
  const text = await r.text();
  for (const line of text.trim().split('\n')) {
    assert.match(line, /^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+]+)$/, line);
  }
  assert.match(text, /canopsis_engine_consumers\{engine="axe"\} 1/);
  assert.match(text, /canopsis_engine_ready\{engine="axe"\} 1/);
  assert.match(text, /canopsis_alarms_open\{state="3"\} 1/);
});

test('alarm changes reach the database dispatcher; a failing dispatcher is logged and counted, the engine goes on', async () => {
  const store = new SqliteStore(path.join(stack.dir, 'var', 'lib', 'canopsis', 'canopsis.db'));
  try {
    const log = await store.collection<{ action: string; engine: string }>('event_log').find({ engine: 'axe' });
    const actions = new Set(log.map((l) => l.action));
    for (const a of ['alarm_opened', 'alarm_changed', 'alarm_resolved', 'alarm_acked'])
      assert.ok(actions.has(a), `${a} in the event log (${[...actions].join(', ')})`);
  } finally {
    await store.close();
  }
  const axe = stack.engines[2]!;
  assert.match(axe.logs(), /"dispatcher":"failing".*"msg":"event dispatcher failed"/);
  assert.equal(axe.nodeChildProcess.exitCode, null);
});

test('meta.total_count and the pages follow the alarms: a new alarm, then a resolved one, show on the next request', async () => {
  // Watched through a store connection of its own, so that nothing but the change itself tells the API.
  const store = new SqliteStore(path.join(stack.dir, 'var', 'lib', 'canopsis', 'canopsis.db'));
  const alarms = store.collection<StoredAlarm>('alarms');
  const page = (n: number) => api('GET', `/api/v4/alarms?opened=true&search=totals&limit=1&page=${n}&sort_by=t&sort=desc`);
  try {
    assert.deepEqual((await page(1)).body.meta, { page: 1, page_count: 1, per_page: 1, total_count: 0 });
    await api('POST', '/api/v4/event', [check('totals1', 2), check('totals2', 2)]);
    await waitFor('both alarms stored', async () => (await alarms.count({ 'v.component': { $in: ['totals1', 'totals2'] } })) === 2);
    const first = await page(1);
    assert.deepEqual(first.body.meta, { page: 1, page_count: 2, per_page: 1, total_count: 2 });
    const second = await page(2);
    assert.equal(second.body.data.length, 1);
    assert.notEqual(second.body.data[0]._id, first.body.data[0]._id);

    // The alarm of page 1 resolves: what was page 2 is page 1, and there is no page 2.
    const gone = first.body.data[0].v.component;
    await api('POST', '/api/v4/event', check(gone, 0));
    await waitFor(
      `the ${gone} alarm resolved`,
      async () => (await alarms.count({ 'v.component': gone, 'v.resolved': { $ne: null } })) === 1,
      30_000,
    );
    const after = await page(1);
    assert.deepEqual(after.body.meta, { page: 1, page_count: 1, per_page: 1, total_count: 1 });
    assert.equal(after.body.data[0]._id, second.body.data[0]._id);
    assert.deepEqual((await page(2)).body, { error: 'page is out of range' });
  } finally {
    await store.close();
  }
});

const deepFreeze = <V>(v: V): V => {
  if (v !== null && typeof v === 'object') for (const x of Object.values(Object.freeze(v))) deepFreeze(x);
  return v;
};

test("a list's pre-serialised alarm text is JSON.stringify of its view, whatever the alarm holds", () => {
  const opened = 1_700_000_000;
  const base = storedAlarm({ id: 'a1', entity: 'cpu/web1', opened, state: 2 });
  const entity: Entity = {
    type: 'resource',
    name: 'cpu',
    created: opened,
    last_event_date: opened,
    enabled: true,
    connector: 'nagios/n1',
    component: 'web1',
    depends: ['web1'],
    infos: { site: { name: 'site', description: '', value: 'paris "nord"\u0000' } },
  };
  const alarms: Array<Stored<StoredAlarm>> = [
    { ...base, key: 'open' },
    { ...base, key: 'snoozed', v: { ...base.v, inactive_start: opened + 10, inactive_duration: 5 } },
    { ...base, key: 'resolved', v: { ...base.v, resolved: opened + 60, duration: 60, active_duration: 50 } },
    // Durations stored before the other fields of v (an older writer): they keep their place in the text.
    { ...base, key: 'odd', v: { active_duration: 1, duration: 2, ...base.v, output: 'a "quoted"\n\u0000 output' } },
    { ...base, key: 'marker-like', v: { ...base.v, output: '"\\u0000x:duration"' } },
  ];
  // Frozen as the store's shared reads are: those are the documents whose text is kept.
  for (const a of alarms.map((x) => structuredClone(x)).map(deepFreeze))
    for (const e of [entity, undefined])
      for (const steps of [false, true])
        for (const now of [opened + 100, opened + 5000]) {
          const o = { now, steps };
          assert.equal(alarmViewJson(a, e, o), JSON.stringify(alarmView(a, e, o)), `${a.key} ${e ? 'with' : 'without'} entity`);
        }
});
