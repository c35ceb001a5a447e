import assert from 'node:assert/strict';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  type Migration,
  migrateSettings,
  pending,
  readMigrationState,
  recordApplied,
  renameKey,
} from '../../installer/migrations/index.js';
import { inProcess } from '../../installer/migrations/store-jobs.js';
import { SqliteStore } from '../../runtime/store/sqlite.js';
import { removeDir, tempDir } from '../helpers/index.js';

/*
 * The migration machinery with the kind of migrations an update ships: a
 * settings key renamed, a stored document reshaped; each runs once.
 */

let dir: string;
before(async () => {
  dir = await tempDir('migrations');
});
after(async () => {
  await removeDir(dir);
});

const RENAME: Migration = {
  id: '0.2.0-prefetch',
  description: 'rabbitmq.prefetch is now rabbitmq.consumer_prefetch',
  settings: renameKey('rabbitmq', 'prefetch', 'consumer_prefetch'),
};
const RESHAPE: Migration = {
  id: '0.2.0-alarm-state',
  description: 'alarms keep state as {val}',
  store: async (store) => {
    const c = store.collection<{ state: number | { val: number } }>('alarms');
    for (const a of await c.find())
      if (typeof a.state === 'number')
        await c.modify(a.key, (cur) => (cur && typeof cur.state === 'number' ? { ...cur, state: { val: cur.state } } : undefined));
  },
};

test('a settings rename keeps the value and comments, other sections untouched', () => {
  const text = '[rabbitmq]\n; how many unacked\nprefetch = 50\n\n[engine:x]\nprefetch = 3\n';
  assert.equal(migrateSettings(text, [RENAME]), '[rabbitmq]\n; how many unacked\nconsumer_prefetch = 50\n\n[engine:x]\nprefetch = 3\n');
});

/** A prefix whose etc/runtime.conf names an embedded store file. */
async function storePrefix(name: string): Promise<{ prefix: string; file: string }> {
  const prefix = path.join(dir, name);
  const file = path.join(prefix, 'var', 'lib', 'canopsis', 'canopsis.db');
  await mkdir(path.join(prefix, 'etc'), { recursive: true });
  await writeFile(path.join(prefix, 'etc', 'runtime.conf'), `[store]\nbackend = embedded\nfile = ${file}\n`);
  return { prefix, file };
}

test('migrations run once: recorded, then no longer pending; a reshaped document stays reshaped', async () => {
  const file = path.join(dir, 'migrations.json');
  const at = await storePrefix('once');
  const migrate = (ids: string[]) => inProcess(at.prefix, [RENAME, RESHAPE])({ op: 'up', ids });
  const store = new SqliteStore(at.file);
  try {
    const c = store.collection<{ state: number | { val: number } }>('alarms');
    await c.put('a1', { state: 2 });
    await c.put('a2', { state: { val: 1 } });
    let state = await readMigrationState(file);
    const todo = pending([RENAME, RESHAPE], state);
    assert.deepEqual(
      todo.map((m) => m.id),
      ['0.2.0-prefetch', '0.2.0-alarm-state'],
    );
    assert.deepEqual((await migrate(todo.filter((m) => m.store).map((m) => m.id))).ran, ['0.2.0-alarm-state']);
    state = await recordApplied(file, state, todo, new Date('2026-11-27T00:00:00Z'));
    assert.deepEqual(await c.get('a1'), { key: 'a1', state: { val: 2 } });
    assert.deepEqual(await c.get('a2'), { key: 'a2', state: { val: 1 } });
    assert.deepEqual(pending([RENAME, RESHAPE], await readMigrationState(file)), [], 'nothing pending after the run');
    assert.equal((await readMigrationState(file)).applied['0.2.0-alarm-state'], '2026-11-27T00:00:00.000Z');
    // Idempotent if run again (a run killed before recording).
    await migrate([RESHAPE.id]);
    assert.deepEqual(await c.get('a1'), { key: 'a1', state: { val: 2 } });
  } finally {
    await store.close();
  }
});

test('a first install on an empty store records store migrations without running them, and creates no store file', async () => {
  const at = await storePrefix('empty');
  let ran = false;
  const list: Migration[] = [
    {
      ...RESHAPE,
      store: async () => {
        ran = true;
      },
    },
  ];
  const r = await inProcess(at.prefix, list)({ op: 'up', ids: [RESHAPE.id], skipWhenEmpty: true });
  assert.deepEqual(r, { ran: [], empty: true });
  assert.equal(ran, false);
  await assert.rejects(stat(at.file), 'root never creates the store file (the service user could not write it)');
  // With data in it, the same job runs.
  const store = new SqliteStore(at.file);
  await store.collection('entities').put('web', { type: 'component' });
  await store.close();
  assert.deepEqual(await inProcess(at.prefix, list)({ op: 'up', ids: [RESHAPE.id], skipWhenEmpty: true }), {
    ran: [RESHAPE.id],
    empty: false,
  });
  assert.equal(ran, true);
});

