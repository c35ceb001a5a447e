import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { readBrokerConfig } from '../../runtime/config/files.js';
import { waitFor } from '../helpers/index.js';
import { createSite, type Site } from '../helpers/site.js';

/*
 * Several hosts on one machine (issue 19): seven network namespaces on a
 * private subnet that no route leaves, each installed by build-install as
 * root into its own prefix with its roles, and started:
 *
 *   b1 b2 b3   broker: one RabbitMQ cluster (classic config), quorum queues
 *   store      store: its own PostgreSQL
 *   e1 e2      engines: the fused chain, the site's workers split in two
 *   web        webserver: the API, and the probe that proves the site works
 *
 * 20,000 events go in from the web host while one broker node (the first,
 * which every client reached first) and one engines host's engines are
 * killed with SIGKILL; every alarm must be there, the duplicates are
 * counted, and the killed node is back in the cluster.
 */

const EVENTS = 20_000;
// Paced so that the kills land while events are still coming in, not only while they wait in the queues.
const RATE = 250;

let site: Site;
const skip = process.getuid?.() === 0 ? false : 'needs root (ip netns, installs as root)';

before(async () => {
  if (skip) return;
  site = await createSite({ prefix: 'cps19', subnet: '10.231.19', brokers: 3, engineHosts: 2, web: true });
});

after(async () => {
  await site?.teardown();
});

test('a site of seven hosts: broker cluster, store, two engines hosts and a webserver, each installed with its roles', {
  skip,
}, async () => {
  // The broker nodes start together and find each other from the list.
  await Promise.all(['b1', 'b2', 'b3'].map((h) => site.install(h)));
  await waitFor(
    'three running nodes in the cluster',
    async () => ((await site.runningNodes('b1')).length === 3 ? true : undefined),
    120_000,
    1000,
  );
  await site.install('store');
  await Promise.all(['e1', 'e2'].map((h) => site.install(h)));
  // The webserver host probes the whole site: an event through the cluster, the engines elsewhere and the store, back through its API.
  await site.install('web');

  const amqp = await readFile(path.join(site.prefixOf('e1'), 'etc', 'amqp.conf'), 'utf8');
  assert.match(amqp, /^queue_type = quorum$/m);
  assert.match(amqp, new RegExp(`^host = ${site.ipOf('b1')},${site.ipOf('b2')},${site.ipOf('b3')}$`, 'm'));
  // e2 runs the second half of the site's workers.
  const e2ini = await readFile(path.join(site.prefixOf('e2'), 'etc', 'engines', 'fused-cleaner.ini'), 'utf8').catch(() => '');
  assert.match(e2ini, /numprocs_start=1/);
});

test('20,000 events while a broker node and an engines host are killed: every alarm stored, duplicates counted, the node rejoins', {
  skip,
}, async () => {
  const broker = await readBrokerConfig(site.prefixOf('e1'));
  const run = `run${Date.now()}`;
  const publisher = site.spawnTool('web', 'publish', broker.urls.join(','), String(EVENTS), run, String(RATE));

  // In the middle: the first node (where every client connected first) and e2's engines, SIGKILL.
  await waitFor('a quarter of the alarms', async () => ((await site.counted(run)).alarms >= EVENTS / 4 ? true : undefined), 300_000, 1000);
  const beams = await site.pidsOf('b1', /beam\.smp/);
  const engines = await site.pidsOf('e2', /engine-launcher/);
  assert.ok(beams.length > 0 && engines.length > 0, `beam ${beams} engines ${engines}`);
  for (const pid of [...beams, ...engines]) process.kill(pid, 'SIGKILL');

  const published = await publisher;
  assert.equal(published.exitCode, 0, published.all);
  const result = JSON.parse(String(published.stdout).trim().split('\n').at(-1)!) as { sent: number; reconnects: number };
  assert.equal(result.sent, EVENTS);
  assert.ok(result.reconnects >= 1, 'the publisher was on the killed node, and went on through another');

  await waitFor('every alarm in the store', async () => ((await site.counted(run)).alarms >= EVENTS ? true : undefined), 600_000, 2000);
  const final = await site.counted(run, true);
  assert.equal(final.alarms, EVENTS, 'one alarm per resource: none lost, none doubled');
  const duplicates = final.events - EVENTS;
  assert.ok(duplicates >= 0);
  process.stdout.write(
    `# site: ${EVENTS} events, ${final.alarms} alarms, ${duplicates} events counted twice (publisher reconnects: ${result.reconnects})\n`,
  );

  // supervisord brought the node back: it rejoins the cluster by itself.
  await waitFor(
    'the killed node back among the running nodes',
    async () => ((await site.runningNodes('b2')).length === 3 ? true : undefined),
    180_000,
    2000,
  );
  // And e2's engines consume their partitions again (worker 1 of the site: Engine_<name>.1).
  await waitFor(
    "e2's partitions consumed again",
    async () => {
      const c = await site.queueConsumers('b2');
      return ['Engine_cleaner.1', 'Engine_axe.1'].every((q) => (c.get(q) ?? 0) >= 1) ? true : undefined;
    },
    120_000,
    1000,
  );
});

test("each entity's events keep their order across the two engines hosts; a malformed event is a dead letter with its reason", {
  skip,
}, async () => {
  const broker = await readBrokerConfig(site.prefixOf('e1'));
  const run = `seq${Date.now()}`;
  const N = 1000;
  const sent = await site.tool('web', 'sequence', broker.urls.join(','), String(N), run);
  assert.equal(sent.exitCode, 0, sent.all);
  const states = await waitFor(
    'every sequence applied',
    async () => {
      const r = await site.tool('web', 'states', site.storeUrl, String(N), run);
      if (r.exitCode !== 0) throw new Error(r.all);
      const s = JSON.parse(String(r.stdout).trim().split('\n').at(-1)!) as { alarms: number; right: number };
      return s.alarms === N && s.right === N ? s : undefined;
    },
    300_000,
    2000,
  );
  assert.equal(states.right, N, 'every alarm ends in the state of its last event');

  const bad = await site.tool('web', 'raw', broker.urls.join(','), '{"connector": "site-test", "event_type": ');
  assert.equal(bad.exitCode, 0, bad.all);
  const e1 = site.prefixOf('e1');
  const letters = await waitFor(
    'the dead letter',
    async () => {
      const r = await site.net.exec('e1', path.join(e1, 'bin', 'dead-letters'), ['list', 'cleaner', '--json'], { env: { CPS_PREFIX: e1 } });
      if (r.exitCode !== 0) throw new Error(r.all);
      const list = JSON.parse(String(r.stdout)) as Array<{ total: number; reasons: Array<{ reason: string }> }>;
      return list[0]!.total > 0 ? list[0]! : undefined;
    },
    60_000,
    1000,
  );
  assert.match(letters.reasons[0]!.reason, /JSON|malformed|parse/i);
});
