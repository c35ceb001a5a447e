import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { EntityAlarms } from '../../runtime/alarm/model.js';
import { fusedGroups } from '../../runtime/contract/fuse.js';
import { SqliteStore } from '../../runtime/store/sqlite.js';
import {
  checkEvent,
  collect,
  connect,
  type EngineProcess,
  engineQueueArgs,
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
 * Fused engines (engine-launcher -e fused) on the real broker and a real
 * store: cleaner -> picky (a plugin refusing some events) -> che -> axe in
 * one process. Events cross it in memory and reach the end; what an inner
 * engine refuses is its own dead letter; an event published to an inner
 * engine's queue (as collectdgw publishes to che's) starts there; a kill -9
 * in the middle of a stream loses nothing; with two processes, an entity's
 * events keep their order.
 */

let vhost: Vhost;
let dir: string;
const procs: EngineProcess[] = [];

const CONF = `
[engine:cleaner]
event_processing=canopsis.cleaner.process.event_processing
next=picky
exchange=canopsis.events

[engine:picky]
event_processing=test.picky.event_processing
next=che

[engine:che]
event_processing=canopsis.che.process.event_processing
next=axe

[engine:axe]
event_processing=canopsis.axe.process.event_processing
next=sink
`;

const PICKY = `
export default {
  name: 'test.picky',
  event_processing: (engine, event) => {
    if (event.output === 'refuse me') throw new Error('picky refuses this one');
    return { ...event, picked_by: engine.name + '/' + engine.worker };
  },
};
`;

const storeFile = () => path.join(dir, 'var', 'lib', 'canopsis', 'canopsis.db');

async function openAlarms(): Promise<Array<EntityAlarms & { key: string }>> {
  const store = new SqliteStore(storeFile());
  try {
    return await store.collection<EntityAlarms>('entity_alarms').find({ open: true });
  } finally {
    await store.close();
  }
}

before(async () => {
  vhost = await freshVhost('fused');
  dir = await tempDir('fused');
  await writeRuntimePrefix(dir, {
    vhost: vhost.name,
    engines: CONF,
    plugins: { 'picky.mjs': PICKY },
    files: {
      'etc/runtime.conf': `[store]\nbackend = embedded\nfile = ${storeFile()}\n\n[dispatchers]\nevent_dispatchers =\n\n[alarms]\nresolve_delay = 100000\nflapping_count = 1000\n`,
    },
  });
});

after(async () => {
  await Promise.all(procs.map((p) => stopEngine(p)));
  await vhost.remove();
  await removeDir(dir);
});

test('the default chain fuses into one group from cleaner to perfdata; collectdgw stays apart and che is its next', () => {
  const link = (name: string, next: string[], exchange?: string) => ({ name, next, exchange, processesEvents: true });
  assert.deepEqual(
    fusedGroups([
      link('cleaner', ['event_filter'], 'canopsis.events'),
      link('event_filter', ['che']),
      link('che', ['pbehavior']),
      link('pbehavior', ['axe']),
      link('axe', ['action']),
      link('action', ['perfdata']),
      link('perfdata', []),
      link('collectdgw', ['che'], 'canopsis.collectd'),
    ]),
    [['cleaner', 'event_filter', 'che', 'pbehavior', 'axe', 'action', 'perfdata'], ['collectdgw']],
  );
  // A fan-out ends a group, a loop is never fused, an entry starts its own.
  assert.deepEqual(fusedGroups([link('a', ['b', 'c']), link('b', []), link('c', [])]), [['a'], ['b'], ['c']]);
  assert.deepEqual(fusedGroups([link('a', ['b']), link('b', ['a'])]), [['a', 'b']]);
  assert.deepEqual(fusedGroups([link('a', ['b']), link('b', [], 'x')]), [['a'], ['b']]);
});

