import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import amqp from 'amqplib';
import type { Scenario, ScenarioAction } from '../../runtime/scenario/model.js';
import { plan } from '../../runtime/scenario/plan.js';
import { callWebhook, WebhookFailed } from '../../runtime/scenario/webhook.js';
import { pbehaviorInfo, storedAlarm } from '../helpers/alarms.js';
import { type ApiStack, startApiStack } from '../helpers/api-stack.js';
import { waitFor } from '../helpers/index.js';

/*
 * Scenarios with webhooks, as Canopsis v4's engine-action runs them
 * (capensis/canopsis release-22.10: lib/api/scenario/models.go,
 * lib/canopsis/action/action.go, lib/canopsis/types/webhook.go), against a
 * real HTTP receiver this test starts on 127.0.0.1, and on the running
 * chain cleaner -> che -> axe -> action.
 */

interface Received {
  path: string;
  body: string;
  headers: IncomingMessage['headers'];
}
const received: Received[] = [];
/** Per path, the statuses to answer in turn (the last one repeats). */
const answers = new Map<string, number[]>();
let receiver: Server;
let base: string;

const KEY = 'test-admin-key-scenarios-01234';
let stack: ApiStack;

const CHAIN = `
[engine:cleaner]
event_processing=canopsis.cleaner.process.event_processing
next=che
exchange=canopsis.events

[engine:che]
event_processing=canopsis.che.process.event_processing
next=axe

[engine:axe]
event_processing=canopsis.axe.process.event_processing
beat_processing=canopsis.axe.process.beat_processing
beat_interval=0.3
next=action

[engine:action]
event_processing=canopsis.action.process.event_processing
beat_processing=canopsis.action.process.beat_processing
beat_interval=60
`;
// action's beat as in the stock settings (60 s): a delay must be kept by the process that stored the run, not by the beat.

before(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      received.push({ path: req.url ?? '', body, headers: req.headers });
      const list = answers.get(req.url ?? '') ?? [200];
      const status = list.length > 1 ? list.shift()! : list[0]!;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(status === 200 ? JSON.stringify({ result: { number: `INC-${received.length}` } }) : '{"error":"busy"}');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  stack = await startApiStack({
    tag: 'scen',
    port: 5799,
    authkey: KEY,
    runtime: '[dispatchers]\nevent_dispatchers =\n\n[alarms]\nresolve_delay = 1\nstealthy_window = 0\n',
    chain: { conf: CHAIN, engines: ['cleaner', 'che', 'axe', 'action'] },
  });
});

after(async () => {
  await stack?.stop();
  await new Promise((r) => receiver?.close(r));
});

const call = (method: string, url: string, body?: unknown) => stack.call(method, url, body);

const action = (over: Partial<ScenarioAction>): ScenarioAction => ({
  type: 'ack',
  parameters: {},
  comment: '',
  entity_pattern: [],
  drop_scenario_if_not_matched: false,
  emit_trigger: false,
  ...over,
});

test('plan: scenarios by priority on their triggers; a pattern that does not match skips the action or drops the scenario', () => {
  const s = (key: string, over: Partial<Scenario>): Scenario & { key: string } => ({
    key,
    name: key,
    author: 'root',
    enabled: true,
    priority: 1,
    triggers: ['create'],
    disable_during_periods: [],
    actions: [action({})],
    created: 0,
    updated: 0,
    ...over,
  });
  const web1 = { _id: 'disk/web1', name: 'disk', type: 'resource', component: 'web1' };
  const inMaintenance = storedAlarm({ id: 'a1', entity: 'disk/web1', opened: 900, state: 2 });
  inMaintenance.v.pbehavior_info = pbehaviorInfo('maintenance');
  const onlyDb = [[{ field: 'component', cond: { type: 'eq', value: 'db1' } }]];
  const planned = plan(
    [
      s('second', { priority: 2, actions: [action({ type: 'cancel' })] }),
      s('first', { actions: [action({ entity_pattern: onlyDb }), action({ type: 'snooze' })] }),
      s('dropped', {
        priority: 3,
        actions: [action({ entity_pattern: onlyDb, drop_scenario_if_not_matched: true }), action({ type: 'cancel' })],
      }),
      s('on-ack', { triggers: ['ack'] }),
      s('off', { enabled: false }),
      s('not-in-maintenance', { disable_during_periods: ['maintenance'] }),
      // alarm.go fields: critical alarms only (this one is major), then any alarm not acked.
      s('by-alarm', {
        priority: 4,
        actions: [
          action({ type: 'changestate', alarm_pattern: [[{ field: 'v.state.val', cond: { type: 'eq', value: 3 } }]] }),
          action({ type: 'assocticket', alarm_pattern: [[{ field: 'v.ack', cond: { type: 'exist', value: false } }]] }),
        ],
      }),
    ],
    ['create', 'stateinc'],
    web1,
    inMaintenance,
    1000,
  );
  assert.deepEqual(
    planned.map((p) => `${p.scenario}:${p.index}:${p.action.type}`),
    ['first:1:snooze', 'second:0:cancel', 'by-alarm:1:assocticket'],
  );
});