test('a migration record that is not ours stops the run instead of being taken as empty', async () => {
  const file = path.join(dir, 'bad-migrations.json');
  await writeFile(file, JSON.stringify({ applied: { '../../x': 'now' } }));
  await assert.rejects(readMigrationState(file), /not a migration record/);
  await writeFile(file, '{"applied":');
  await assert.rejects(readMigrationState(file), /not valid JSON/);
});

test('an update restarts the engines and the webserver, and the broker only when its configuration changed', async () => {
  const { restartFor: servicesToRestart } = await import('../../installer/services/index.js');
  assert.deepEqual(servicesToRestart(['/p/lib/canopsis/releases/0.2.0+x', 'bin/engine-che']), ['amqp2engines', 'webserver']);
  assert.deepEqual(servicesToRestart(['etc/rabbitmq/rabbitmq.conf', 'etc/collectd.conf']), [
    'rabbitmq-server',
    'collectd',
    'amqp2engines',
    'webserver',
  ]);
});

test('0.2.0-metric-engines adds perfdata and collectdgw to a stock 0.1.0 chain, and leaves a changed chain alone', async () => {
  const { addMetricEngines } = await import('../../installer/migrations/index.js');
  const v1 =
    '[engine:che]\nevent_processing = canopsis.che.process.event_processing\nnext = axe\n\n[engine:axe]\n; alarms\nevent_processing = canopsis.axe.process.event_processing\n';
  const v2 = addMetricEngines(v1);
  assert.match(v2, /\[engine:axe\]\n; alarms\nevent_processing = canopsis\.axe\.process\.event_processing\nnext = perfdata\n/);
  assert.match(
    v2,
    /\[engine:perfdata\]\nevent_processing = canopsis\.perfdata\.process\.event_processing\nbeat_processing = canopsis\.perfdata\.process\.beat_processing\n/,
  );
  assert.match(
    v2,
    /\[engine:collectdgw\]\nevent_processing = canopsis\.collectdgw\.process\.event_processing\nexchange = canopsis\.collectd\nnext = che\n/,
  );
  assert.equal(addMetricEngines(v2), v2, 'idempotent');
  const custom = v1.replace('; alarms\n', '; alarms\nnext = archive\n');
  assert.equal(addMetricEngines(custom), custom);
});

test('0.3.0 reshapes stored entities to Canopsis v4 fields and back; both directions idempotent, in batches', async () => {
  const { entitiesToV4, entitiesFromV4 } = await import('../../installer/migrations/index.js');
  const store = new SqliteStore(path.join(dir, 'entities.db'));
  try {
    const c = store.collection<Record<string, unknown>>('entities');
    // More than one batch, and one already in the new shape (a migration re-run after a kill).
    for (let i = 0; i < 1_203; i++)
      await c.put(`r${i}/web`, {
        type: 'resource',
        name: `r${i}`,
        component: 'web',
        depends: ['web'],
        first_seen: 100 + i,
        last_seen: 200 + i,
      });
    await c.put('done', { type: 'component', name: 'done', depends: [], created: 5, last_event_date: 6, enabled: false });
    await entitiesToV4(store);
    assert.deepEqual(await c.get('r7/web'), {
      key: 'r7/web',
      type: 'resource',
      name: 'r7',
      component: 'web',
      depends: ['web'],
      created: 107,
      last_event_date: 207,
      enabled: true,
    });
    assert.deepEqual(
      await c.get('done'),
      { key: 'done', type: 'component', name: 'done', depends: [], created: 5, last_event_date: 6, enabled: false },
      'a document already reshaped is left alone',
    );
    assert.equal(await c.count({ first_seen: { $exists: true } }), 0);
    await entitiesToV4(store);
    assert.equal(await c.count({ created: { $exists: true } }), 1_204);
    await entitiesFromV4(store);
    assert.deepEqual(await c.get('r7/web'), {
      key: 'r7/web',
      type: 'resource',
      name: 'r7',
      component: 'web',
      depends: ['web'],
      first_seen: 107,
      last_seen: 207,
    });
    await entitiesFromV4(store);
    assert.equal(await c.count({ first_seen: { $exists: true } }), 1_204);
  } finally {
    await store.close();
  }
});

// biome-ignore lint/suspicious/noExplicitAny: the test reads back whatever documents the store holds
type Json = any;

