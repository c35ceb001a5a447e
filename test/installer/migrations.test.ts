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
import { alarmsMigrationRoundTrip } from './alarms-migration-case.js';

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
  // The same release again: what runs it keeps running unless a file of it changed.
  assert.deepEqual(servicesToRestart([], 'same'), []);
  assert.deepEqual(servicesToRestart(['etc/collectd.conf'], 'same'), ['collectd', 'amqp2engines', 'webserver']);
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

test('0.4.0-operator-engines puts pbehavior between che and axe and action after axe in a stock chain, and takes them out again', async () => {
  const { addOperatorEngines, removeOperatorEngines } = await import('../../installer/migrations/index.js');
  const v3 =
    '[engine:che]\n; context\nevent_processing = canopsis.che.process.event_processing\nnext = axe\n\n[engine:axe]\nevent_processing = canopsis.axe.process.event_processing\nnext = perfdata\n\n[engine:perfdata]\nevent_processing = canopsis.perfdata.process.event_processing\n';
  const v4 = addOperatorEngines(v3);
  assert.match(v4, /\[engine:che\]\n; context\nevent_processing = canopsis\.che\.process\.event_processing\nnext = pbehavior\n/);
  assert.match(
    v4,
    /\[engine:pbehavior\]\nevent_processing = canopsis\.pbehavior\.process\.event_processing\nbeat_processing = canopsis\.pbehavior\.process\.beat_processing\nnext = axe\n/,
  );
  assert.match(v4, /\[engine:axe\]\nevent_processing = canopsis\.axe\.process\.event_processing\nnext = action\n/);
  assert.match(
    v4,
    /\[engine:action\]\nevent_processing = canopsis\.action\.process\.event_processing\nbeat_processing = canopsis\.action\.process\.beat_processing\nnext = perfdata\n/,
  );
  assert.equal(addOperatorEngines(v4), v4, 'idempotent');
  assert.equal(removeOperatorEngines(v4), v3, 'down gives back the 0.3.0 text, comments included');
  assert.equal(removeOperatorEngines(v3), v3);
  const custom = v3.replace('next = axe', 'next = enrich').replace('next = perfdata', 'next = archive');
  assert.equal(addOperatorEngines(custom), custom, 'a changed chain is left alone');
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

test("0.4.0 reshapes 0.3.0 alarms to Canopsis v4's (t, d, v, steps {_t,a,m,t,val}) and back, ids kept, idempotent", async () => {
  const store = new SqliteStore(path.join(dir, 'alarms.db'));
  try {
    await alarmsMigrationRoundTrip(store);
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
  assert.deepEqual(undone, ['0.4.0-alarms-v4', '0.4.0-operator-engines', '0.3.0-entity-fields', '0.3.0-store-dbpath']);
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
