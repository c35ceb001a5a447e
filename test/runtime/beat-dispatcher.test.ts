import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import amqp from 'amqplib';
import { type EngineProcess, freshVhost, LAUNCHER, startEngine, stopEngine, type Vhost, writeRuntimePrefix } from '../helpers/broker.js';
import { removeDir, run, tempDir, waitFor } from '../helpers/index.js';

/*
 * beat_processing never overlaps itself, and a Dispatcher_<name> job is
 * processed by exactly one of the engine's processes.
 */

let vhost: Vhost;
let dir: string;
const procs: EngineProcess[] = [];

const CONF = `
[engine:worker]
beat_processing=test.worker.beat_processing
beat_interval=0.1

[engine:cleaner]
event_processing=canopsis.cleaner.process.event_processing
exchange=canopsis.events
`;

// A beat slower than its interval, and a job that takes a little time.
const WORKER = `
import { appendFileSync } from 'node:fs';
const log = (engine, file, line) => appendFileSync(engine.prefix + '/' + file, line + '\\n');
export default {
  name: 'test.worker',
  beat_processing: async (engine) => {
    log(engine, 'beats-' + engine.worker, 'start ' + Date.now());
    await new Promise((r) => setTimeout(r, 250));
    log(engine, 'beats-' + engine.worker, 'end ' + Date.now());
  },
  consume_dispatcher: async (engine, job) => {
    await new Promise((r) => setTimeout(r, 30));
    log(engine, 'jobs', engine.worker + ' ' + job.id);
  },
};
`;

before(async () => {
  vhost = await freshVhost('beat');
  dir = await tempDir('beat');
  await writeRuntimePrefix(dir, { vhost: vhost.name, engines: CONF, plugins: { 'worker.mjs': WORKER } });
  for (const w of [0, 1, 2]) procs.push(startEngine(dir, 'worker', w));
  // A beat-only engine consumes no events: it is up once it logged its connection.
  await waitFor('three workers connected', async () => procs.every((p) => /connected to the broker/.test(p.logs())), 20_000);
});

after(async () => {
  await Promise.all(procs.map((p) => stopEngine(p)));
  await vhost.remove();
  await removeDir(dir);
});

const lines = async (file: string) => (await readFile(path.join(dir, file), 'utf8').catch(() => '')).trim().split('\n').filter(Boolean);

test('a beat slower than beat_interval never overlaps itself', async () => {
  await waitFor('5 beats in worker 0', async () => (await lines('beats-0')).filter((l) => l.startsWith('end')).length >= 5, 20_000);
  const events = (await lines('beats-0')).map((l) => l.split(' ') as [string, string]);
  for (let i = 0; i + 1 < events.length; i++) {
    assert.equal(events[i]![0], i % 2 === 0 ? 'start' : 'end', `beat ${Math.floor(i / 2)} starts then ends before the next starts`);
    assert.ok(Number(events[i + 1]![1]) >= Number(events[i]![1]));
  }
});

test('each Dispatcher_ job is processed exactly once across 3 processes, by whichever is free', async () => {
  const conn = await amqp.connect(vhost.url);
  const ch = await conn.createConfirmChannel();
  const N = 60;
  for (let i = 0; i < N; i++) ch.publish('', 'Dispatcher_worker', Buffer.from(JSON.stringify({ id: `job-${i}` })), { persistent: true });
  await ch.waitForConfirms();
  await ch.close();
  await conn.close();
  await waitFor(`${N} jobs done`, async () => (await lines('jobs')).length >= N, 30_000);
  const done = (await lines('jobs')).map((l) => l.split(' ') as [string, string]);
  const ids = done.map(([, id]) => id);
  assert.equal(new Set(ids).size, N);
  assert.equal(ids.length, N, 'no job ran twice');
  const byWorker = new Set(done.map(([w]) => w));
  assert.ok(byWorker.size >= 2, `jobs spread over the free processes (${[...byWorker].join(', ')})`);
});

test('configuration errors are reported before connecting, with a non-zero exit', async () => {
  const launch = (...args: string[]) =>
    run(process.execPath, [LAUNCHER, '--prefix', dir, '--stats-interval', '0', ...args], { timeout: 20_000 });
  const unknownEngine = await launch('-e', 'dynamic', '-n', 'nosuch', '-w', '0', '-l', 'info');
  assert.equal(unknownEngine.exitCode, 2);
  assert.match(unknownEngine.stderr, /amqp2engines\.conf: no \[engine:nosuch\] section \(engines: worker, cleaner\)/);
  const badType = await launch('-e', 'static', '-n', 'worker');
  assert.equal(badType.exitCode, 2);
  assert.match(badType.stderr, /-e static: unknown engine type/);
  const badLevel = await launch('-e', 'dynamic', '-n', 'worker', '-l', 'loud');
  assert.equal(badLevel.exitCode, 2);
  assert.match(badLevel.stderr, /-l loud: unknown log level/);

  const other = await tempDir('beat-bad');
  try {
    // The broker port is closed: a launcher that tried to connect would retry forever instead of exiting.
    await writeRuntimePrefix(other, { vhost: 'none', engines: '[engine:x]\nevent_processing=canopsis.nope.process.event_processing\n' });
    await import('node:fs/promises').then((fs) =>
      fs.writeFile(path.join(other, 'etc', 'amqp.conf'), '[master]\nhost=127.0.0.1\nport=1\nuserid=u\npassword=p\nvirtual_host=v\n'),
    );
    const unknownTask = await run(process.execPath, [LAUNCHER, '--prefix', other, '-e', 'dynamic', '-n', 'x'], { timeout: 20_000 });
    assert.equal(unknownTask.exitCode, 2, unknownTask.all);
    assert.match(
      unknownTask.stderr,
      /\[engine:x\] event_processing: unknown task canopsis\.nope\.process\.event_processing \(known: .*canopsis\.cleaner\.process\.event_processing/,
    );
    await import('node:fs/promises').then((fs) => fs.rm(path.join(other, 'etc', 'amqp.conf')));
    const noBroker = await run(process.execPath, [LAUNCHER, '--prefix', other, '-e', 'dynamic', '-n', 'x'], { timeout: 20_000 });
    assert.equal(noBroker.exitCode, 2);
    assert.match(noBroker.stderr, /etc\/amqp\.conf: cannot read \(ENOENT\)/);
  } finally {
    await removeDir(other);
  }
  const help = await run(process.execPath, [LAUNCHER, '--help']);
  assert.equal(help.exitCode, 0);
  assert.match(help.stdout, /-publishQueue/);
});
