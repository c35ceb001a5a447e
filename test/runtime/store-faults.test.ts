import assert from 'node:assert/strict';
import { chown } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import amqp from 'amqplib';
import { execa, type ResultPromise } from 'execa';
import { queueCounts } from '../../runtime/amqp/topology.js';
import { SqliteStore } from '../../runtime/store/sqlite.js';
import {
  checkEvent,
  collect,
  type EngineProcess,
  engineQueueArgs,
  freshVhost,
  LAUNCHER,
  publishEvents,
  startEngine,
  stopEngine,
  type Vhost,
  whenConsuming,
  writeRuntimePrefix,
} from '../helpers/broker.js';
import { ROOT, removeDir, tempDir, waitFor } from '../helpers/index.js';

/*
 * A store that cannot answer for a while loses and dead-letters nothing:
 * the engines pause (their queue's consumer count drops to 0), retry the
 * event they hold, and go on when the store answers. The store fault is
 * real: another process holds the SQLite file with BEGIN EXCLUSIVE past the
 * store's busy_timeout (shortened to 1 s here), so the engines get
 * SQLITE_BUSY; or the file belongs to root and the engine runs as nobody.
 */

let vhost: Vhost;
let dir: string;
const running = new Set<EngineProcess>();

const CONF = `
[engine:cleaner]
event_processing=canopsis.cleaner.process.event_processing
next=che
exchange=canopsis.events

[engine:che]
event_processing=canopsis.che.process.event_processing
next=axe

[engine:axe]
event_processing=canopsis.axe.process.event_processing
next=sink
`;

const storeFile = () => path.join(dir, 'var', 'lib', 'canopsis', 'canopsis.db');

// Another process takes the write lock of the store and keeps it until it is told to go (SIGTERM) or HOLD_MS passed.
const LOCKER = `
import { createRequire } from 'node:module';
const Database = createRequire(${JSON.stringify(path.join(ROOT, 'package.json'))})('better-sqlite3');
const db = new Database(process.env.STORE_FILE);
db.pragma('busy_timeout = 30000');
db.exec('BEGIN EXCLUSIVE');
process.stdout.write('locked\\n');
const release = () => {
  db.exec('COMMIT');
  db.close();
  process.stdout.write('released\\n');
  process.exit(0);
};
setTimeout(release, Number(process.env.HOLD_MS));
process.on('SIGTERM', release);
`;

type Locker = ResultPromise<{ reject: false; all: true; buffer: true }>;

/** Resolves once the lock is taken (the process, wrapped: awaiting it directly would wait for its end). */
async function lockStore(holdMs: number): Promise<{ proc: Locker }> {
  const p = execa(process.execPath, ['--input-type=module', '-e', LOCKER], {
    reject: false,
    all: true,
    buffer: true,
    env: { STORE_FILE: storeFile(), HOLD_MS: String(holdMs) },
  });
  let out = '';
  p.all?.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(
    'the store locked by another process',
    async () => {
      if (p.nodeChildProcess.exitCode !== null && p.nodeChildProcess.exitCode !== undefined) throw new Error(`locker exited: ${out}`);
      return out.includes('locked');
    },
    30_000,
    20,
  );
  return { proc: p };
}

function start(name: string): EngineProcess {
  const p = startEngine(dir, name);
  running.add(p);
  void p.finally(() => running.delete(p));
  return p;
}

async function counts(queue: string) {
  const conn = await amqp.connect(vhost.url);
  try {
    return await queueCounts(conn, queue);
  } finally {
    await conn.close();
  }
}

const deadLetters = async () => {
  let n = 0;
  for (const e of ['cleaner', 'che', 'axe']) n += (await counts(`Engine_${e}.dead`)).messages;
  return n;
};

const occurrences = (text: string, what: string) => text.split(what).length - 1;

before(async () => {
  vhost = await freshVhost('storefault');
  dir = await tempDir('storefault');
  await writeRuntimePrefix(dir, {
    vhost: vhost.name,
    engines: CONF,
    prefetch: 200,
    files: {
      'etc/runtime.conf': `[store]\nbackend = embedded\nfile = ${storeFile()}\nbusy_timeout = 1\n\n[alarms]\nresolve_delay = 100000\nflapping_count = 1000\n`,
    },
  });
  // The file exists before any engine or locker opens it (each test may run alone).
  await new SqliteStore(storeFile()).close();
});

