import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import amqp from 'amqplib';
import ini from 'ini';
import { Supervisor } from '../installer/control/supervisor.js';
import { apiFetch } from '../test/helpers/api.js';
import { bundleOfCommit, currentBundle, trustIn, V1_COMMIT } from '../test/helpers/bundles.js';
import { buildInstall, removeDir, run, tempDir, waitFor } from '../test/helpers/index.js';
import { writeSection } from './report.js';

/*
 * Update time (v1 -> v2 and no-change) on a running appliance, and how long
 * the event pipeline stopped consuming meanwhile, with a connector publishing
 * the whole time: the broker queues, nothing is lost. v1 is 0.2.0 built from
 * its commit, v2 this tree; v2 reshapes the stored entities, so the engines
 * stay stopped while that runs.
 */

const PRELOAD = 3_000;

const BASE = 5880;
const SETS = [
  `rabbitmq.port=${BASE}`,
  `rabbitmq.dist_port=${BASE + 1}`,
  `rabbitmq.management_port=${BASE + 2}`,
  `webserver.port=${BASE + 3}`,
  `rabbitmq.node_name=cpsbench${BASE}@localhost`,
].flatMap((s) => ['--set', s]);

export async function benchUpdate(): Promise<void> {
  const dir = await tempDir('bench-update');
  const prefix = path.join(dir, 'canopsis');
  try {
    const v1 = await bundleOfCommit(V1_COMMIT);
    const { file: v2, publicKey } = await currentBundle(dir);
    const inst = await buildInstall(['install', '--bundle', v1, '--prefix', prefix, ...SETS, '--start', '--allow-unsigned']);
    if (inst.exitCode !== 0) throw new Error(inst.all);
    await trustIn(prefix, publicKey);
    const m = ini.parse(await readFile(path.join(prefix, 'etc', 'amqp.conf'), 'utf8')).master;
    const url = `amqp://${m.userid}:${encodeURIComponent(m.password)}@127.0.0.1:${m.port}/${m.virtual_host}`;
    const key = ini.parse(await readFile(path.join(prefix, 'etc', 'canopsis-secrets.ini'), 'utf8')).api.authkey;
    const openAlarms = async () => {
      const all = await apiFetch(prefix, '/alarms?opened=true&limit=1', { headers: { 'x-canopsis-authkey': key } });
      return ((await all.json()) as { meta: { total_count: number } }).meta.total_count;
    };

    // A connector publishing 200 events/s, and a watcher of the entry queue's consumers, during v1 -> v2.
    const conn = await amqp.connect(url);
    const pub = await conn.createConfirmChannel();
    const watch = await conn.createChannel();
    let sent = 0;
    let stop = false;
    const event = (resource: string) => ({
      connector: 'bench',
      connector_name: 'update',
      event_type: 'check',
      source_type: 'resource',
      component: 'upd',
      resource,
      state: 1,
      output: 'x',
    });
    // Entities for v2's migration to reshape.
    for (let i = 0; i < PRELOAD; i++)
      pub.publish('canopsis.events', 'bench', Buffer.from(JSON.stringify(event(`pre${i}`))), { persistent: true });
    await pub.waitForConfirms();
    await waitFor('the preloaded events as alarms', async () => (await openAlarms()) >= PRELOAD, 120_000, 500);
    const base = await openAlarms();
    const publisher = (async () => {
      while (!stop) {
        for (let i = 0; i < 20; i++) {
          pub.publish('canopsis.events', 'bench', Buffer.from(JSON.stringify(event(`r${sent}`))), { persistent: true });
          sent++;
        }
        await pub.waitForConfirms();
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    let downSince: number | undefined;
    let downtime = 0;
    const watcher = (async () => {
      while (!stop) {
        const q = await watch.checkQueue('Engine_cleaner');
        const now = performance.now();
        if (q.consumerCount === 0) downSince ??= now;
        else if (downSince !== undefined) {
          downtime += now - downSince;
          downSince = undefined;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    let t = performance.now();
    const up = await buildInstall(['update', '--bundle', v2, '--prefix', prefix]);
    const v1v2 = (performance.now() - t) / 1000;
    stop = true;
    await publisher;
    await watcher;
    if (up.exitCode !== 0) throw new Error(up.all);
    const total = await waitFor(
      'every event as an alarm',
      async () => {
        const n = (await openAlarms()) - base;
        return n >= sent ? n : undefined;
      },
      120_000,
      500,
    );

    const pids = async () =>
      new Map((await new Supervisor(prefix).status()).map((p) => [p.name, /pid (\d+)/.exec(p.description)?.[1] ?? p.state]));
    const before = await pids();
    t = performance.now();
    const same = await buildInstall(['update', '--bundle', v2, '--prefix', prefix]);
    const noChange = (performance.now() - t) / 1000;
    if (same.exitCode !== 0) throw new Error(same.all);
    const after = await pids();
    const noChangeRestarted = [...before].filter(([name, pid]) => after.get(name) !== pid).map(([name]) => name);
    await pub.close();
    await watch.close();
    await conn.close();
    const md = `## Updates of a running appliance

Measured ${new Date().toISOString().slice(0, 10)} with \`npm run bench\` (bench/update.ts) on ${os.cpus().length} cores. v1 is 0.2.0 built from its commit, v2 this tree (0.4.0): it renames a setting and reshapes the stored entities (${PRELOAD} resources preloaded), so the engines and the webserver are stopped while the migration runs; then they restart, the health check sends a probe through the API. The broker's configuration did not change: it keeps running and queueing.

| update | seconds |
| --- | ---: |
| v1 -> v2 (with migrations) | ${v1v2.toFixed(1)} |
| no-change (v2 -> v2) | ${noChange.toFixed(1)} |

During v1 -> v2 a connector published ${sent} events (${(sent / v1v2).toFixed(0)}/s): the entry engine had no consumer for **${(downtime / 1000).toFixed(1)} s** in total; the broker queued them and all ${sent} became alarms afterwards (${total} new open alarms counted), none lost.

The no-change update gives the same bundle again: it is not extracted a second time (its release was placed from that very file), every validator's verdict is unchanged, nothing is written, so nothing restarts and no probe is sent (${noChangeRestarted.length ? `but these restarted: ${noChangeRestarted.join(', ')}` : "supervisord's processes kept their pids"}); bench/install.ts has its steps.`;
    console.log(md);
    await writeSection('update', md);
  } finally {
    await run(path.join(prefix, 'bin', 'hypcontrol'), ['stop'], { env: { CPS_PREFIX: prefix } });
    await run('pkill', ['-9', '-f', prefix]);
    await removeDir(dir);
  }
}