test("0.4.0 reshapes 0.3.0 alarms to Canopsis v4's (t, d, v, steps {_t,a,m,t,val}) and back, ids kept, idempotent", async () => {
  const { alarmsToV4, alarmsFromV4 } = await import('../../installer/migrations/alarms-v4.js');
  const store = new SqliteStore(path.join(dir, 'alarms.db'));
  try {
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
    await entities.put('nagios/n1', { type: 'connector', name: 'nagios/n1', depends: [], created: 1, last_event_date: 2, enabled: true });

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
    assert.equal((await entities.get('nagios/n1'))!.name, 'n1', 'a connector entity is named by its connector_name');
    const once = JSON.stringify(await alarms.find({}, { sort: [['key', 1]] }));
    await alarmsToV4(store);
    assert.equal(JSON.stringify(await alarms.find({}, { sort: [['key', 1]] })), once, 'a second run changes nothing');

    await alarmsFromV4(store);
    assert.deepEqual(await alarms.get(open.id), { key: open.id, ...plain(open) }, 'down gives back what 0.3.0 wrote');
    assert.deepEqual(await alarms.get(closed.id), { key: closed.id, ...plain(closed) });
    assert.deepEqual(((await perEntity.get('disk/web1')) as Json).current, plain(open));
    assert.equal((await entities.get('nagios/n1'))!.name, 'nagios/n1');
    await alarmsFromV4(store);
    assert.deepEqual(await alarms.get(open.id), { key: open.id, ...plain(open) }, 'down twice: the same');
  } finally {
    await store.close();
  }
});

test('migrate --down-to undoes what is newer than a version: the renamed key back, documents back, the record without them', async () => {
  const { migrateDownTo } = await import('../../installer/migrations/run.js');
  const { MIGRATIONS } = await import('../../installer/migrations/index.js');
  const { layoutOf } = await import('../../installer/layout.js');
  const { writeFile, readFile, mkdir } = await import('node:fs/promises');
  const layout = layoutOf(path.join(dir, 'prefix'));
  await mkdir(layout.etc, { recursive: true });
  await mkdir(layout.pkgmgr, { recursive: true });
  await writeFile(layout.settingsFile, '[store]\n; where mongod keeps its files\nmongodb_dbpath = /data/db\n');
  await writeFile(path.join(layout.etc, 'runtime.conf'), `[store]\nbackend = embedded\nfile = ${path.join(layout.varLib, 'store.db')}\n`);
  const store = new SqliteStore(path.join(layout.varLib, 'store.db'));
  await store
    .collection('entities')
    .put('web', { type: 'component', name: 'web', depends: [], created: 1, last_event_date: 2, enabled: true });
  await store.close();
  await writeFile(
    path.join(layout.pkgmgr, 'migrations.json'),
    JSON.stringify({ applied: Object.fromEntries(MIGRATIONS.map((m) => [m.id, 'then'])) }),
  );

  const undone = await migrateDownTo(layout, '0.2.0', MIGRATIONS, inProcess(layout.prefix, MIGRATIONS));
  assert.deepEqual(undone, ['0.4.0-alarms-v4', '0.3.0-entity-fields', '0.3.0-store-dbpath']);
  assert.equal(await readFile(layout.settingsFile, 'utf8'), '[store]\n; where mongod keeps its files\ndbpath = /data/db\n');
  const after = new SqliteStore(path.join(layout.varLib, 'store.db'));
  assert.deepEqual(await after.collection('entities').get('web'), {
    key: 'web',
    type: 'component',
    name: 'web',
    depends: [],
    first_seen: 1,
    last_seen: 2,
  });
  await after.close();
  assert.deepEqual(Object.keys(JSON.parse(await readFile(path.join(layout.pkgmgr, 'migrations.json'), 'utf8')).applied), [
    '0.2.0-metric-engines',
  ]);
  assert.deepEqual(await migrateDownTo(layout, '0.3.0', MIGRATIONS, inProcess(layout.prefix, MIGRATIONS)), [], 'nothing newer than 0.3.0');
});

test('an old key name is refused with the new one named', async () => {
  const { validateSettingsText } = await import('../../installer/settings/load.js');
  assert.throws(
    () => validateSettingsText('[store]\ndbpath = /data/db\n', 'etc/canopsis.ini', { root: true, user: 'root', group: 'root' }),
    (e: Error & { details(): string[] }) =>
      e.details().some((l) => /^etc\/canopsis\.ini:store\.dbpath: a key renamed in 0\.3\.0: write store\.mongodb_dbpath instead$/.test(l)),
  );
});