after(async () => {
  await Promise.all([...running].map((p) => stopEngine(p, 'SIGKILL')));
  await vhost.remove();
  await removeDir(dir);
});

test('the store locked by another process for 5 s in the middle of 5,000 events: 0 dead letters, 5,000 alarms, order kept, consumers paused then back', async () => {
  const sink = await collect(vhost.url, 'Engine_sink', engineQueueArgs('Engine_sink'));
  const engines = { cleaner: start('cleaner'), che: start('che'), axe: start('axe') };
  for (const p of Object.values(engines)) await whenConsuming(p);
  const N = 5000;
  const reader = new SqliteStore(storeFile());
  const alarms = () => reader.collection('alarms').count();
  try {
    const publishing = publishEvents(
      vhost.url,
      Array.from({ length: N }, (_, i) => checkEvent(i, { state: 1 + (i % 3) })),
    );
    await waitFor('the chain mid-stream', async () => (await alarms()) >= 300, 60_000, 20);
    const { proc: locker } = await lockStore(5000);
    const atLock = await alarms();
    assert.ok(atLock < N, `locked mid-stream (${atLock} of ${N} alarms)`);
    // Paused: nobody consumes che's and axe's queues while the store is locked.
    await waitFor(
      'che and axe paused (0 consumers)',
      async () => (await counts('Engine_che')).consumers === 0 && (await counts('Engine_axe')).consumers === 0,
      4500,
      50,
    );
    assert.equal(locker.nodeChildProcess.exitCode, null, 'the paused engines were seen while the lock was still held');
    const released = await locker;
    assert.match(String(released.all), /released/);
    await waitFor(
      'che and axe consuming again',
      async () => (await counts('Engine_che')).consumers === 1 && (await counts('Engine_axe')).consumers === 1,
      30_000,
      50,
    );
    await publishing;
    await waitFor(`${N} alarms`, async () => (await alarms()) === N, 180_000, 200);
    await waitFor(`${N} events at the end of the chain`, async () => sink.messages.length >= N, 60_000);
    assert.equal(await deadLetters(), 0, 'nothing dead-lettered');
    const seqs = sink.messages.map((m) => JSON.parse(m.body.toString()).seq as number);
    assert.deepEqual(
      seqs,
      Array.from({ length: N }, (_, i) => i),
      'every event once, in the order sent',
    );
  } finally {
    await reader.close();
    await sink.stop();
  }
  for (const p of Object.values(engines)) await stopEngine(p);
  for (const name of ['che', 'axe'] as const) {
    const logs = engines[name].logs();
    // Once per episode, not once per retry.
    assert.equal(occurrences(logs, 'store or broker unavailable'), 1, `${name} logged the fault once:\n${logs}`);
    assert.equal(occurrences(logs, 'store and broker answer again'), 1, `${name} logged the recovery once`);
    assert.match(logs, /SQLITE_BUSY/);
    const stats = JSON.parse(logs.split('\n').find((l) => l.includes('engine stopped'))!) as {
      retries: number;
      faults: number;
      dead: number;
    };
    assert.equal(stats.faults, 1);
    assert.ok(stats.retries >= 2, `${name} retried (${stats.retries} retries)`);
    assert.equal(stats.dead, 0);
    const back = JSON.parse(logs.split('\n').find((l) => l.includes('store and broker answer again'))!) as { pausedMs: number };
    console.log(`${name}: one fault episode, paused ${back.pausedMs} ms, ${stats.retries} retries, 0 dead letters`);
  }
});

