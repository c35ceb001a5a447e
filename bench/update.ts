import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import amqp from 'amqplib';
import ini from 'ini';
import { buildInstall, removeDir, run, tempDir, waitFor } from '../test/helpers/index.js';
import { writeSection } from './report.js';

/*
 * Update time (no-change and v1 -> v2) on a running appliance, and how long
 * the event pipeline stopped consuming meanwhile, with a connector publishing
 * the whole time: the broker queues, nothing is lost.
 */

const BASE = 5880;
const SETS = [`rabbitmq.port=${BASE}`, `rabbitmq.dist_port=${BASE + 1}`, `rabbitmq.management_port=${BASE + 2}`, `webserver.port=${BASE + 3}`, `rabbitmq.node_name=cpsbench${BASE}@localhost`].flatMap((s) => ['--set', s]);

async function v2Of(v1: string, dir: string): Promise<string> {
  const out = path.join(dir, 'canopsis-next.tar.gz');
  const py = `
import tarfile, io, json, hashlib, sys
src = tarfile.open(sys.argv[1], 'r:gz'); dst = tarfile.open(sys.argv[2], 'w:gz')
members = src.getmembers(); data = {m.name: src.extractfile(m).read() for m in members if m.isfile()}
top = members[0].name.split('/')[0]
rel = 'release/package.json'
b = json.dumps(dict(json.loads(data[top + '/' + rel]), version='9.9.9')).encode(); data[top + '/' + rel] = b
man = json.loads(data[top + '/MANIFEST.json']); man['version'] = '9.9.9'; man['release'] = '9.9.9+bench'
man['files'][rel]['sha256'] = hashlib.sha256(b).hexdigest(); man['files'][rel]['size'] = len(b)
data[top + '/MANIFEST.json'] = json.dumps(man).encode()
for m in members:
    if m.isfile(): m.size = len(data[m.name]); dst.addfile(m, io.BytesIO(data[m.name]))
    else: dst.addfile(m)
dst.close()
`;
  const r = await run('python3', ['-c', py, v1, out]);
  if (r.exitCode !== 0) throw new Error(r.all);
  return out;
}

export async function benchUpdate(): Promise<void> {
  const dir = await tempDir('bench-update');
  const prefix = path.join(dir, 'canopsis');
  try {
    const b = await buildInstall(['bundle', '--out', dir, '--json']);
    const v1 = JSON.parse(b.stdout).file as string;
    const v2 = await v2Of(v1, dir);
    const inst = await buildInstall(['install', '--bundle', v1, '--prefix', prefix, ...SETS, '--start']);
    if (inst.exitCode !== 0) throw new Error(inst.all);
    const m = ini.parse(await readFile(path.join(prefix, 'etc', 'amqp.conf'), 'utf8')).master;
    const url = `amqp://${m.userid}:${encodeURIComponent(m.password)}@127.0.0.1:${m.port}/${m.virtual_host}`;

    let t = performance.now();
    const same = await buildInstall(['update', '--bundle', v1, '--prefix', prefix]);
    const noChange = (performance.now() - t) / 1000;
    if (same.exitCode !== 0) throw new Error(same.all);

    // A connector publishing 200 events/s, and a watcher of the entry queue's consumers, during v1 -> v2.
    const conn = await amqp.connect(url);
    const pub = await conn.createConfirmChannel();
    const watch = await conn.createChannel();
    let sent = 0;
    let stop = false;
    const publisher = (async () => {
      while (!stop) {
        for (let i = 0; i < 20; i++) {
          const e = { connector: 'bench', connector_name: 'update', event_type: 'check', source_type: 'resource', component: 'upd', resource: `r${sent}`, state: 1, output: 'x' };
          pub.publish('canopsis.events', 'bench', Buffer.from(JSON.stringify(e)), { persistent: true });
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
    t = performance.now();
    const up = await buildInstall(['update', '--bundle', v2, '--prefix', prefix]);
    const v1v2 = (performance.now() - t) / 1000;
    stop = true;
    await publisher;
    await watcher;
    if (up.exitCode !== 0) throw new Error(up.all);
    const key = ini.parse(await readFile(path.join(prefix, 'etc', 'canopsis-secrets.ini'), 'utf8')).api.authkey;
    const total = await waitFor('every event as an alarm', async () => {
      const all = await fetch(`http://127.0.0.1:${BASE + 3}/api/v4/alarms?opened=true&limit=1`, { headers: { 'x-canopsis-authkey': key } });
      const n = ((await all.json()) as { meta: { total_count: number } }).meta.total_count;
      // The --start probe may still be open (it resolves after resolve_delay): at least every sent event.
      return n >= sent ? n : undefined;
    }, 120_000, 500);
    await pub.close();
    await watch.close();
    await conn.close();
    const md = `## Updates of a running appliance

Measured ${new Date().toISOString().slice(0, 10)} with \`npm run bench\` (bench/update.ts) on ${os.cpus().length} cores: bundles of this tree (v1) and of the same tree as version 9.9.9 (v2); the update restarts the engines and the webserver (the broker's configuration did not change, so it keeps running and queueing), health-checks and probes.

| update | seconds |
| --- | ---: |
| no-change (v1 -> v1) | ${noChange.toFixed(1)} |
| v1 -> v2 | ${v1v2.toFixed(1)} |

During v1 -> v2 a connector published ${sent} events (${(sent / v1v2).toFixed(0)}/s): the entry engine had no consumer for **${(downtime / 1000).toFixed(1)} s** in total; the broker queued them and all ${sent} became alarms afterwards (${total} open alarms counted, the --start probe possibly among them), none lost.`;
    console.log(md);
    await writeSection('update', md);
  } finally {
    await run(path.join(prefix, 'bin', 'hypcontrol'), ['stop'], { env: { CPS_PREFIX: prefix } });
    await run('pkill', ['-9', '-f', prefix]);
    await removeDir(dir);
  }
}
