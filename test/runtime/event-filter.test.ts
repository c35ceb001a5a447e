import assert from 'node:assert/strict';
import { utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { applyRules, compileRules } from '../../runtime/engines/event-filter-rules.js';
import { DROP } from '../../runtime/tasks/types.js';
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
 * event_filter's rules: matching and actions (pure), then the engine on the
 * broker reloading its file on beat and keeping the last good rules.
 */

test('rules: equality, regex and set matches; drop, pass, set then continue, route', () => {
  const rules = compileRules(
    `rules:
  - match: { component: { regex: "^test-" } }
    action: drop
  - match: { connector: nagios, state: { in: [2, 3] } }
    action: { set: { priority: high } }
  - match: { priority: high }
    action: { route: [pager, axe] }
  - match: { state: 0 }
    action: pass
  - match: { output: { equals: "never" } }
    action: drop
`,
    'rules.yaml',
  );
  assert.equal(applyRules(rules, checkEvent(1, { component: 'test-1' })), DROP);
  assert.deepEqual(applyRules(rules, checkEvent(2, { state: 2 })), {
    route: ['pager', 'axe'],
    event: { ...checkEvent(2, { state: 2 }), priority: 'high' },
  });
  assert.deepEqual(
    applyRules(rules, checkEvent(4, { state: 0, output: 'never' })),
    checkEvent(4, { state: 0, output: 'never' }),
    'pass ends the rules',
  );
  assert.deepEqual(applyRules(rules, checkEvent(5, { state: 1 })), checkEvent(5, { state: 1 }), 'no rule ends: passes on');
});

test('a bad rules file is refused naming the rule and field', () => {
  assert.throws(
    () => compileRules('rules:\n  - match: { a: { regex: "(" } }\n    action: drop\n', 'f.yaml'),
    /f\.yaml: rules\.0\.match\.a: bad regex "\("/,
  );
  assert.throws(() => compileRules('rules:\n  - match: {}\n    action: explode\n', 'f.yaml'), /f\.yaml: rules\.0\.action/);
  assert.throws(() => compileRules('rules: [\n', 'f.yaml'), /f\.yaml: not valid YAML/);
});

let vhost: Vhost;
let dir: string;
let filter: EngineProcess;

const CONF = `
[engine:event_filter]
event_processing=canopsis.event_filter.process.event_processing
beat_processing=canopsis.event_filter.process.beat_processing
beat_interval=0.2
exchange=canopsis.events
next=sink

[engine:other]
event_processing=canopsis.cleaner.process.event_processing
`;

const RULES_V1 = 'rules:\n  - match: { component: host1 }\n    action: drop\n';
const RULES_V2 = 'rules:\n  - match: { component: host2 }\n    action: drop\n';

before(async () => {
  vhost = await freshVhost('filter');
  dir = await tempDir('filter');
  await writeRuntimePrefix(dir, { vhost: vhost.name, engines: CONF, files: { 'etc/event_filter.yaml': RULES_V1 } });
  filter = startEngine(dir, 'event_filter', 0, ['--stats-interval', '1']);
  await whenConsuming(filter);
});

after(async () => {
  await stopEngine(filter);
  await vhost.remove();
  await removeDir(dir);
});

const components = (msgs: Array<{ body: Buffer }>) =>
  msgs
    .map((m) => JSON.parse(m.body.toString()))
    .filter((e) => e.seq !== undefined)
    .map((e) => e.component as string);

test('the engine reloads changed rules on beat and keeps the last good ones when a new file is bad', async () => {
  const rulesFile = path.join(dir, 'etc', 'event_filter.yaml');
  const sink = await collect(vhost.url, 'Engine_sink', engineQueueArgs('Engine_sink'));
  const send = (tag: number) =>
    publishEvents(
      vhost.url,
      [1, 2, 3].map((c) => checkEvent(tag, { component: `host${c}` })),
    );

  await send(1);
  await waitFor('v1 applied', async () => components(sink.messages).length === 2);
  assert.deepEqual(components(sink.messages).sort(), ['host2', 'host3']);

  const loads = () => filter.logs().split('event filter rules loaded').length - 1;
  const before = loads();
  await writeFile(rulesFile, RULES_V2);
  await utimes(rulesFile, new Date(), new Date(Date.now() + 2000));
  await waitFor('v2 loaded', async () => loads() > before);
  sink.messages.length = 0;
  await send(2);
  await waitFor('v2 applied', async () => components(sink.messages).length === 2);
  assert.deepEqual(components(sink.messages).sort(), ['host1', 'host3']);

  await writeFile(rulesFile, 'rules:\n  - match: { component: { regex: "[" } }\n    action: drop\n');
  await utimes(rulesFile, new Date(), new Date(Date.now() + 5000));
  await waitFor('the bad file reported', async () => /event filter rules rejected; keeping the last good rules/.test(filter.logs()));
  assert.match(filter.logs(), /bad regex/);
  sink.messages.length = 0;
  await send(3);
  await waitFor('v2 still applied', async () => components(sink.messages).length === 2);
  assert.deepEqual(components(sink.messages).sort(), ['host1', 'host3']);
  assert.equal(filter.nodeChildProcess.exitCode, null, 'the engine keeps running');
  await sink.stop();
});

test('an engine publishes its own perf event (rate, seconds per event, queue depth)', async () => {
  // The entry engine receives what goes to canopsis.events, its own stats included.
  const sink = await collect(vhost.url, 'Engine_sink', engineQueueArgs('Engine_sink'));
  await waitFor(
    'a self-stats perf event',
    async () => sink.messages.some((m) => JSON.parse(m.body.toString()).resource === 'Engine_event_filter.0'),
    20_000,
  );
  const perf = JSON.parse(sink.messages.find((m) => JSON.parse(m.body.toString()).resource === 'Engine_event_filter.0')!.body.toString());
  assert.equal(perf.event_type, 'perf');
  assert.equal(perf.connector, 'Engine');
  assert.deepEqual(
    perf.perf_data_array.map((p: { metric: string }) => p.metric),
    ['cps_evt_per_sec', 'cps_sec_per_evt', 'cps_queue_size'],
  );
  assert.ok(perf.perf_data_array.every((p: { value: number }) => Number.isFinite(p.value) && p.value >= 0));
  await sink.stop();
});
