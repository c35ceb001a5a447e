import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EngineConfig } from '../../runtime/config/engines.js';
import type { RuntimeConfig } from '../../runtime/config/runtime.js';
import { DispatcherSet } from '../../runtime/dispatch/dispatchers.js';
import { Engine } from '../../runtime/engine/engine.js';
import { BrokerUnavailable } from '../../runtime/engine/faults.js';
import { NACKS_BEFORE_RECONNECT } from '../../runtime/engine/publisher.js';
import { createLogger } from '../../runtime/log.js';
import { TaskRegistry } from '../../runtime/tasks/registry.js';
import type { Event, TaskModule } from '../../runtime/tasks/types.js';
import { waitFor } from '../helpers/index.js';
import { MemoryBroker } from '../helpers/memory-broker.js';

/*
 * The engine's rules, in-process against the in-memory broker: when an
 * input is acked, what a refused publish or a store fault does, where a bad
 * event goes, what a lost channel or a stop leaves for redelivery, how a
 * partitioned engine routes and how a dispatcher job is done once. The
 * real-broker tests (pipeline, dead-letters, store-faults, beat-dispatcher)
 * keep what only RabbitMQ shows.
 */

const logger = createLogger('critical');
const BROKER = {
  url: 'memory://',
  where: 'memory',
  urls: ['memory://'],
  wheres: ['memory'],
  queueType: 'classic' as const,
  vhost: '/',
  exchange: 'canopsis.events',
  deadLetterExchange: 'canopsis.dead',
  prefetch: 10,
};

interface Spawned {
  engine: Engine;
  broker: MemoryBroker;
}

function engineOn(
  broker: MemoryBroker,
  mod: TaskModule,
  config: Partial<EngineConfig> & { name: string },
  extra: { worker?: number; known?: string[]; stopTimeoutMs?: number } = {},
): Engine {
  const registry = new TaskRegistry();
  registry.register(mod);
  const full: EngineConfig = { next: [], beatInterval: 60, numprocs: 1, ...config };
  return new Engine({
    prefix: '/nonexistent',
    config: full,
    known: new Set(extra.known ?? [full.name, ...full.next]),
    worker: extra.worker ?? 0,
    broker: BROKER,
    registry,
    logger,
    statsInterval: 0,
    stopTimeoutMs: extra.stopTimeoutMs ?? 5_000,
    runtime: {} as RuntimeConfig,
    dispatchers: async () => new DispatcherSet([], logger),
    store: async () => {
      throw new Error('no store in these tests');
    },
    link: broker.link,
  });
}

async function started(mod: TaskModule, config: Partial<EngineConfig> & { name: string }): Promise<Spawned> {
  const broker = new MemoryBroker();
  const engine = engineOn(broker, mod, config);
  await engine.start();
  return { engine, broker };
}

const body = (s: { body: Buffer }) => JSON.parse(s.body.toString()) as Event;
const ev = (n: number, extra: Event = {}) => JSON.stringify({ component: `host${n}`, n, ...extra });

const pass: TaskModule = { name: 'test.pass', event_processing: (_e, event) => ({ ...event, seen: true }) };

test('an input is acked only once every output is confirmed; outputs keep arrival order', async () => {
  const { engine, broker } = await started(pass, { name: 'a', eventProcessing: 'test.pass.event_processing', next: ['b', 'c'] });
  try {
    broker.holdConfirms();
    for (let i = 0; i < 5; i++) broker.publishTo('Engine_a', ev(i));
    await waitFor('5 events processed', async () => engine.stats.processed === 5);
    assert.equal(broker.unacked('Engine_a'), 5, 'nothing acked while the confirms are held');
    assert.equal(broker.ready('Engine_b').length, 5, 'outputs already routed');
    broker.releaseConfirms();
    await waitFor('inputs acked', async () => broker.unacked('Engine_a') === 0);
    for (const q of ['Engine_b', 'Engine_c'])
      assert.deepEqual(
        broker.ready(q).map((s) => body(s).n),
        [0, 1, 2, 3, 4],
        `${q} got every event in order`,
      );
    assert.equal(body(broker.ready('Engine_b')[0]!).seen, true, 'the task output, not the input');
    assert.equal(engine.stats.published, 10);
  } finally {
    await engine.stop();
  }
});

