import assert from 'node:assert/strict';
import { alarmsFromV4, alarmsToV4 } from '../../installer/migrations/alarms-v4.js';
import type { Store } from '../../runtime/store/types.js';

/*
 * The 0.4.0 alarms migration, up and down, on a store holding exactly what
 * 0.3.0's axe wrote. Run on each backend (migrations.test.ts: SQLite;
 * test/store/mongodb.test.ts: MongoDB).
 */

// biome-ignore lint/suspicious/noExplicitAny: the test reads back whatever documents the store holds
type Json = any;

export async function alarmsMigrationRoundTrip(store: Store): Promise<void> {
  const alarms = store.collection<Record<string, unknown>>('alarms');
  const perEntity = store.collection<Record<string, unknown>>('entity_alarms');
  const entities = store.collection<Record<string, unknown>>('entities');
  // Exactly what 0.3.0's axe wrote: an open acked alarm with a changestate lock, and a resolved one.
  const open = {
    id: 'disk/web1:1700000000:1',
    entity: 'disk/web1',
    connector: 'nagios',
    connector_name: 'n1',
    component: 'web1',
    resource: 'disk',
    opened_at: 1700000000,
    last_update: 1700000300,
    last_event: 1700000200,
    events_count: 3,
    output: 'full',
    state: { val: 3, t: 1700000300, locked: true },
    status: { val: 1, t: 1700000000 },
    state_changes: [1700000000, 1700000100],
    non_ok_since: 1700000000,
    ack: { author: 'alice', message: 'on it', t: 1700000250 },
    ticket: { author: 'bob', value: 'T-1', t: 1700000260, type: 'assocticket' },
    steps: [
      { type: 'stateinc', t: 1700000000, author: 'nagios.n1', message: 'full', val: 1 },
      { type: 'statusinc', t: 1700000000, author: 'nagios.n1', message: 'full', val: 1 },
      { type: 'stateinc', t: 1700000100, author: 'nagios.n1', message: 'fuller', val: 2 },
      { type: 'ack', t: 1700000250, author: 'alice', message: 'on it' },
      { type: 'assocticket', t: 1700000260, author: 'bob', message: '' },
      { type: 'changestate', t: 1700000300, author: 'carol', message: 'worse', val: 3 },
    ],
    resolved: null,
  };
  const closed = {
    ...open,
    id: 'cpu/web1:1690000000:1',
    entity: 'cpu/web1',
    resource: 'cpu',
    state: { val: 0, t: 1690000500, locked: false },
    status: { val: 0, t: 1690000500 },
    ack: undefined,
    ticket: undefined,
    steps: [
      { type: 'stateinc', t: 1690000000, author: 'nagios.n1', message: 'hot', val: 2 },
      { type: 'statusinc', t: 1690000000, author: 'nagios.n1', message: 'hot', val: 1 },
      { type: 'statedec', t: 1690000500, author: 'nagios.n1', message: 'ok', val: 0 },
      { type: 'statusdec', t: 1690000500, author: 'nagios.n1', message: 'ok', val: 0 },
      { type: 'resolve', t: 1690000600, author: 'axe', message: '' },
    ],
    opened_at: 1690000000,
    resolved: 1690000600,
  };
  const plain = (o: object) => JSON.parse(JSON.stringify(o)) as Record<string, unknown>;
  await alarms.put(open.id, plain(open));
  await alarms.put(closed.id, plain(closed));
  await perEntity.put('disk/web1', { current: plain(open), open: true, count: 1, seen: [] });
  await perEntity.put('cpu/web1', { current: null, open: false, count: 1, seen: [] });
  const connector = { type: 'connector', name: 'nagios/n1', depends: [], created: 1, last_event_date: 2, enabled: true };
  await entities.put('nagios/n1', connector);

  await alarmsToV4(store);
  // Field by field as Canopsis' types.Alarm / AlarmValue (release-22.10 lib/canopsis/types/model_alarm.go, alarm_value.go).
  const a = (await alarms.get(open.id)) as Json;
  assert.equal(a.key, open.id, 'the id is kept');
  assert.equal(a.t, 1700000000);
  assert.equal(a.d, 'disk/web1');
  assert.deepEqual(a.v.state, { _t: 'changestate', t: 1700000300, a: 'carol', m: 'worse', val: 3, user_id: '', initiator: 'external' });
  assert.equal(a.v.status.val, 1);
  assert.deepEqual([a.v.ack.a, a.v.ack.m, a.v.ack.t], ['alice', 'on it', 1700000250]);
  assert.deepEqual([a.v.ticket._t, a.v.ticket.val], ['assocticket', 'T-1']);
  assert.deepEqual(
    a.v.steps.map((s: { _t: string }) => s._t),
    ['stateinc', 'statusinc', 'stateinc', 'ack', 'assocticket', 'changestate'],
  );
  assert.deepEqual(
    [a.v.creation_date, a.v.last_update_date, a.v.last_event_date, a.v.events_count, a.v.output],
    [1700000000, 1700000300, 1700000200, 3, 'full'],
  );
  assert.equal(a.v.resolved, undefined, 'an open alarm has no resolved field (Canopsis: omitempty)');
  assert.match(a.v.display_name, /^[A-Z]{2}-[A-Z]{2}-[A-Z]{2}$/);
  const r = (await alarms.get(closed.id)) as Json;
  assert.equal(r.v.resolved, 1690000600);
  assert.equal(r.v.duration, 600);
  assert.ok(!r.v.steps.some((s: { _t: string }) => s._t === 'resolve'), 'Canopsis has no resolve step');
  assert.equal(((await perEntity.get('disk/web1')) as Json).current._id, open.id, "axe's copy too");
  assert.deepEqual(
    await entities.get('nagios/n1'),
    { ...connector, key: 'nagios/n1', name: 'n1', description: '', infos: {}, impact_level: 1 },
    "a connector entity is named by its connector_name, and every entity has Canopsis' description, infos, impact_level",
  );
  const once = JSON.stringify(await alarms.find({}, { sort: [['key', 1]] }));
  await alarmsToV4(store);
  assert.equal(JSON.stringify(await alarms.find({}, { sort: [['key', 1]] })), once, 'a second run changes nothing');

  await alarmsFromV4(store);
  assert.deepEqual(await alarms.get(open.id), { key: open.id, ...plain(open) }, 'down gives back what 0.3.0 wrote');
  assert.deepEqual(await alarms.get(closed.id), { key: closed.id, ...plain(closed) });
  assert.deepEqual(((await perEntity.get('disk/web1')) as Json).current, plain(open));
  assert.deepEqual(await entities.get('nagios/n1'), { key: 'nagios/n1', ...connector });
  await alarmsFromV4(store);
  assert.deepEqual(await alarms.get(open.id), { key: open.id, ...plain(open) }, 'down twice: the same');
}