test('SIGTERM while the store is locked: the engine exits at once, the held events go back to the queue, none dead', async () => {
  const che = start('che');
  await whenConsuming(che);
  const { proc: locker } = await lockStore(60_000);
  const N = 300;
  const conn = await amqp.connect(vhost.url);
  const ch = await conn.createConfirmChannel();
  for (let i = 0; i < N; i++)
    ch.publish('', 'Engine_che', Buffer.from(JSON.stringify(checkEvent(10_000 + i, { timestamp: 1_700_000_000 }))), { persistent: true });
  await ch.waitForConfirms();
  await ch.close();
  await conn.close();
  await waitFor(
    'che paused',
    async () => (await counts('Engine_che')).consumers === 0 && /store or broker unavailable/.test(che.logs()),
    20_000,
    50,
  );
  const t0 = Date.now();
  che.kill('SIGTERM');
  const r = await che;
  const took = Date.now() - t0;
  assert.equal(r.exitCode, 0, r.all);
  // The store's busy_timeout (1 s) bounds an attempt in progress; the 20 s stop bound is not reached.
  assert.ok(took < 5000, `stopped in ${took} ms`);
  console.log(`SIGTERM during a store fault: exit 0 in ${took} ms, ${N} events back in the queue`);
  assert.deepEqual(await counts('Engine_che'), { messages: N, consumers: 0 }, 'every held event is back in the queue, unacked, not dead');
  assert.equal(await deadLetters(), 0);
  locker.kill('SIGTERM');
  await locker;
  const sink = await collect(vhost.url, 'Engine_axe', engineQueueArgs('Engine_axe'));
  const again = start('che');
  await waitFor(`${N} events through che once the store answers`, async () => sink.messages.length >= N, 60_000);
  await sink.stop();
  await stopEngine(again);
});

test('the connection lost while the store is locked: the engine reconnects, drops the retries of the dead channel, and processes everything once the store answers', async () => {
  const che = start('che');
  await whenConsuming(che);
  const sink = await collect(vhost.url, 'Engine_axe', engineQueueArgs('Engine_axe'));
  const { proc: locker } = await lockStore(60_000);
  const N = 200;
  const conn = await amqp.connect(vhost.url);
  const ch = await conn.createConfirmChannel();
  for (let i = 0; i < N; i++) ch.publish('', 'Engine_che', Buffer.from(JSON.stringify(checkEvent(20_000 + i))), { persistent: true });
  await ch.waitForConfirms();
  await ch.close();
  await conn.close();
  await waitFor(
    'che paused',
    async () => (await counts('Engine_che')).consumers === 0 && /store or broker unavailable/.test(che.logs()),
    20_000,
    50,
  );
  const closed = await execa(
    'rabbitmqctl',
    ['-q', 'close_all_connections', '-p', vhost.name, 'test: connection lost during a store fault'],
    { reject: false, all: true },
  );
  assert.equal(closed.exitCode, 0, closed.all);
  await waitFor('che reconnected', async () => /"connects":2,"msg":"connected to the broker"/.test(che.logs()), 20_000, 50);
  // On the new channel it takes the redelivered events, finds the store still locked and pauses again.
  await waitFor('che paused again', async () => (await counts('Engine_che')).consumers === 0, 20_000, 50);
  locker.kill('SIGTERM');
  await locker;
  const again = await collect(vhost.url, 'Engine_axe', engineQueueArgs('Engine_axe'));
  const seen = () =>
    new Set([...sink.messages, ...again.messages].map((m) => JSON.parse(m.body.toString()).seq as number).filter((s) => s >= 20_000));
  await waitFor(`${N} events through che`, async () => seen().size === N, 60_000);
  assert.equal(await deadLetters(), 0);
  assert.equal(occurrences(che.logs(), 'store or broker unavailable'), 1, 'one episode across the reconnect');
  await sink.stop();
  await again.stop();
  await stopEngine(che);
});

