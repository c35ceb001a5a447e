import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { execa } from 'execa';
import {
  checkEvent,
  collect,
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
 * Nothing is lost: an engine killed with -9 mid-stream, the broker closing
 * its connection, a SIGTERM with events in flight. Every event reaches the
 * end (duplicates are allowed and counted: delivery is at-least-once).
 */

let vhost: Vhost;
let dir: string;
const running = new Set<EngineProcess>();

const CONF = `
[engine:cleaner]
event_processing=canopsis.cleaner.process.event_processing
next=relay
exchange=canopsis.events

[engine:relay]
event_processing=test.slow.event_processing
next=sink

[engine:sink]
event_processing=test.slow.event_processing
`;

// A little work per event so that a stream takes long enough to be interrupted.
const SLOW = `
export default {
  name: 'test.slow',
  event_processing: async (engine, event) => {
    if (event.seq % 500 === 0) await new Promise((r) => setImmediate(r));
    return { ...event, relayed: (event.relayed ?? 0) + 1 };
  },
};
`;

function start(name: string, extra: string[] = []): EngineProcess {
  const p = startEngine(dir, name, 0, extra);
  running.add(p);
  void p.finally(() => running.delete(p));
  return p;
}

before(async () => {
  vhost = await freshVhost('faults');
  dir = await tempDir('faults');
  await writeRuntimePrefix(dir, { vhost: vhost.name, engines: CONF, plugins: { 'slow.mjs': SLOW }, prefetch: 200 });
});

after(async () => {
  await Promise.all([...running].map((p) => stopEngine(p, 'SIGKILL')));
  await vhost.remove();
  await removeDir(dir);
});

function accounting(messages: Array<{ body: Buffer }>, n: number, offset: number) {
  const seqs = messages.map((m) => JSON.parse(m.body.toString()).seq as number).filter((s) => s >= offset && s < offset + n);
  const distinct = new Set(seqs);
  return { distinct: distinct.size, duplicates: seqs.length - distinct.size };
}

test('kill -9 of an engine in the middle of 10,000 events, then a restart: every event reaches the end', async () => {
  const sink = await collect(vhost.url, 'Engine_sink', engineQueueArgs('Engine_sink'));
  const cleaner = start('cleaner');
  await whenConsuming(cleaner);
  let relay = start('relay');
  await whenConsuming(relay);
  const N = 10_000;
  const publishing = publishEvents(
    vhost.url,
    Array.from({ length: N }, (_, i) => checkEvent(i)),
  );
  await waitFor('the relay to be mid-stream', async () => sink.messages.length > 1500, 60_000, 20);
  relay.kill('SIGKILL');
  await relay;
  const atKill = sink.messages.length;
  assert.ok(atKill < N, `killed mid-stream (${atKill} of ${N} through)`);
  relay = start('relay');
  await whenConsuming(relay);
  await publishing;
  await waitFor(`all ${N} events at the end`, async () => accounting(sink.messages, N, 0).distinct === N, 120_000);
  const { duplicates } = accounting(sink.messages, N, 0);
  console.log(`kill -9 at ${atKill}/${N}: all ${N} arrived, ${duplicates} duplicates (redelivered unacked events)`);
  await sink.stop();
  await stopEngine(relay);
  await stopEngine(cleaner);
});

test('the broker closes the engine connections mid-stream: they reconnect, nothing is lost', async () => {
  const sink = await collect(vhost.url, 'Engine_sink', engineQueueArgs('Engine_sink'));
  const cleaner = start('cleaner');
  const relay = start('relay');
  await whenConsuming(cleaner);
  await whenConsuming(relay);
  const N = 6000;
  const offset = 100_000;
  const publishing = publishEvents(
    vhost.url,
    Array.from({ length: N }, (_, i) => checkEvent(offset + i)),
  );
  await waitFor('the stream to flow', async () => sink.messages.length > 1000, 60_000, 20);
  // Closes every connection of the vhost, ours and the test's alike; the engines must come back by themselves.
  const closed = await execa('rabbitmqctl', ['-q', 'close_all_connections', '-p', vhost.name, 'test: broker-side close'], {
    reject: false,
    all: true,
  });
  assert.equal(closed.exitCode, 0, closed.all);
  await publishing.catch(() => undefined);
  await sink.stop();
  // The publisher and the collector were closed too: count what the sink queue received in total, afresh.
  const again = await collect(vhost.url, 'Engine_sink', engineQueueArgs('Engine_sink'));
  // Re-publish what the closed publisher may not have sent: duplicates are fine, losses are not.
  await publishEvents(
    vhost.url,
    Array.from({ length: N }, (_, i) => checkEvent(offset + i)),
  );
  const all = () => [...sink.messages, ...again.messages];
  await waitFor(`all ${N} events at the end`, async () => accounting(all(), N, offset).distinct === N, 120_000);
  assert.ok(cleaner.nodeChildProcess.exitCode === null && relay.nodeChildProcess.exitCode === null, 'the engines are still running');
  await again.stop();
  await stopEngine(relay);
  await stopEngine(cleaner);
  assert.match(cleaner.logs(), /broker connection lost; reconnecting/);
  assert.match(relay.logs(), /"connects":2,"msg":"connected to the broker"/);
});

test('SIGTERM with events in flight: the engine finishes them, nothing lost, exit 0', async () => {
  const sink = await collect(vhost.url, 'Engine_sink', engineQueueArgs('Engine_sink'));
  const cleaner = start('cleaner');
  await whenConsuming(cleaner);
  const N = 5000;
  const offset = 200_000;
  await publishEvents(
    vhost.url,
    Array.from({ length: N }, (_, i) => checkEvent(offset + i)),
  );
  let relay = start('relay');
  await whenConsuming(relay);
  await waitFor('events in flight', async () => sink.messages.length > 200, 60_000, 10);
  relay.kill('SIGTERM');
  const r = await relay;
  assert.equal(r.exitCode, 0, r.all);
  assert.match(String(r.all), /engine stopped/);
  relay = start('relay');
  await whenConsuming(relay);
  await waitFor(`all ${N} events at the end`, async () => accounting(sink.messages, N, offset).distinct === N, 120_000);
  const { duplicates } = accounting(sink.messages, N, offset);
  assert.equal(duplicates, 0, 'a graceful stop acks what it processed: no redelivery, no duplicate');
  await sink.stop();
  await stopEngine(relay);
  await stopEngine(cleaner);
});
