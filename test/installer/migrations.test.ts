import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { migrateSettings, migrateStore, pending, readMigrationState, recordApplied, renameKey, type Migration } from '../../installer/migrations/index.js';
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

const RENAME: Migration = { id: '0.2.0-prefetch', description: 'rabbitmq.prefetch is now rabbitmq.consumer_prefetch', settings: renameKey('rabbitmq', 'prefetch', 'consumer_prefetch') };
const RESHAPE: Migration = {
  id: '0.2.0-alarm-state',
  description: 'alarms keep state as {val}',
  store: async (store) => {
    const c = store.collection<{ state: number | { val: number } }>('alarms');
    for (const a of await c.find()) if (typeof a.state === 'number') await c.modify(a.key, (cur) => (cur && typeof cur.state === 'number' ? { ...cur, state: { val: cur.state } } : undefined));
  },
};

test('a settings rename keeps the value and comments, other sections untouched', () => {
  const text = '[rabbitmq]\n; how many unacked\nprefetch = 50\n\n[engine:x]\nprefetch = 3\n';
  assert.equal(migrateSettings(text, [RENAME]), '[rabbitmq]\n; how many unacked\nconsumer_prefetch = 50\n\n[engine:x]\nprefetch = 3\n');
});

test('migrations run once: recorded, then no longer pending; a reshaped document stays reshaped', async () => {
  const file = path.join(dir, 'migrations.json');
  const store = new SqliteStore(path.join(dir, 'store.db'));
  try {
    const c = store.collection<{ state: number | { val: number } }>('alarms');
    await c.put('a1', { state: 2 });
    await c.put('a2', { state: { val: 1 } });
    let state = await readMigrationState(file);
    const todo = pending([RENAME, RESHAPE], state);
    assert.deepEqual(todo.map((m) => m.id), ['0.2.0-prefetch', '0.2.0-alarm-state']);
    await migrateStore(store, todo);
    state = await recordApplied(file, state, todo, new Date('2026-11-27T00:00:00Z'));
    assert.deepEqual(await c.get('a1'), { key: 'a1', state: { val: 2 } });
    assert.deepEqual(await c.get('a2'), { key: 'a2', state: { val: 1 } });
    assert.deepEqual(pending([RENAME, RESHAPE], await readMigrationState(file)), [], 'nothing pending after the run');
    assert.equal((await readMigrationState(file)).applied['0.2.0-alarm-state'], '2026-11-27T00:00:00.000Z');
    // Idempotent if run again (a run killed before recording).
    await migrateStore(store, [RESHAPE]);
    assert.deepEqual(await c.get('a1'), { key: 'a1', state: { val: 2 } });
  } finally {
    await store.close();
  }
});

test('an update restarts the engines and the webserver, and the broker only when its configuration changed', async () => {
  const { servicesToRestart } = await import('../../installer/bundle/lifecycle.js');
  assert.deepEqual(servicesToRestart(['/p/lib/canopsis/releases/0.2.0+x', 'bin/engine-che']), ['amqp2engines', 'webserver']);
  assert.deepEqual(servicesToRestart(['etc/rabbitmq/rabbitmq.conf', 'etc/collectd.conf']), ['rabbitmq-server', 'collectd', 'amqp2engines', 'webserver']);
});

test('0.2.0-metric-engines adds perfdata and collectdgw to a stock 0.1.0 chain, and leaves a changed chain alone', async () => {
  const { addMetricEngines } = await import('../../installer/migrations/index.js');
  const v1 = '[engine:che]\nevent_processing = canopsis.che.process.event_processing\nnext = axe\n\n[engine:axe]\n; alarms\nevent_processing = canopsis.axe.process.event_processing\n';
  const v2 = addMetricEngines(v1);
  assert.match(v2, /\[engine:axe\]\n; alarms\nevent_processing = canopsis\.axe\.process\.event_processing\nnext = perfdata\n/);
  assert.match(v2, /\[engine:perfdata\]\nevent_processing = canopsis\.perfdata\.process\.event_processing\nbeat_processing = canopsis\.perfdata\.process\.beat_processing\n/);
  assert.match(v2, /\[engine:collectdgw\]\nevent_processing = canopsis\.collectdgw\.process\.event_processing\nexchange = canopsis\.collectd\nnext = che\n/);
  assert.equal(addMetricEngines(v2), v2, 'idempotent');
  const custom = v1.replace('; alarms\n', '; alarms\nnext = archive\n');
  assert.equal(addMetricEngines(custom), custom);
});