test('a refused publish holds the engine (not ready, consumer cancelled) and is retried until the broker takes it; nothing lost', async () => {
  const { engine, broker } = await started(pass, { name: 'a', eventProcessing: 'test.pass.event_processing', next: ['b'] });
  try {
    broker.refuse('Engine_b', 3);
    broker.publishTo('Engine_a', ev(1));
    await waitFor('the engine held', async () => engine.readiness.fault !== undefined, 10_000, 5);
    const r = engine.readiness;
    assert.equal(r.ready, false);
    assert.match(r.fault!.reason, /refused a publish to Engine_b/);
    broker.publishTo('Engine_a', ev(2));
    await waitFor('both delivered', async () => broker.ready('Engine_b').length === 2, 10_000);
    await waitFor('inputs acked', async () => broker.unacked('Engine_a') === 0 && broker.ready('Engine_a').length === 0);
    assert.deepEqual(
      broker.ready('Engine_b').map((s) => body(s).n),
      [1, 2],
    );
    assert.equal(engine.stats.retries, 3);
    assert.equal(engine.stats.faults, 1, 'one fault episode');
    await waitFor('ready again', async () => engine.readiness.ready);
    assert.equal(broker.consumers('Engine_a'), 1, 'consuming again');
  } finally {
    await engine.stop();
  }
});

