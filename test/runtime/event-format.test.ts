import assert from 'node:assert/strict';
import { test } from 'node:test';
import { outputsOf } from '../../runtime/engine/outcome.js';
import { checkEvent, entityId, routingKey } from '../../runtime/event/canopsis-event.js';
import { DROP, RejectedEvent, routeTo } from '../../runtime/tasks/types.js';

const base = {
  connector: 'nagios',
  connector_name: 'nagios1',
  event_type: 'check',
  source_type: 'resource',
  component: 'web1',
  resource: 'http',
  state: 2,
};

test('a valid check is normalised: timestamp and state_type filled, unknown fields kept', () => {
  const r = checkEvent({ ...base, state: '2', custom: 'kept' }, () => 1234);
  assert.ok(r.ok);
  assert.deepEqual(r.event, { ...base, state: 2, custom: 'kept', timestamp: 1234, state_type: 1 });
  assert.equal(routingKey(r.event), 'nagios.nagios1.check.resource.web1.http');
  assert.equal(entityId(r.event), 'http/web1');
  const comp = checkEvent({ ...base, source_type: 'component', resource: 'ignored' });
  assert.ok(comp.ok);
  assert.equal(comp.event.resource, undefined);
  assert.equal(entityId(comp.event), 'web1');
});

test('each kind of bad event gets its own reason', () => {
  const reason = (e: unknown) => {
    const r = checkEvent(e);
    assert.ok(!r.ok, JSON.stringify(e));
    return r.reason;
  };
  assert.match(reason([base]), /found an array/);
  assert.match(reason({ ...base, connector: '', component: undefined }), /missing or empty fields: connector, component/);
  assert.match(reason({ ...base, event_type: 'teleport' }), /unknown event_type "teleport"/);
  assert.match(reason({ ...base, source_type: 'planet' }), /unknown source_type "planet"/);
  assert.match(reason({ ...base, state: 4 }), /state must be an integer 0\.\.3/);
  assert.match(reason({ ...base, state: 1.5 }), /state must be an integer/);
  assert.match(reason({ ...base, event_type: 'changestate', state: undefined }), /state must be an integer 0\.\.3 for changestate/);
  assert.match(reason({ ...base, timestamp: 'yesterday' }), /timestamp must be unix seconds/);
  assert.match(reason({ ...base, component: 'c'.repeat(300) }), /routing key longer than 255 bytes/);
  assert.ok(checkEvent({ ...base, event_type: 'ack', state: undefined }).ok, 'an ack needs no state');
});

test('task outcomes: the event, a list, a route, DROP; anything else is refused', () => {
  const e = { a: 1 };
  assert.deepEqual(outputsOf(e), [{ engines: undefined, event: e }]);
  assert.deepEqual(outputsOf(DROP), []);
  assert.deepEqual(outputsOf([e, routeTo('axe', e)]), [
    { engines: undefined, event: e },
    { engines: ['axe'], event: e },
  ]);
  assert.deepEqual(outputsOf([]), []);
  assert.throws(() => outputsOf(undefined), RejectedEvent);
  assert.throws(() => outputsOf(42), /the task returned 42/);
  assert.throws(() => outputsOf([e, 'x']), /the task returned "x"/);
});