test('a webhook: the body rendered from its template, retried on 503, the ticket read from the answer; a 4xx is not retried', async () => {
  answers.set('/unit', [503, 200]);
  const slept: number[] = [];
  const r = await callWebhook({
    request: {
      url: `${base}/unit`,
      method: 'post',
      headers: { 'x-origin': '{{entity._id}}' },
      payload: '{"r": "{{alarm.v.resource}}"}',
      skip_verify: false,
    },
    declareTicket: { ticket_id: 'result.number', empty_response: false },
    retryCount: 2,
    retryDelay: 3,
    data: { alarm: { v: { resource: 'disk' } }, entity: { _id: 'disk/web1' }, event: {} },
    sleep: async (ms) => {
      slept.push(ms);
    },
  });
  assert.equal(r.status, 200);
  assert.equal(r.attempts, 2);
  assert.deepEqual(slept, [3000], 'retry_delay before the first retry');
  assert.match(r.ticket ?? '', /^INC-\d+$/);
  const got = received.filter((x) => x.path === '/unit');
  assert.equal(got.length, 2);
  assert.equal(got[1]!.body, '{"r": "disk"}');
  assert.equal(got[1]!.headers['x-origin'], 'disk/web1');
  // A receiver that stays down: the wait doubles after each failure, up to a minute.
  answers.set('/down-unit', [503]);
  const waits: number[] = [];
  await assert.rejects(
    callWebhook({
      request: { url: `${base}/down-unit`, method: 'POST', skip_verify: false },
      retryCount: 5,
      retryDelay: 10,
      data: { alarm: {}, entity: {}, event: {} },
      sleep: async (ms) => {
        waits.push(ms / 1000);
      },
    }),
    (e: Error) => e instanceof WebhookFailed && /answered 503; 6 attempt\(s\), waiting 10, 20, 40, 60, 60 s between them/.test(e.message),
  );
  assert.deepEqual(waits, [10, 20, 40, 60, 60]);
  answers.set('/bad', [404]);
  await assert.rejects(
    callWebhook({
      request: { url: `${base}/bad`, method: 'POST', skip_verify: false },
      retryCount: 3,
      retryDelay: 0,
      data: { alarm: {}, entity: {}, event: {} },
    }),
    (e: Error) => e instanceof WebhookFailed && /answered 404 \(not retried\)/.test(e.message),
  );
  assert.equal(received.filter((x) => x.path === '/bad').length, 1);
});

