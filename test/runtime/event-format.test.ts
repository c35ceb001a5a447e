import assert from 'node:assert/strict';
import { test } from 'node:test';
import { outputsOf } from '../../runtime/engine/outcome.js';
import { checkEvent, derivedSourceType, entityId, MAX_TIMESTAMP_DRIFT, routingKey } from '../../runtime/event/canopsis-event.js';
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
  assert.match(reason({ ...base, connector: '', connector_name: undefined }), /missing or empty fields: connector, connector_name/);
  assert.match(reason({ ...base, component: undefined }), /missing or empty field: component \(source_type is resource\)/);
  assert.match(reason({ ...base, source_type: 'connector' }), /a check event cannot have source_type connector/);
  assert.match(reason({ ...base, event_type: 'teleport' }), /unknown event_type "teleport"/);
  assert.match(reason({ ...base, source_type: 'planet' }), /unknown source_type "planet"/);
  assert.match(reason({ ...base, state: 4 }), /state must be an integer 0\.\.3/);
  assert.match(reason({ ...base, state: 1.5 }), /state must be an integer/);
  assert.match(reason({ ...base, event_type: 'changestate', state: undefined }), /state must be an integer 0\.\.3 for changestate/);
  assert.match(reason({ ...base, timestamp: 'yesterday' }), /timestamp must be unix seconds/);
  assert.match(reason({ ...base, component: 'c'.repeat(300) }), /routing key longer than 255 bytes/);
  assert.ok(checkEvent({ ...base, event_type: 'ack', state: undefined }).ok, 'an ack needs no state');
});

// Canopsis release-22.10, lib/canopsis/types/event.go: IsValid (source types), GetEID, Format
// (MaxEventTimestampVariation = 24 h); lib/api/event/api.go processValue (the source type from the fields present).
test("Canopsis' source types and entity ids; a timestamp more than a day away is replaced by now", () => {
  const now = 1_800_000_000;
  const ack = checkEvent({ ...base, event_type: 'ack', source_type: 'connector', state: undefined }, () => now);
  assert.ok(ack.ok);
  assert.equal(entityId(ack.event), 'nagios/nagios1');
  assert.equal(ack.event.component, undefined);
  assert.equal(routingKey(ack.event), 'nagios.nagios1.ack.connector.');
  const svc = checkEvent({ ...base, source_type: 'service', component: 'shop', resource: undefined }, () => now);
  assert.ok(svc.ok);
  assert.equal(entityId(svc.event), 'shop');
  const far = checkEvent({ ...base, timestamp: now - MAX_TIMESTAMP_DRIFT - 1 }, () => now);
  assert.ok(far.ok);
  assert.equal(far.event.timestamp, now);
  assert.equal(far.event.timestamp_replaced, now - MAX_TIMESTAMP_DRIFT - 1, 'the original kept for whoever looks');
  const ms = checkEvent({ ...base, timestamp: now * 1000 }, () => now);
  assert.ok(ms.ok);
  assert.equal(ms.event.timestamp, now, 'milliseconds are far in the future: replaced');
  const near = checkEvent({ ...base, timestamp: now - MAX_TIMESTAMP_DRIFT }, () => now);
  assert.ok(near.ok);
  assert.equal(near.event.timestamp, now - MAX_TIMESTAMP_DRIFT, 'within a day: kept');
  assert.equal(derivedSourceType({ component: 'c', resource: 'r' }), 'resource');
  assert.equal(derivedSourceType({ component: 'c', resource: '' }), 'component');
  assert.equal(derivedSourceType({ connector: 'x' }), 'connector');
  for (const type of ['declareticketwebhook', 'activate', 'unsnooze'])
    assert.ok(checkEvent({ ...base, event_type: type, state: undefined }).ok, `${type} is accepted`);
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
