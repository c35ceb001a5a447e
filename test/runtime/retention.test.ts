import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteStore } from '../../runtime/store/sqlite.js';
import { storedAlarm } from '../helpers/alarms.js';
import { type EngineProcess, freshVhost, startEngine, stopEngine, type Vhost, writeRuntimePrefix } from '../helpers/broker.js';
import { removeDir, tempDir, waitFor } from '../helpers/index.js';

/*
 * [retention]: axe deletes resolved alarms and event_log entries older
 * than their setting, through a job on Dispatcher_axe (once for the engine
 * type, not once per process), in bounded batches (a backlog larger than
 * one job's bound takes a second job). Open alarms and recent records stay.
 */

let vhost: Vhost;
let dir: string;
const procs: EngineProcess[] = [];
const storeFile = () => path.join(dir, 'var', 'lib', 'canopsis', 'canopsis.db');

const CONF = `
[engine:axe]
event_processing=canopsis.axe.process.event_processing
beat_processing=canopsis.axe.process.beat_processing
beat_interval=0.2
numprocs=2
`;

const HOUR = 3600;

before(async () => {
  vhost = await freshVhost('retention');
  dir = await tempDir('retention');
  await writeRuntimePrefix(dir, {
    vhost: vhost.name,
    engines: CONF,
    files: {
      'etc/runtime.conf': `[store]\nbackend = embedded\nfile = ${storeFile()}\n\n[dispatchers]\nevent_dispatchers =\n\n[retention]\nevent_log = ${HOUR}\nresolved_alarms = ${HOUR}\n`,
    },
  });
});

after(async () => {
  await Promise.all(procs.map((p) => stopEngine(p)));
  await vhost.remove();
  await removeDir(dir);
});

const alarm = (id: string, opened: number, resolved: number | null) => storedAlarm({ id, entity: `${id}/host`, opened, resolved });

test('old resolved alarms and old event_log entries go, open alarms and recent ones stay, by one job at a time', async () => {
  const now = Math.floor(Date.now() / 1000);
  const store = new SqliteStore(storeFile());
  const alarms = store.collection<ReturnType<typeof alarm>>('alarms');
  const log = store.collection<Record<string, unknown>>('event_log');
  const OLD_LOG = 12_000; // more than one job deletes (20 batches of 500)
  try {
    for (let i = 0; i < 50; i++) await alarms.put(`old-${i}`, alarm(`old-${i}`, now - 10 * HOUR, now - 2 * HOUR - i));
    for (let i = 0; i < 20; i++) await alarms.put(`recent-${i}`, alarm(`recent-${i}`, now - 10 * HOUR, now - 60));
    // Open for 90 days: old, but open alarms are never pruned.
    for (let i = 0; i < 10; i++) await alarms.put(`open-${i}`, alarm(`open-${i}`, now - 90 * 86400, null));
    const db = new Database(storeFile());
    db.exec('CREATE TABLE IF NOT EXISTS c_event_log (key TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL)');
    const insert = db.prepare('INSERT INTO c_event_log (key, doc) VALUES (?, ?)');
    db.transaction(() => {
      for (let i = 0; i < OLD_LOG; i++)
        insert.run(`old-${i}`, JSON.stringify({ level: 'info', action: 'alarm_opened', engine: 'axe', timestamp: now - 2 * HOUR - i }));
      for (let i = 0; i < 30; i++)
        insert.run(`recent-${i}`, JSON.stringify({ level: 'info', action: 'alarm_opened', engine: 'axe', timestamp: now - 10 }));
    })();
    db.close();

    for (const w of [0, 1]) procs.push(startEngine(dir, 'axe', w));
    await waitFor(
      'old resolved alarms and old event_log entries gone',
      async () => (await alarms.count()) === 30 && (await log.count()) === 30,
      60_000,
      200,
    );
    assert.deepEqual(
      (await alarms.find({}, { sort: [['key', 1]] })).map((a) => a.key.replace(/-\d+$/, '')).filter((k, i, all) => all.indexOf(k) === i),
      ['open', 'recent'],
    );
    assert.equal(await log.count({ timestamp: { $lt: now - HOUR } }), 0);
    assert.equal(await log.count({ timestamp: { $gte: now - HOUR } }), 30);
  } finally {
    await store.close();
  }
  // The fields filtered on are indexed.
  const db = new Database(storeFile(), { readonly: true });
  const indexes = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'index'").all() as Array<{ name: string }>).map((r) => r.name);
  db.close();
  assert.ok(indexes.includes('c_alarms__v_resolved'), indexes.join(', '));
  assert.ok(indexes.includes('c_event_log__timestamp'), indexes.join(', '));

  const stats = [];
  for (const p of procs.splice(0)) {
    await stopEngine(p);
    const line = p
      .logs()
      .split('\n')
      .find((l) => l.includes('engine stopped'));
    assert.ok(line, p.logs());
    stats.push(
      JSON.parse(
        p
          .logs()
          .split('\n')
          .find((l) => l.includes('engine stopped'))!,
      ) as { jobs: number },
    );
  }
  // Worker 0 sent one job on its first beat; it found more than its bound and sent a second. Worker 1 sent none.
  const jobs = stats.reduce((n, s) => n + s.jobs, 0);
  assert.equal(jobs, 2, `two retention jobs in all (per process: ${stats.map((s) => s.jobs).join(', ')})`);
  console.log(`retention: ${OLD_LOG} old event_log entries and 50 old resolved alarms deleted by ${jobs} jobs across 2 processes`);
});
