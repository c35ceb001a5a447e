import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BeatScheduler } from '../../runtime/engine/beats.js';
import { deadLetterHeaders } from '../../runtime/engine/dead-letter.js';
import { partitionFor } from '../../runtime/engine/partition.js';
import { FaultPause } from '../../runtime/engine/pause.js';
import { statsEvent } from '../../runtime/engine/self-stats.js';
import { entityId } from '../../runtime/event/canopsis-event.js';
import { waitFor } from '../helpers/index.js';

/* The engine's collaborators, in-process: no broker, no store. */

test('beats: one at a time even when a beat outlasts the interval; a failing beat is reported and the next still comes; stop waits for the one running', async () => {
  let running = 0;
  let most = 0;
  let done = 0;
  const errors: string[] = [];
  const beats = new BeatScheduler(
    5,
    async () => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 30));
      running--;
      done++;
      if (done === 2) throw new Error('second beat failed');
    },
    (e) => errors.push(e.message),
  );
  beats.start();
  await waitFor('four beats', async () => done >= 4, 10_000, 5);
  await waitFor('a beat running', async () => running === 1, 10_000, 1);
  await beats.stop();
  assert.equal(running, 0, 'stop resolved only after the running beat ended');
  assert.equal(most, 1, 'beats never overlapped');
  assert.deepEqual(errors, ['second beat failed']);
  const after = done;
  await new Promise((r) => setImmediate(r));
  assert.equal(done, after, 'no beat after stop');
});

test('self-stats: rate, seconds per event and queue depth over the last period, named after the engine and worker', () => {
  const e = statsEvent(
    { engine: 'che', worker: 1, host: 'h1' },
    { at: 1000, processed: 100, busyMs: 50 },
    { at: 11_000, processed: 600, busyMs: 300 },
    42,
    60,
    1_700_000_000_500,
  );
  assert.equal(e.resource, 'Engine_che.1');
  assert.equal(e.component, 'h1');
  assert.equal(e.event_type, 'perf');
  assert.equal(e.timestamp, 1_700_000_000);
  const m = Object.fromEntries((e.perf_data_array as Array<{ metric: string; value: number }>).map((p) => [p.metric, p.value]));
  assert.deepEqual(m, { cps_evt_per_sec: 50, cps_sec_per_evt: 0.0005, cps_queue_size: 42 });
  const idle = statsEvent(
    { engine: 'axe', worker: 0, host: 'h1' },
    { at: 5, processed: 7, busyMs: 1 },
    { at: 5, processed: 7, busyMs: 1 },
    0,
    60,
  );
  assert.deepEqual(
    (idle.perf_data_array as Array<{ value: number }>).map((p) => p.value),
    [0, 0, 0],
    'no time elapsed and nothing processed: zeros, not NaN',
  );
});

test('dead letters keep the headers they came with and add why, where and when', () => {
  const h = deadLetterHeaders(
    { 'x-trace': 'abc' },
    'not an event object',
    { engine: 'che', worker: 2, home: 'Engine_che', exchange: 'canopsis.events', routingKey: 'a.b' },
    new Date('2026-11-30T00:00:00Z'),
  );
  assert.deepEqual(h, {
    'x-trace': 'abc',
    'x-canopsis-reason': 'not an event object',
    'x-canopsis-engine': 'che',
    'x-canopsis-worker': 2,
    'x-canopsis-dead-at': '2026-11-30T00:00:00.000Z',
    'x-canopsis-exchange': 'canopsis.events',
    'x-canopsis-routing-key': 'a.b',
    'x-canopsis-queue': 'Engine_che',
  });
});

test('partitions: one entity always in the same partition, entities spread over all; unreadable or keyless go to 0', () => {
  const body = (component: string, resource: string) =>
    Buffer.from(
      JSON.stringify({ component, resource, source_type: 'resource', event_type: 'check', connector: 'c', connector_name: 'n', state: 1 }),
    );
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const n = partitionFor(body(`host${i}`, 'cpu'), entityId, 4);
    assert.equal(partitionFor(body(`host${i}`, 'cpu'), entityId, 4), n, 'stable');
    assert.ok(n >= 0 && n < 4);
    seen.add(n);
  }
  assert.equal(seen.size, 4, 'every partition gets entities');
  assert.equal(partitionFor(Buffer.from('{not json'), entityId, 4), 0);
  assert.equal(partitionFor(Buffer.from('"a string"'), entityId, 4), 0);
  assert.equal(
    partitionFor(
      body('h', 'r'),
      () => {
        throw new Error('no key');
      },
      4,
    ),
    0,
  );
});

test('fault pause: one episode however many holds and retries; consumers follow the first hold and the last release; over once something goes through', () => {
  let clock = 1000;
  const log: string[] = [];
  const pause = new FaultPause(
    {
      changed: () => log.push(pause.paused ? 'pause' : 'resume'),
      started: (r) => log.push(`started: ${r}`),
      ended: (ms) => log.push(`ended after ${ms} ms`),
    },
    () => clock,
  );
  const event = {};
  const publish = {};
  pause.hold(event, 'SQLITE_BUSY');
  pause.hold(event, 'SQLITE_BUSY again');
  pause.hold(publish, 'the broker refused a publish');
  assert.equal(pause.paused, true);
  assert.deepEqual(pause.fault, { reason: 'SQLITE_BUSY', since: new Date(1000).toISOString() });
  clock = 4500;
  pause.release(event);
  pause.answered();
  assert.equal(pause.paused, true, 'the publish still holds');
  pause.release(publish);
  assert.equal(pause.paused, false);
  assert.equal(pause.fault, undefined);
  pause.answered();
  pause.answered();
  assert.deepEqual(log, ['started: SQLITE_BUSY', 'pause', 'resume', 'ended after 3500 ms']);
});
