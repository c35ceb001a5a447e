import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { EntityAlarms } from '../../runtime/alarm/model.js';
import { SqliteStore } from '../../runtime/store/sqlite.js';
import {
  type EngineProcess,
  freshVhost,
  publishEvents,
  startEngine,
  stopEngine,
  type Vhost,
  whenConsuming,
  writeRuntimePrefix,
} from '../helpers/broker.js';
import { removeDir, tempDir, waitFor } from '../helpers/index.js';

/*
 * axe with numprocs 2: the events of one entity are applied in the order
 * they arrived, so each alarm ends in the state of its entity's last event.
 */

let vhost: Vhost;
let dir: string;
const procs: EngineProcess[] = [];

const CONF = `
[engine:cleaner]
event_processing=canopsis.cleaner.process.event_processing
next=axe
exchange=canopsis.events

[engine:axe]
event_processing=canopsis.axe.process.event_processing
numprocs=2
`;

before(async () => {
  vhost = await freshVhost('order');
  dir = await tempDir('order');
  await writeRuntimePrefix(dir, {
    vhost: vhost.name,
    engines: CONF,
    files: {
      'etc/runtime.conf': `[store]\nbackend = embedded\nfile = ${dir}/var/lib/canopsis/canopsis.db\n\n[dispatchers]\nevent_dispatchers =\n\n[alarms]\nresolve_delay = 100000\nflapping_count = 1000\n`,
    },
  });
  for (const [name, w] of [
    ['cleaner', 0],
    ['axe', 0],
    ['axe', 1],
  ] as const) {
    const p = startEngine(dir, name, w);
    procs.push(p);
    await whenConsuming(p);
  }
});

after(async () => {
  await Promise.all(procs.map((p) => stopEngine(p)));
  await vhost.remove();
  await removeDir(dir);
});

test('numprocs 2: 1,000 interleaved state changes on 10 entities leave each alarm in its last state', async () => {
  const ENTITIES = 10;
  const N = 1000;
  const t0 = 1_700_000_000;
  const events = Array.from({ length: N }, (_, i) => ({
    connector: 'nagios',
    connector_name: 'order',
    event_type: 'check',
    source_type: 'resource',
    component: 'host',
    resource: `svc${i % ENTITIES}`,
    // Never 0 before the end, so the alarm stays open; varied so order matters.
    state: 1 + ((i * 7 + Math.floor(i / ENTITIES)) % 3),
    output: `#${i}`,
    timestamp: t0 + Math.floor(i / ENTITIES),
  }));
  const last = new Map<string, number>();
  for (const e of events) last.set(`${e.resource}/host`, e.state);
  await publishEvents(vhost.url, events);

  const store = new SqliteStore(path.join(dir, 'var', 'lib', 'canopsis', 'canopsis.db'));
  try {
    const docs = await waitFor(
      'every event applied',
      async () => {
        const all = await store.collection<EntityAlarms>('entity_alarms').find({ open: true });
        const applied = all.reduce((n, d) => n + (d.current?.v.events_count ?? 0), 0);
        return applied === N ? all : undefined;
      },
      60_000,
    );
    assert.equal(docs.length, ENTITIES);
    for (const d of docs) assert.equal(d.current!.v.state.val, last.get(d.key), `${d.key} ends in the state of its last event`);
    for (const d of docs)
      assert.equal(
        d.current!.v.output,
        `#${N - ENTITIES + Number(d.key.slice(3, d.key.indexOf('/')))}`,
        `${d.key}'s last output is its last event's`,
      );
  } finally {
    await store.close();
  }
  // Both processes worked.
  const [, w0, w1] = procs;
  assert.match(w0!.logs(), /"queue":"Engine_axe.0"/);
  assert.match(w1!.logs(), /"queue":"Engine_axe.1"/);
});
