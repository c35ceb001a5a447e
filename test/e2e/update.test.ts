import assert from 'node:assert/strict';
import { readFile, readlink, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { buildInstall, run, removeDir, tempDir, waitFor } from '../helpers/index.js';

/*
 * An update whose new version does not come up (its engines exit at start)
 * ends with the old version running, and the operator told why.
 */

const BASE = 5860;
const SETS = [`rabbitmq.port=${BASE}`, `rabbitmq.dist_port=${BASE + 1}`, `rabbitmq.management_port=${BASE + 2}`, `webserver.port=${BASE + 3}`, `rabbitmq.node_name=cpsupd${BASE}@localhost`].flatMap((s) => ['--set', s]);

let dir: string;
let prefix: string;
let v1: string;

before(async () => {
  dir = await tempDir('update');
  prefix = path.join(dir, 'canopsis');
  const b = await buildInstall(['bundle', '--out', dir, '--json']);
  assert.equal(b.exitCode, 0, b.all);
  v1 = JSON.parse(b.stdout).file;
});

after(async () => {
  await run(path.join(prefix, 'bin', 'hypcontrol'), ['stop'], { env: { CPS_PREFIX: prefix } });
  await run('pkill', ['-9', '-f', prefix]);
  await removeDir(dir);
});

/** v2: version 0.3.0 whose engine-launcher exits at once, with a manifest that matches it. */
async function brokenV2(): Promise<string> {
  const out = path.join(dir, 'canopsis-0.3.0.tar.gz');
  const py = `
import tarfile, io, json, hashlib, sys
src = tarfile.open(sys.argv[1], 'r:gz'); dst = tarfile.open(sys.argv[2], 'w:gz')
members = src.getmembers(); data = {m.name: src.extractfile(m).read() for m in members if m.isfile()}
top = members[0].name.split('/')[0]
def patch(rel, f):
    data[top + '/' + rel] = f(data[top + '/' + rel])
patch('release/dist/runtime/cli/engine-launcher.js', lambda b: b'process.stderr.write("v2 engine refuses to start\\\\n"); process.exit(1);\\n' + b)
patch('release/package.json', lambda b: json.dumps(dict(json.loads(b), version='0.3.0')).encode())
man = json.loads(data[top + '/MANIFEST.json'])
man['version'] = '0.3.0'; man['release'] = '0.3.0+broken'
for rel in ['release/dist/runtime/cli/engine-launcher.js', 'release/package.json']:
    b = data[top + '/' + rel]; man['files'][rel]['sha256'] = hashlib.sha256(b).hexdigest(); man['files'][rel]['size'] = len(b)
data[top + '/MANIFEST.json'] = json.dumps(man).encode()
for m in members:
    if m.isfile():
        m.size = len(data[m.name]); dst.addfile(m, io.BytesIO(data[m.name]))
    else:
        dst.addfile(m)
dst.close()
`;
  const r = await run('python3', ['-c', py, v1, out]);
  assert.equal(r.exitCode, 0, r.all);
  return out;
}

test('a failed health check rolls the update back: v1 runs again and the operator is told why', async () => {
  const install = await buildInstall(['install', '--bundle', v1, '--prefix', prefix, ...SETS, '--start']);
  assert.equal(install.exitCode, 0, install.all);
  const before = await readlink(path.join(prefix, 'lib', 'canopsis', 'current'));
  const v2 = await brokenV2();
  const update = await buildInstall(['update', '--bundle', v2, '--prefix', prefix], { env: { ...process.env, CPS_SERVICE_TIMEOUT: '20' } });
  assert.equal(update.exitCode, 9, update.all);
  assert.match(update.stderr, /update to 0\.3\.0 failed its health check \(service amqp2engines restart: .*\); rolled back to 0\.2\.0 \(0\.2\.0\+[0-9a-f]{8}\), running again/);
  assert.equal(await readlink(path.join(prefix, 'lib', 'canopsis', 'current')), before, 'current points at v1 again');
  const status = await buildInstall(['status', '--prefix', prefix, '--json']);
  assert.equal(JSON.parse(status.stdout).version, '0.2.0');
  const running = await run(path.join(prefix, 'bin', 'hypcontrol'), ['status'], { env: { CPS_PREFIX: prefix } });
  assert.equal(running.exitCode, 0, running.all);
});

test('an update from a prefix left by 0.1.0 runs its migration once, keeps the edits and the alarms, and the pipeline works', async () => {
  const env = { CPS_PREFIX: prefix };
  const key = (await readFile(path.join(prefix, 'etc', 'canopsis-secrets.ini'), 'utf8')).match(/authkey = (\S+)/)![1]!;
  const alarms = async (q: string) =>
    ((await (await fetch(`http://127.0.0.1:${BASE + 3}/api/v4/alarms?${q}`, { headers: { 'x-canopsis-authkey': key } })).json()) as { data: Array<{ _id: string }>; meta: { total_count: number } });
  // What 0.1.0 left: its stock chain ended at axe, and it had no migration record.
  const ini = path.join(prefix, 'etc', 'canopsis.ini');
  const text = await readFile(ini, 'utf8');
  const v1Text = text
    .replace(/\n\[engine:perfdata\][^[]*/, '\n')
    .replace(/\n\[engine:collectdgw\][^[]*/, '\n')
    .replace(/(\[engine:axe\][^[]*?)next = perfdata\n/, '$1');
  assert.doesNotMatch(v1Text, /engine:perfdata|engine:collectdgw|next = perfdata/);
  await writeFile(ini, v1Text);
  await rm(path.join(prefix, 'var', 'lib', 'pkgmgr', 'migrations.json'));
  const webconf = path.join(prefix, 'etc', 'webserver.conf');
  await writeFile(webconf, `${await readFile(webconf, 'utf8')}; kept across the update\n`);
  const sent = await run(path.join(prefix, 'bin', 'send-event'), ['--component', 'before-update', '--state', '2'], { env });
  assert.equal(sent.exitCode, 0, sent.all);
  const before = await waitFor('the alarm from before', async () => (await alarms('opened=true&entity=before-update')).data[0]?._id);

  const up = await buildInstall(['update', '--bundle', v1, '--prefix', prefix]);
  assert.equal(up.exitCode, 0, up.all);
  const migrated = await readFile(ini, 'utf8');
  assert.match(migrated, /\[engine:perfdata\]/);
  assert.match(migrated, /\[engine:collectdgw\]/);
  const record = JSON.parse(await readFile(path.join(prefix, 'var', 'lib', 'pkgmgr', 'migrations.json'), 'utf8'));
  const ranAt = record.applied['0.2.0-metric-engines'];
  assert.ok(ranAt, 'recorded');
  assert.match(await readFile(webconf, 'utf8'), /; kept across the update/);
  assert.equal((await alarms('opened=true&entity=before-update')).data[0]?._id, before, 'the alarm from before is still readable');
  await run(path.join(prefix, 'bin', 'send-event'), ['--component', 'after-update', '--state', '3'], { env });
  await waitFor('the pipeline works after the update', async () => (await alarms('opened=true&entity=after-update')).data.length === 1);

  const again = await buildInstall(['update', '--bundle', v1, '--prefix', prefix]);
  assert.equal(again.exitCode, 0, again.all);
  const record2 = JSON.parse(await readFile(path.join(prefix, 'var', 'lib', 'pkgmgr', 'migrations.json'), 'utf8'));
  assert.equal(record2.applied['0.2.0-metric-engines'], ranAt, 'the migration ran once');
  const status = await buildInstall(['status', '--prefix', prefix]);
  assert.match(status.stdout, /pending migrations: none/);
  assert.match(status.stdout, /modified conffiles: etc\/webserver\.conf/);
});