test('bad input and failing tasks are dead-lettered with their reason and acked; the engine goes on', async () => {
  let calls = 0;
  const picky: TaskModule = {
    name: 'test.picky',
    event_processing: (_e, event) => {
      if (event.explode) {
        calls++;
        throw new Error('boom');
      }
      return event;
    },
  };
  const { engine, broker } = await started(picky, { name: 'a', eventProcessing: 'test.picky.event_processing', next: ['b'] });
  try {
    broker.publishTo('Engine_a', '{not json', { 'x-origin': 'kept' });
    broker.publishTo('Engine_a', '[1,2]');
    broker.publishTo('Engine_a', ev(1, { explode: true }));
    broker.publishTo('Engine_a', ev(2));
    await waitFor('three dead letters', async () => broker.ready('Engine_a.dead').length === 3, 10_000);
    await waitFor('the good one through', async () => broker.ready('Engine_b').length === 1);
    await waitFor('all acked', async () => broker.unacked('Engine_a') === 0 && broker.ready('Engine_a').length === 0);
    const dead = broker.ready('Engine_a.dead');
    const reasons = dead.map((d) => String(d.headers['x-canopsis-reason']));
    assert.match(reasons[0]!, /JSON/);
    assert.equal(dead[0]!.headers['x-canopsis-queue'], 'Engine_a', 'replayed to where it came from');
    assert.match(reasons[1]!, /not an event object \(found an array\)/);
    assert.match(reasons[2]!, /test\.picky\.event_processing failed: boom \(failed 3 times/);
    assert.equal(dead[0]!.headers['x-origin'], 'kept', 'the headers it came with are kept');
    assert.equal(dead[0]!.body.toString(), '{not json', 'the body as it came');
    assert.equal(calls, 3, 'a failing task is tried three times');
    assert.equal(engine.stats.dead, 3);
    assert.equal(engine.readiness.ready, true);
  } finally {
    await engine.stop();
  }
});

test('a store fault pauses consumption and the held event is retried until the store answers, in order', async () => {
  let down = true;
  const seen: number[] = [];
  const storeBound: TaskModule = {
    name: 'test.store',
    event_processing: (_e, event) => {
      if (down) throw Object.assign(new Error('database is locked'), { transient: true });
      seen.push(event.n as number);
      return event;
    },
  };
  const { engine, broker } = await started(storeBound, { name: 'a', eventProcessing: 'test.store.event_processing', next: ['b'] });
  try {
    for (let i = 0; i < 3; i++) broker.publishTo('Engine_a', ev(i));
    await waitFor('paused', async () => broker.consumers('Engine_a') === 0);
    assert.match(engine.readiness.fault?.reason ?? '', /database is locked/);
    broker.publishTo('Engine_a', ev(3));
    down = false;
    await waitFor('all four through', async () => broker.ready('Engine_b').length === 4, 10_000);
    assert.deepEqual(seen, [0, 1, 2, 3], 'in arrival order, none skipped');
    assert.equal(broker.ready('Engine_a.dead').length, 0, 'a store fault never dead-letters');
    await waitFor('consuming again', async () => broker.consumers('Engine_a') === 1 && engine.readiness.ready);
  } finally {
    await engine.stop();
  }
});

test('a connection lost before the confirms: inputs are not acked, the broker redelivers them, the engine reconnects and passes them on', async () => {
  const { engine, broker } = await started(pass, { name: 'a', eventProcessing: 'test.pass.event_processing', next: ['b'] });
  try {
    broker.holdConfirms();
    for (let i = 0; i < 3; i++) broker.publishTo('Engine_a', ev(i));
    await waitFor('3 processed', async () => engine.stats.processed === 3);
    broker.dropConnections();
    assert.equal(broker.ready('Engine_a').length, 3, 'back in the queue, unacked');
    assert.ok(broker.ready('Engine_a').every((s) => s.redelivered));
    broker.releaseConfirms();
    await waitFor('processed again after the reconnect', async () => engine.stats.processed === 6, 10_000);
    await waitFor('acked on the new channel', async () => broker.unacked('Engine_a') === 0 && broker.ready('Engine_a').length === 0);
    // At least once: the first copies were routed before the loss, the second after.
    const got = broker.ready('Engine_b').map((s) => body(s).n);
    assert.deepEqual([...new Set(got)].sort(), [0, 1, 2]);
    assert.equal(engine.readiness.ready, true);
  } finally {
    await engine.stop();
  }
});

test('a stop finishes the event in flight, acks it, and leaves the queue to the broker', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const slow: TaskModule = {
    name: 'test.slow',
    event_processing: async (_e, event) => {
      if (event.n === 0) await gate;
      return event;
    },
  };
  const { engine, broker } = await started(slow, { name: 'a', eventProcessing: 'test.slow.event_processing', next: ['b'] });
  broker.publishTo('Engine_a', ev(0));
  await waitFor('the slow event taken', async () => engine.stats.received >= 1);
  const stopping = engine.stop();
  await waitFor('consumer cancelled at once', async () => broker.consumers('Engine_a') === 0);
  broker.publishTo('Engine_a', ev(1));
  release();
  await stopping;
  assert.deepEqual(
    broker.ready('Engine_b').map((s) => body(s).n),
    [0],
    'the one in flight went through',
  );
  assert.equal(broker.unacked('Engine_a'), 0);
  assert.deepEqual(
    broker.ready('Engine_a').map((s) => body(s).n),
    [1],
    'what came after the stop waits in the queue',
  );
});

test('a stop during a store fault leaves the held events unacked for redelivery', async () => {
  const { engine, broker } = await started(
    {
      name: 'test.down',
      event_processing: () => {
        throw new BrokerUnavailable('no broker');
      },
    },
    { name: 'a', eventProcessing: 'test.down.event_processing', next: ['b'] },
  );
  broker.publishTo('Engine_a', ev(0));
  broker.publishTo('Engine_a', ev(1));
  await waitFor('held', async () => engine.readiness.fault !== undefined);
  await engine.stop();
  assert.equal(broker.ready('Engine_b').length, 0);
  assert.equal(broker.ready('Engine_a.dead').length, 0, 'nothing dead-lettered');
  assert.deepEqual(
    broker
      .ready('Engine_a')
      .map((s) => body(s).n)
      .sort(),
    [0, 1],
    'both back in the queue',
  );
});

