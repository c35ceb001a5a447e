import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
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
 * A chain read from amqp2engines.conf, on the real broker: cleaner ->
 * event_filter (a rule sets a field) -> a plugin engine that tags events and
 * fans out to two next engines.
 */

let vhost: Vhost;
let dir: string;
const engines: EngineProcess[] = [];

const CONF = `
[engine:cleaner]
event_processing=canopsis.cleaner.process.event_processing
next=event_filter
exchange=canopsis.events

[engine:event_filter]
event_processing=canopsis.event_filter.process.event_processing
beat_processing=canopsis.event_filter.process.beat_processing
next=tagger

[engine:tagger]
event_processing=test.tagger.event_processing
next=sink_a,sink_b

[engine:sink_a]
event_processing=test.tagger.event_processing

[engine:sink_b]
event_processing=test.tagger.event_processing
`;

const TAGGER = `
export default {
  name: 'test.tagger',
  event_processing: (engine, event) => ({ ...event, tagged_by: engine.name + '/' + engine.worker }),
};
`;

const RULES = `
rules:
  - name: critical-is-urgent
    match: { state: 2 }
    action: { set: { urgent: true } }
  - name: drop-test-connector
    match: { connector: { regex: "^drop" } }
    action: drop
`;

before(async () => {
  vhost = await freshVhost('pipeline');
  dir = await tempDir('pipeline');
  await writeRuntimePrefix(dir, {
    vhost: vhost.name,
    engines: CONF,
    plugins: { 'tagger.mjs': TAGGER },
    files: { 'etc/event_filter.yaml': RULES },
  });
});

after(async () => {
  await Promise.all(engines.map((p) => stopEngine(p)));
  await vhost.remove();
  await removeDir(dir);
});

test('events cross cleaner -> event_filter -> tagger and reach both next engines, changed as configured', async () => {
  for (const name of ['cleaner', 'event_filter', 'tagger']) {
    const p = startEngine(dir, name);
    engines.push(p);
    await whenConsuming(p);
  }
  const a = await collect(vhost.url, 'Engine_sink_a', engineQueueArgs('Engine_sink_a'));
  const b = await collect(vhost.url, 'Engine_sink_b', engineQueueArgs('Engine_sink_b'));
  const N = 2000;
  const events = Array.from({ length: N }, (_, i) => checkEvent(i, i % 2 ? {} : { timestamp: undefined }));
  const dropped = Array.from({ length: 50 }, (_, i) => checkEvent(N + i, { connector: 'dropme' }));
  await publishEvents(vhost.url, [...events, ...dropped]);
  await waitFor(`${N} events at both sinks`, async () => a.messages.length >= N && b.messages.length >= N, 60_000);
  for (const sink of [a, b]) {
    const got = sink.messages.map((m) => JSON.parse(m.body.toString()));
    const seqs = new Set(got.map((e) => e.seq));
    assert.equal(seqs.size, N, 'every event once');
    assert.ok(
      got.every((e) => e.seq < N),
      'the rule dropped the dropme events',
    );
    assert.ok(
      got.every((e) => typeof e.timestamp === 'number'),
      'the cleaner set missing timestamps',
    );
    assert.ok(got.every((e) => e.tagged_by === 'tagger/0'));
    assert.ok(
      got.every((e) => (e.state === 2) === (e.urgent === true)),
      'the set rule applied to state 2 only',
    );
    assert.ok(
      got.every((e) => e.state_type === 1),
      'the cleaner normalised state_type',
    );
  }
  await a.stop();
  await b.stop();
});

test('-consumeQueue and -publishQueue override the configured queues (Go-style chaining)', async () => {
  const a = await collect(vhost.url, 'Engine_sink_a', engineQueueArgs('Engine_sink_a'));
  const b = await collect(vhost.url, 'Engine_sink_b', engineQueueArgs('Engine_sink_b'));
  const p = startEngine(dir, 'tagger', 1, ['-consumeQueue', 'Engine_side', '-publishQueue', 'Engine_sink_b']);
  engines.push(p);
  await whenConsuming(p);
  const conn = await connect(vhost.url);
  const ch = await conn.createConfirmChannel();
  for (let i = 0; i < 20; i++) ch.publish('', 'Engine_side', Buffer.from(JSON.stringify(checkEvent(50_000 + i))), { persistent: true });
  await ch.waitForConfirms();
  await ch.close();
  await conn.close();
  await waitFor(
    '20 events at sink_b',
    async () => b.messages.filter((m) => JSON.parse(m.body.toString()).tagged_by === 'tagger/1').length === 20,
  );
  assert.equal(a.messages.filter((m) => JSON.parse(m.body.toString()).seq >= 50_000).length, 0, 'nothing went to the configured next');
  await a.stop();
  await b.stop();
});
