import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
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
import { ROOT, removeDir, run, tempDir, waitFor } from '../helpers/index.js';

/*
 * Bad input ends in the engine's dead-letter queue with a reason, the
 * engine keeps consuming, and an operator lists, reads and replays it.
 */

let vhost: Vhost;
let dir: string;
let cleaner: EngineProcess;
let bloat: EngineProcess;
const DEAD = path.join(ROOT, 'dist', 'runtime', 'cli', 'dead-letters.js');
const deadLetters = (...args: string[]) => run(process.execPath, [DEAD, ...args, '--prefix', dir]);

const CONF = `
[engine:cleaner]
event_processing=canopsis.cleaner.process.event_processing
next=bloat
exchange=canopsis.events

[engine:bloat]
event_processing=test.bloat.event_processing
next=sink
`;

// Inflates events asking for it past the 1 MiB limit; throws on others asking for it.
const BLOAT = `
import { existsSync } from 'node:fs';
export default {
  name: 'test.bloat',
  event_processing: (engine, event) => {
    if (event.inflate) return { ...event, padding: 'x'.repeat(2 * 1024 * 1024) };
    if (event.explode && !existsSync(engine.prefix + '/etc/boom-fixed')) throw new Error('boom on ' + event.component);
    return event;
  },
};
`;

before(async () => {
  vhost = await freshVhost('dead');
  dir = await tempDir('dead');
  await writeRuntimePrefix(dir, { vhost: vhost.name, engines: CONF, plugins: { 'bloat.mjs': BLOAT } });
  cleaner = startEngine(dir, 'cleaner');
  bloat = startEngine(dir, 'bloat');
  await whenConsuming(cleaner);
  await whenConsuming(bloat);
});

after(async () => {
  await stopEngine(cleaner);
  await stopEngine(bloat);
  await vhost.remove();
  await removeDir(dir);
});

test('malformed events are dead-lettered with their reason and the engines keep consuming', async () => {
  const sink = await collect(vhost.url, 'Engine_sink', engineQueueArgs('Engine_sink'));
  await publishEvents(
    vhost.url,
    ['{not json', '[1,2,3]', '"just a string"', JSON.stringify(checkEvent(8, { output: 'y'.repeat(1024 * 1024) }))],
    true,
  );
  const { component: _c, ...noComponent } = checkEvent(1);
  await publishEvents(vhost.url, [
    noComponent,
    checkEvent(2, { event_type: 'teleport' }),
    checkEvent(3, { state: 7 }),
    checkEvent(4, { source_type: 'resource', resource: '' }),
    checkEvent(5, { inflate: true }),
    checkEvent(6, { explode: true, component: 'hostX' }),
    checkEvent(7),
  ]);
  // The good event after all the bad ones still gets through: nobody stopped.
  await waitFor('the good event at the end', async () => sink.messages.some((m) => JSON.parse(m.body.toString()).seq === 7), 30_000);
  await sink.stop();

  const list = await deadLetters('list', '--json');
  assert.equal(list.exitCode, 0, list.all);
  const byEngine = Object.fromEntries(
    (JSON.parse(list.stdout) as Array<{ engine: string; total: number; reasons: Array<{ reason: string; count: number }> }>).map((r) => [
      r.engine,
      r,
    ]),
  );
  assert.equal(byEngine.cleaner!.total, 8);
  const reasons = byEngine.cleaner!.reasons.map((r) => r.reason).join('\n');
  assert.match(reasons, /^not JSON: /m);
  assert.match(reasons, /event of \d+ bytes exceeds the 1048576-byte event limit/);
  assert.match(reasons, /not an event object \(found an array\)/);
  assert.match(reasons, /not an event object \(found string\)/);
  assert.match(reasons, /missing or empty field: component/);
  assert.match(reasons, /unknown event_type "teleport"/);
  assert.match(reasons, /state must be an integer 0\.\.3 for check \(found 7\)/);
  assert.match(reasons, /missing or empty field: resource \(source_type is resource\)/);
  assert.equal(byEngine.bloat!.total, 2);
  const bloatReasons = byEngine.bloat!.reasons.map((r) => r.reason).join('\n');
  assert.match(bloatReasons, /output of \d+ bytes exceeds the 1048576-byte event limit/);
  assert.match(bloatReasons, /test\.bloat\.event_processing failed: boom on hostX/);
  assert.ok(cleaner.nodeChildProcess.exitCode === null && bloat.nodeChildProcess.exitCode === null, 'both engines still run');

  // Looking does not consume.
  const again = await deadLetters('list', 'cleaner', '--json');
  assert.equal(JSON.parse(again.stdout)[0].total, 8);

  const show = await deadLetters('show', 'cleaner', '1');
  assert.equal(show.exitCode, 0, show.all);
  assert.match(show.stdout, /reason: +not JSON/);
  assert.match(show.stdout, /\{not json/);
});

test('replay puts the chosen dead letters back once the cause is fixed', async () => {
  const sink = await collect(vhost.url, 'Engine_sink', engineQueueArgs('Engine_sink'));
  // Not fixed yet: a replay fails again and is back in the dead-letter queue, once, not lost.
  const first = await deadLetters('replay', 'bloat', '--reason', 'boom', '--json');
  assert.deepEqual(JSON.parse(first.stdout), { engine: 'bloat', replayed: 1, kept: 1 });
  await waitFor(
    'the replayed letter dead again',
    async () => JSON.parse((await deadLetters('list', 'bloat', '--json')).stdout)[0].total === 2,
    30_000,
  );

  // The cause fixed, the same replay gets the event to the end of the chain.
  await writeFile(path.join(dir, 'etc', 'boom-fixed'), '');
  const second = await deadLetters('replay', 'bloat', '--reason', 'boom', '--json');
  assert.deepEqual(JSON.parse(second.stdout), { engine: 'bloat', replayed: 1, kept: 1 });
  await waitFor('the replayed event at the end', async () => sink.messages.some((m) => JSON.parse(m.body.toString()).seq === 6), 30_000);
  const arrived = JSON.parse(sink.messages.find((m) => JSON.parse(m.body.toString()).seq === 6)!.body.toString());
  assert.equal(arrived.component, 'hostX');
  const left = JSON.parse((await deadLetters('list', 'bloat', '--json')).stdout)[0];
  assert.equal(left.total, 1, 'only the oversized one is left');

  // --where selects by event field; an event still invalid is refused again with the same reason.
  const byWhere = await deadLetters('replay', 'cleaner', '--where', 'seq=2', '--json');
  assert.deepEqual(JSON.parse(byWhere.stdout), { engine: 'cleaner', replayed: 1, kept: 7 });
  await waitFor('seq 2 dead again', async () => JSON.parse((await deadLetters('list', 'cleaner', '--json')).stdout)[0].total === 8, 30_000);
  await sink.stop();
});