test('a scenario made with the API posts to a real receiver, retries its 503, takes the ticket and acks the alarm', async () => {
  answers.set('/tickets', [503, 200]);
  const bad = await call('POST', '/api/v4/scenarios', {
    name: 'x',
    enabled: true,
    triggers: ['create'],
    delay: { value: 0, unit: 'm' },
    actions: [],
  });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.errors['delay.value'], 'Value should be greater than 0.');
  assert.equal(bad.body.errors.actions, 'Actions is missing.');
  const created = await call('POST', '/api/v4/scenarios', {
    name: 'open a ticket',
    enabled: true,
    priority: 1,
    triggers: ['create'],
    actions: [
      {
        type: 'webhook',
        parameters: {
          request: {
            url: `${base}/tickets`,
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            payload: '{"summary": "{{alarm.v.resource}} on {{alarm.v.component}} is {{alarm.v.state.val}}", "entity": "{{entity._id}}"}',
          },
          retry_count: 2,
          retry_delay: { value: 1, unit: 's' },
          declare_ticket: { ticket_id: 'result.number' },
        },
        entity_pattern: [[{ field: 'component', cond: { type: 'eq', value: 'shop' } }]],
        drop_scenario_if_not_matched: true,
        emit_trigger: false,
      },
      { type: 'ack', parameters: { output: 'ticket opened' }, drop_scenario_if_not_matched: false, emit_trigger: false },
    ],
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));

  await call('POST', '/api/v4/event', {
    connector: 'nagios',
    connector_name: 'n1',
    event_type: 'check',
    component: 'shop',
    resource: 'db',
    state: 2,
    output: 'slow',
  });
  await call('POST', '/api/v4/event', {
    connector: 'nagios',
    connector_name: 'n1',
    event_type: 'check',
    component: 'blog',
    resource: 'db',
    state: 2,
    output: 'slow',
  });
  const a = await waitFor(
    'the ticket and the ack on the alarm',
    async () => {
      const x = (await call('GET', '/api/v4/alarms?opened=true&search=shop')).body.data?.[0];
      return x?.v.ticket && x.v.ack ? x : undefined;
    },
    30_000,
    200,
  );
  assert.equal(a.v.ticket._t, 'declareticket');
  assert.match(a.v.ticket.val, /^INC-\d+$/);
  assert.equal(a.v.ack.a, 'authkey', "the scenario's author");
  assert.equal(a.v.ack.m, 'ticket opened');
  const posts = received.filter((x) => x.path === '/tickets');
  assert.equal(posts.length, 2, 'the 503, then the retry');
  assert.deepEqual(JSON.parse(posts[1]!.body), { summary: 'db on shop is 2', entity: 'db/shop' });
  // blog did not match the webhook's pattern: the scenario was dropped, no ack either.
  const blog = (await call('GET', '/api/v4/alarms?opened=true&search=blog')).body.data[0];
  assert.equal(blog.v.ack, undefined);
  assert.equal(blog.v.ticket, undefined);
  // The ack the scenario made did not run the scenario again (emit_trigger false), and no ack loop.
  assert.equal(posts.length, received.filter((x) => x.path === '/tickets').length);
});