test('one process runs cleaner -> picky -> che -> axe: alarms stored, outputs at the end, refusals dead-lettered by the engine that refused', async () => {
  const p = startEngine(dir, 'cleaner,picky,che,axe');
  procs.push(p);
  await whenConsuming(p);
  // Every engine of the group consumes its own queue (events from elsewhere enter there).
  const conn = await connect(vhost.url);
  const ch = await conn.createChannel();
  for (const q of ['Engine_cleaner', 'Engine_picky', 'Engine_che', 'Engine_axe'])
    assert.equal((await ch.checkQueue(q)).consumerCount, 1, `${q} has its consumer`);
  const sink = await collect(vhost.url, 'Engine_sink', engineQueueArgs('Engine_sink'));
  const picky = await collect(vhost.url, 'Engine_picky.dead');
  const cleaner = await collect(vhost.url, 'Engine_cleaner.dead');
  const N = 400;
  await publishEvents(vhost.url, [
    ...Array.from({ length: N }, (_, i) => checkEvent(i, { state: 1 + (i % 3) })),
    checkEvent(N, { output: 'refuse me' }),
  ]);
  await publishEvents(vhost.url, ['{not json'], true);
  // As collectdgw does: straight to che's queue; it starts at che, so picky never sees it.
  const side = checkEvent(N + 1, { state: 2, component: 'side' });
  const pub = await conn.createConfirmChannel();
  pub.publish('', 'Engine_che', Buffer.from(JSON.stringify({ ...side, timestamp: 1_700_000_000 })), { persistent: true });
  await pub.waitForConfirms();
  await waitFor('every event at the end', async () => sink.messages.length >= N + 1, 60_000);
  const got = sink.messages.map((m) => JSON.parse(m.body.toString()) as Record<string, unknown>);
  assert.equal(new Set(got.map((e) => e.seq)).size, N + 1);
  assert.ok(
    got.filter((e) => e.seq !== N + 1).every((e) => e.picked_by === 'picky/0'),
    'each event crossed picky',
  );
  assert.equal(got.find((e) => e.seq === N + 1)?.picked_by, undefined, 'the side event started at che');
  const alarms = await waitFor('the alarms', async () => {
    const a = await openAlarms();
    return a.length === N + 1 ? a : undefined;
  });
  assert.ok(alarms.some((a) => a.key === `svc${N + 1}/side`));

  await waitFor('the refusals', async () => picky.messages.length === 1 && cleaner.messages.length === 1);
  const refused = picky.messages[0]!;
  assert.equal(refused.headers['x-canopsis-engine'], 'picky');
  assert.equal(refused.headers['x-canopsis-queue'], 'Engine_picky', 'a replay goes back to picky');
  assert.match(
    String(refused.headers['x-canopsis-reason']),
    /^test\.picky\.event_processing failed: picky refuses this one \(failed 3 times/,
  );
  assert.equal(JSON.parse(refused.body.toString()).seq, N, 'the event as picky received it');
  assert.equal(cleaner.messages[0]!.headers['x-canopsis-engine'], 'cleaner');
  for (const q of ['Engine_cleaner', 'Engine_picky', 'Engine_che', 'Engine_axe'])
    assert.equal((await ch.checkQueue(q)).messageCount, 0, `${q} is empty`);
  await Promise.all([sink.stop(), picky.stop(), cleaner.stop()]);
  await conn.close();
  await stopEngine(p);
});

test('killed -9 in the middle of a stream: restarted, every event reaches the end and every alarm is stored', async () => {
  const sink = await collect(vhost.url, 'Engine_sink', engineQueueArgs('Engine_sink'));
  let p = startEngine(dir, 'cleaner,picky,che,axe');
  procs.push(p);
  await whenConsuming(p);
  const N = 3000;
  const base = 10_000;
  const publishing = publishEvents(
    vhost.url,
    Array.from({ length: N }, (_, i) => checkEvent(base + i, { component: 'kill', state: 1 + (i % 3) })),
  );
  await waitFor('some events through', async () => sink.messages.length >= 300, 60_000, 10);
  p.kill('SIGKILL');
  await p;
  const before = sink.messages.length;
  p = startEngine(dir, 'cleaner,picky,che,axe');
  procs.push(p);
  await whenConsuming(p);
  await publishing;
  await waitFor(
    `all ${N} events at the end`,
    async () => new Set(sink.messages.map((m) => JSON.parse(m.body.toString()).seq)).size === N,
    120_000,
  );
  assert.ok(before < N, 'the kill came before the end of the stream');
  const alarms = await waitFor('every alarm', async () => {
    const a = (await openAlarms()).filter((x) => x.key.endsWith('/kill'));
    return a.length === N ? a : undefined;
  });
  assert.equal(alarms.length, N);
  const duplicates = sink.messages.length - N;
  console.log(`kill -9 mid-stream: ${duplicates} events redelivered and published twice`);
  await sink.stop();
  await stopEngine(p);
});

test("two fused processes with axe numprocs 2: an entity's events are applied in order, each process its share", async () => {
  const conf = `${CONF.replace('next=sink\n', 'next=sink\nnumprocs=2\n')}`;
  await writeRuntimePrefix(dir, { vhost: vhost.name, engines: conf, plugins: { 'picky.mjs': PICKY } });
  const two = [startEngine(dir, 'cleaner,picky,che,axe', 0), startEngine(dir, 'cleaner,picky,che,axe', 1)];
  procs.push(...two);
  for (const p of two) await whenConsuming(p);
  const ENTITIES = 10;
  const N = 1000;
  const events = Array.from({ length: N }, (_, i) => ({
    ...checkEvent(20_000 + i),
    component: 'order',
    resource: `svc${i % ENTITIES}`,
    state: 1 + ((i * 7 + Math.floor(i / ENTITIES)) % 3),
    output: `#${i}`,
    timestamp: 1_700_000_000 + Math.floor(i / ENTITIES),
  }));
  const last = new Map<string, number>();
  for (const e of events) last.set(`${e.resource}/order`, e.state);
  await publishEvents(vhost.url, events);
  const docs = await waitFor(
    'every event applied',
    async () => {
      const all = (await openAlarms()).filter((d) => d.key.endsWith('/order'));
      return all.reduce((n, d) => n + (d.current?.v.events_count ?? 0), 0) === N ? all : undefined;
    },
    60_000,
  );
  assert.equal(docs.length, ENTITIES);
  for (const d of docs) assert.equal(d.current!.v.state.val, last.get(d.key), `${d.key} ends in the state of its last event`);
  assert.match(two[0]!.logs(), /Engine_cleaner\.0/);
  assert.match(two[1]!.logs(), /Engine_cleaner\.1/);
  await Promise.all(two.map((p) => stopEngine(p)));
});