test('a partitioned engine: worker 0 routes each key to one partition, and each worker sees its keys in order', async () => {
  const seen = new Map<number, string[]>();
  const keyed: TaskModule = {
    name: 'test.keyed',
    partition: (e) => String(e.component),
    event_processing: (h, event) => {
      const list = seen.get(h.worker) ?? [];
      list.push(`${event.component}:${event.n}`);
      seen.set(h.worker, list);
      return event;
    },
  };
  const broker = new MemoryBroker();
  const config = { name: 'axe', eventProcessing: 'test.keyed.event_processing', next: ['sink'], numprocs: 2 };
  const workers = [engineOn(broker, keyed, config, { worker: 0 }), engineOn(broker, keyed, config, { worker: 1 })];
  try {
    for (const w of workers) await w.start();
    assert.deepEqual(
      workers.map((w) => w.queue),
      ['Engine_axe.0', 'Engine_axe.1'],
    );
    for (let n = 0; n < 20; n++) broker.publishTo('Engine_axe', JSON.stringify({ component: `host${n % 4}`, n }));
    await waitFor('all 20 through', async () => broker.ready('Engine_sink').length === 20, 10_000);
    const where = new Map<string, number>();
    for (const [worker, list] of seen) {
      for (const item of list) {
        const [host] = item.split(':');
        assert.equal(where.get(host!) ?? worker, worker, `${host} always on one worker`);
        where.set(host!, worker);
      }
      for (const host of new Set(list.map((i) => i.split(':')[0]))) {
        const ns = list.filter((i) => i.startsWith(`${host}:`)).map((i) => Number(i.split(':')[1]));
        assert.deepEqual(
          ns,
          [...ns].sort((a, b) => a - b),
          `${host} in order`,
        );
      }
    }
    assert.equal(where.size, 4);
    assert.equal(broker.ready('Engine_axe').length + broker.unacked('Engine_axe'), 0, 'the home queue drained');
  } finally {
    for (const w of workers) await w.stop();
  }
});

test('a job sent to Dispatcher_<name> is done once per engine type, whichever process takes it', async () => {
  const done: Array<{ worker: number; job: unknown }> = [];
  const mod: TaskModule = {
    name: 'test.jobs',
    beat_processing: async () => undefined,
    consume_dispatcher: (h, job) => {
      done.push({ worker: h.worker, job });
    },
  };
  const broker = new MemoryBroker();
  const config = { name: 'tick', beatProcessing: 'test.jobs.beat_processing' };
  const workers = [engineOn(broker, mod, config, { worker: 0 }), engineOn(broker, mod, config, { worker: 1 })];
  try {
    for (const w of workers) await w.start();
    for (let i = 0; i < 6; i++) await workers[i % 2]!.dispatch({ job: i });
    await waitFor('six jobs done', async () => done.length === 6);
    assert.deepEqual(done.map((d) => (d.job as { job: number }).job).sort(), [0, 1, 2, 3, 4, 5], 'each job once');
    assert.equal(workers[0]!.stats.jobs + workers[1]!.stats.jobs, 6);
    assert.equal(broker.unacked('Dispatcher_tick'), 0);
  } finally {
    for (const w of workers) await w.stop();
  }
});

test('a channel that refuses every publish is given up with its connection: the engine connects again and nothing is lost', async () => {
  const { engine, broker } = await started(pass, { name: 'a', eventProcessing: 'test.pass.event_processing', next: ['b'] });
  try {
    // As a quorum queue's channel opened during a leader election: refused for as long as it lives.
    broker.refuse('Engine_b', NACKS_BEFORE_RECONNECT);
    broker.publishTo('Engine_a', ev(1));
    await waitFor('the event through, on a new connection', async () => broker.ready('Engine_b').length === 1, 10_000);
    assert.equal(body(broker.ready('Engine_b')[0]!).n, 1);
    await waitFor('input acked', async () => broker.unacked('Engine_a') === 0 && broker.ready('Engine_a').length === 0);
    assert.equal(engine.stats.retries, NACKS_BEFORE_RECONNECT - 1, 'retried on the channel, then dropped it');
    await waitFor('consuming again', async () => broker.consumers('Engine_a') === 1);
  } finally {
    await engine.stop();
  }
});