test('a webhook still failing after its retries dead-letters the event with the reason', async () => {
  answers.set('/down', [503]);
  const created = await call('POST', '/api/v4/scenarios', {
    name: 'always down',
    enabled: true,
    priority: 2,
    triggers: ['create'],
    actions: [
      {
        type: 'webhook',
        parameters: { request: { url: `${base}/down`, method: 'POST' }, retry_count: 1, retry_delay: { value: 1, unit: 's' } },
        entity_pattern: [[{ field: 'component', cond: { type: 'eq', value: 'down-host' } }]],
        drop_scenario_if_not_matched: true,
        emit_trigger: false,
      },
    ],
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  await call('POST', '/api/v4/event', {
    connector: 'nagios',
    connector_name: 'n1',
    event_type: 'check',
    component: 'down-host',
    resource: 'db',
    state: 3,
    output: 'gone',
  });
  const conn = await amqp.connect(stack.vhostUrl);
  try {
    const ch = await conn.createChannel();
    const dead = await waitFor(
      'the dead letter',
      async () => {
        await ch.checkQueue('Engine_action.dead');
        const m = await ch.get('Engine_action.dead', { noAck: true });
        return m || undefined;
      },
      30_000,
      250,
    );
    assert.match(
      String(dead.properties.headers?.['x-canopsis-reason']),
      /webhook.*\/down answered 503; 2 attempt\(s\), waiting 1 s between them/,
    );
    assert.equal(JSON.parse(dead.content.toString()).component, 'down-host');
  } finally {
    await conn.close();
  }
  assert.equal(received.filter((x) => x.path === '/down').length, 2);
});

test("a scenario on resolve: time resolves the alarm on axe's beat, and the webhook hears of it", async () => {
  answers.set('/resolved', [200]);
  const created = await call('POST', '/api/v4/scenarios', {
    name: 'tell on resolve',
    enabled: true,
    priority: 3,
    triggers: ['resolve'],
    actions: [
      {
        type: 'webhook',
        parameters: {
          request: {
            url: `${base}/resolved`,
            method: 'POST',
            payload: '{"resolved": "{{alarm.v.resource}}/{{alarm.v.component}}", "after": {{alarm.v.duration}} }',
          },
        },
        entity_pattern: [[{ field: 'component', cond: { type: 'eq', value: 'fixed-host' } }]],
        drop_scenario_if_not_matched: true,
        emit_trigger: false,
      },
    ],
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const check = (state: number) => ({
    connector: 'nagios',
    connector_name: 'n1',
    event_type: 'check',
    component: 'fixed-host',
    resource: 'db',
    state,
    output: `state ${state}`,
  });
  await call('POST', '/api/v4/event', check(2));
  await waitFor('the alarm', async () => (await call('GET', '/api/v4/alarms?opened=true&search=fixed-host')).body.data?.length === 1);
  await call('POST', '/api/v4/event', check(0));
  const heard = await waitFor('the webhook of the resolution', async () => received.find((x) => x.path === '/resolved'), 30_000, 200);
  const body = JSON.parse(heard.body);
  assert.equal(body.resolved, 'db/fixed-host');
  assert.ok(body.after >= 1, 'the resolved alarm, with its duration');
});

test("the pbehavior action puts the alarm's entity in a pause from the trigger on, for its duration", async () => {
  const bad = await call('POST', '/api/v4/scenarios', {
    name: 'x',
    enabled: true,
    triggers: ['create'],
    actions: [
      {
        type: 'pbehavior',
        parameters: { name: 'p', reason: 'default-reason', type: 'default-pause' },
        drop_scenario_if_not_matched: false,
        emit_trigger: false,
      },
    ],
  });
  assert.deepEqual(bad.body.errors, { 'actions.0.parameters.tstart': 'Tstart with Tstop, or StartOnTrigger with Duration, is required.' });
  const created = await call('POST', '/api/v4/scenarios', {
    name: 'pause it',
    enabled: true,
    priority: 4,
    triggers: ['create'],
    actions: [
      {
        type: 'pbehavior',
        parameters: {
          name: 'paused by scenario',
          reason: 'default-reason',
          type: 'default-pause',
          start_on_trigger: true,
          duration: { value: 1, unit: 'h' },
        },
        entity_pattern: [[{ field: 'component', cond: { type: 'eq', value: 'paused-host' } }]],
        drop_scenario_if_not_matched: true,
        emit_trigger: false,
      },
    ],
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const before = Math.floor(Date.now() / 1000);
  await call('POST', '/api/v4/event', {
    connector: 'nagios',
    connector_name: 'n1',
    event_type: 'check',
    component: 'paused-host',
    resource: 'db',
    state: 2,
    output: 'x',
  });
  const pbh = await waitFor(
    'the pbehavior',
    async () => (await call('GET', '/api/v4/pbehaviors?search=paused%20by%20scenario')).body.data?.[0],
    20_000,
    200,
  );
  assert.deepEqual(pbh.entity_pattern, [[{ field: '_id', cond: { type: 'eq', value: 'db/paused-host' } }]]);
  assert.equal(pbh.type.name, 'Default pause');
  assert.equal(pbh.color, '#808080', 'types.ActionPbehaviorColor');
  assert.ok(pbh.tstart >= before && pbh.tstop - pbh.tstart === 3600, `${pbh.tstart}..${pbh.tstop}`);
});

test('a delayed scenario acts once its delay has passed, not before', async () => {
  const created = await call('POST', '/api/v4/scenarios', {
    name: 'ack later',
    enabled: true,
    priority: 5,
    triggers: ['create'],
    delay: { value: 2, unit: 's' },
    actions: [
      {
        type: 'ack',
        parameters: { output: 'acked after 2 s' },
        entity_pattern: [[{ field: 'component', cond: { type: 'eq', value: 'slow-host' } }]],
        drop_scenario_if_not_matched: true,
        emit_trigger: false,
      },
    ],
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.deepEqual(created.body.delay, { value: 2, unit: 's' });
  const sent = Date.now();
  await call('POST', '/api/v4/event', {
    connector: 'nagios',
    connector_name: 'n1',
    event_type: 'check',
    component: 'slow-host',
    resource: 'db',
    state: 2,
    output: 'x',
  });
  const open = await waitFor('the alarm', async () => (await call('GET', '/api/v4/alarms?opened=true&search=slow-host')).body.data?.[0]);
  assert.equal(open.v.ack, undefined, 'not acked at once');
  const acked = await waitFor(
    'the delayed ack',
    async () => {
      const a = (await call('GET', `/api/v4/alarms/${open._id}`)).body;
      return a.v.ack ? a : undefined;
    },
    20_000,
    200,
  );
  assert.equal(acked.v.ack.m, 'acked after 2 s');
  assert.ok(Date.now() - sent >= 2000, `acked ${Date.now() - sent} ms after the event`);
});