test('a store file root owns, opened by an engine running as nobody: paused, not dead-lettered; chown it and every event goes through', {
  skip: process.getuid?.() !== 0 ? 'needs root to run the engine as another user' : false,
}, async () => {
  // The store of the issue-12 install: created by root, 0644, in a root-owned directory.
  const ro = await tempDir('readonly');
  const file = path.join(ro, 'var', 'lib', 'canopsis', 'canopsis.db');
  await writeRuntimePrefix(ro, {
    vhost: vhost.name,
    engines: `[engine:che]\nevent_processing=canopsis.che.process.event_processing\nnext=ro_sink\n`,
    files: { 'etc/runtime.conf': `[store]\nbackend = embedded\nfile = ${file}\nbusy_timeout = 1\n\n[dispatchers]\nevent_dispatchers =\n` },
  });
  const seed = new SqliteStore(file);
  await seed.collection('entities').put('seed', { type: 'connector', name: 'seed' });
  await seed.close();
  const sink = await collect(vhost.url, 'Engine_ro_sink', engineQueueArgs('Engine_ro_sink'));
  const NOBODY = 65534;
  const che = execa(
    process.execPath,
    [LAUNCHER, '-e', 'dynamic', '-n', 'che', '-w', '0', '-l', 'info', '--prefix', ro, '--stats-interval', '0'],
    { reject: false, all: true, buffer: true, uid: NOBODY, gid: NOBODY },
  );
  let logs = '';
  che.all?.on('data', (d: Buffer) => (logs += d.toString()));
  try {
    await waitFor('che consuming', async () => /"msg":"consuming"/.test(logs), 20_000, 50);
    const N = 200;
    const conn = await amqp.connect(vhost.url);
    const ch = await conn.createConfirmChannel();
    for (let i = 0; i < N; i++)
      ch.publish('', 'Engine_che', Buffer.from(JSON.stringify(checkEvent(30_000 + i, { timestamp: 1_700_000_000 }))), { persistent: true });
    await ch.waitForConfirms();
    await ch.close();
    await conn.close();
    await waitFor(
      'che paused on the read-only store',
      async () => (await counts('Engine_che')).consumers === 0 && /store or broker unavailable/.test(logs),
      20_000,
      50,
    );
    assert.equal(sink.messages.length, 0);
    assert.equal((await counts('Engine_che.dead')).messages, 0, 'nothing dead-lettered');
    // The repair a re-run of the installer makes: the service user owns its store.
    for (const p of [path.dirname(file), file]) await chown(p, NOBODY, NOBODY);
    await waitFor(`${N} events through che`, async () => sink.messages.length >= N, 60_000);
    assert.equal((await counts('Engine_che.dead')).messages, 0);
    assert.match(logs, /store and broker answer again/);
    const fault = JSON.parse(logs.split('\n').find((l) => l.includes('store or broker unavailable'))!) as { reason: string };
    assert.match(fault.reason, /SQLITE_(READONLY|CANTOPEN)|cannot open the embedded store/);
    console.log(`read-only store: ${fault.reason}`);
  } finally {
    che.kill('SIGTERM');
    await che;
    await sink.stop();
    await removeDir(ro);
  }
});

test('an event nested 100,000 levels deep is dead-lettered as too deep, and the engine goes on', async () => {
  const cleaner = start('cleaner');
  await whenConsuming(cleaner);
  const next = await collect(vhost.url, 'Engine_che', engineQueueArgs('Engine_che'));
  const deadQ = await collect(vhost.url, 'Engine_cleaner.dead');
  const deep = `{"connector":"nagios","connector_name":"n1","event_type":"check","source_type":"component","component":"deep","state":1,"x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
  await publishEvents(vhost.url, [deep], true);
  await publishEvents(vhost.url, [checkEvent(40_000)]);
  await waitFor('the next event through', async () => next.messages.some((m) => JSON.parse(m.body.toString()).seq === 40_000), 30_000);
  await waitFor('the deep one dead-lettered', async () => deadQ.messages.length === 1, 10_000);
  assert.match(String(deadQ.messages[0]!.headers['x-canopsis-reason']), /nested too deep: more than 64 levels/);
  assert.equal(deadQ.messages[0]!.body.length, deep.length, 'the body kept as it came');
  await next.stop();
  await deadQ.stop();
  // Nothing left unacked: a graceful stop has nothing in flight, and the queue is empty.
  await stopEngine(cleaner);
  assert.deepEqual(await counts('Engine_cleaner'), { messages: 0, consumers: 0 });
  assert.doesNotMatch(cleaner.logs(), /event handling failed/);
});
