import assert from 'node:assert/strict';
import { appendFile, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Supervisor } from '../../installer/control/supervisor.js';
import { apiFetch } from '../helpers/api.js';
import { bundleOfCommit, currentBundle, trustIn, V1_COMMIT } from '../helpers/bundles.js';
import { buildInstall, removeDir, run, tempDir, waitFor } from '../helpers/index.js';

/*
 * Updates of a running appliance between two real versions: v1 is 0.2.0
 * built from its commit, v2 the tree under test (0.4.0, whose 0.3.0 migrations rename
 * store.dbpath and reshape stored entities). A v2 that does not come up is
 * rolled back, data included; a good v2 keeps edits and alarms.
 */

const BASE = 5860;
const SETS = [
  `rabbitmq.port=${BASE}`,
  `rabbitmq.dist_port=${BASE + 1}`,
  `rabbitmq.management_port=${BASE + 2}`,
  `webserver.port=${BASE + 3}`,
  `rabbitmq.node_name=cpsupd${BASE}@localhost`,
].flatMap((s) => ['--set', s]);

let dir: string;
let prefix: string;
let v1: string;
let v2: string;
let key: string;
let publicKey: string;
const env = () => ({ CPS_PREFIX: prefix });

interface Entity {
  _id: string;
  first_seen?: number;
  created?: number;
  last_event_date?: number;
  enabled?: boolean;
}

const api = async <T>(route: string): Promise<T> => {
  // v1 serves plain HTTP, v2 HTTPS: the client reads which from the prefix's webserver.conf.
  const r = await apiFetch(prefix, route.replace(/^\/api\/v4/, ''), { headers: { 'x-canopsis-authkey': key } });
  assert.equal(r.status, 200, route);
  return (await r.json()) as T;
};
const alarmsOf = (entity: string) => api<{ data: Array<{ _id: string }> }>(`/api/v4/alarms?opened=true&entity=${entity}`);
const entity = async (id: string) =>
  (await api<{ data: Entity[] }>('/api/v4/entities?type=component&limit=1000')).data.find((e) => e._id === id);
const settingsText = () => readFile(path.join(prefix, 'etc', 'canopsis.ini'), 'utf8');
const migrationRecord = async () =>
  (JSON.parse(await readFile(path.join(prefix, 'var', 'lib', 'pkgmgr', 'migrations.json'), 'utf8')) as { applied: Record<string, string> })
    .applied;

before(async () => {
  dir = await tempDir('update');
  prefix = path.join(dir, 'canopsis');
  v1 = await bundleOfCommit(V1_COMMIT);
  ({ file: v2, publicKey } = await currentBundle(dir));
});

after(async () => {
  await run(path.join(prefix, 'bin', 'hypcontrol'), ['stop'], { env: env() });
  await run('pkill', ['-9', '-f', prefix]);
  await removeDir(dir);
});

/** v2 whose engine-launcher exits at once, under its own release id, with a manifest that matches it. */
async function brokenV2(): Promise<string> {
  const out = path.join(dir, 'broken', 'canopsis.tar.gz');
  const py = `
import tarfile, io, json, hashlib, sys, os
os.makedirs(os.path.dirname(sys.argv[2]), exist_ok=True)
src = tarfile.open(sys.argv[1], 'r:gz'); dst = tarfile.open(sys.argv[2], 'w:gz')
members = src.getmembers(); data = {m.name: src.extractfile(m).read() for m in members if m.isfile()}
top = members[0].name.split('/')[0]
rel = 'release/dist/runtime/cli/engine-launcher.js'
data[top + '/' + rel] = b'process.stderr.write("v2 engine refuses to start\\\\n"); process.exit(1);\\n' + data[top + '/' + rel]
man = json.loads(data[top + '/MANIFEST.json'])
man['release'] = man['version'] + '+0badc0de'
man['files'][rel]['sha256'] = hashlib.sha256(data[top + '/' + rel]).hexdigest(); man['files'][rel]['size'] = len(data[top + '/' + rel])
data[top + '/MANIFEST.json'] = json.dumps(man).encode()
for m in members:
    if m.name.endswith('MANIFEST.json.sig'):
        continue
    if m.isfile():
        m.size = len(data[m.name]); dst.addfile(m, io.BytesIO(data[m.name]))
    else:
        dst.addfile(m)
dst.close()
`;
  const r = await run('python3', ['-c', py, v2, out]);
  assert.equal(r.exitCode, 0, r.all);
  return out;
}

test('v1 installed and running; an update to a v2 whose engines exit is rolled back, data and settings included, and v1 runs again', async () => {
  // v1 is built from its commit, unsigned; v2 is signed, and its signer trusted on the host.
  const install = await buildInstall(['install', '--bundle', v1, '--prefix', prefix, ...SETS, '--start', '--allow-unsigned']);
  assert.equal(install.exitCode, 0, install.all);
  await trustIn(prefix, publicKey);
  key = (await readFile(path.join(prefix, 'etc', 'canopsis-secrets.ini'), 'utf8')).match(/authkey = (\S+)/)![1]!;
  const release1 = await readlink(path.join(prefix, 'lib', 'canopsis', 'current'));
  assert.match(release1, /^releases\/0\.2\.0\+[0-9a-f]{8}$/);
  assert.match(await settingsText(), /\ndbpath = var\/lib\/mongodb\n/, 'v1 names it dbpath');
  await appendFile(path.join(prefix, 'etc', 'webserver.conf'), '; kept across updates\n');
  const sent = await run(path.join(prefix, 'bin', 'send-event'), ['--component', 'before-update', '--state', '2'], { env: env() });
  assert.equal(sent.exitCode, 0, sent.all);
  const alarm = await waitFor('the v1 alarm', async () => (await alarmsOf('before-update')).data[0]?._id);
  const seen = await waitFor('the v1 entity', () => entity('before-update'));
  assert.equal(typeof seen.first_seen, 'number', 'v1 stores first_seen');

  // Rebuilt by hand, it carries no signature: the operator accepts it as such.
  const update = await buildInstall(['update', '--bundle', await brokenV2(), '--prefix', prefix, '--allow-unsigned'], {
    env: { ...process.env, CPS_SERVICE_TIMEOUT: '20' },
  });
  assert.equal(update.exitCode, 9, update.all);
  assert.match(
    update.stdout,
    /migrations to run: 0\.3\.0-store-dbpath, 0\.3\.0-entity-fields, 0\.4\.0-operator-engines, 0\.4\.0-alarms-v4/,
  );
  assert.match(
    update.stderr,
    /update to 0\.4\.0 failed \(health check: service amqp2engines restart: .*\); rolled back to 0\.2\.0 \(0\.2\.0\+[0-9a-f]{8}\), migrations undone: 0\.4\.0-alarms-v4, 0\.4\.0-operator-engines, 0\.3\.0-entity-fields, 0\.3\.0-store-dbpath, running again/,
  );
  assert.equal(await readlink(path.join(prefix, 'lib', 'canopsis', 'current')), release1, 'current points at v1 again');
  assert.match(await settingsText(), /\ndbpath = var\/lib\/mongodb\n/, 'the renamed key is back');
  assert.deepEqual(Object.keys(await migrationRecord()), ['0.2.0-metric-engines']);
  assert.match(await readFile(path.join(prefix, 'etc', 'webserver.conf'), 'utf8'), /; kept across updates/);
  await assert.rejects(stat(path.join(prefix, 'var', 'lib', 'pkgmgr', 'transaction')), 'no journal left');
  const status = JSON.parse((await buildInstall(['status', '--prefix', prefix, '--json'])).stdout);
  assert.equal(status.version, '0.2.0');
  assert.equal(status.interrupted, undefined);
  const running = await run(path.join(prefix, 'bin', 'hypcontrol'), ['status'], { env: env() });
  assert.equal(running.exitCode, 0, running.all);
  // v1 reads its data in its own shape again, and keeps working on it.
  assert.equal((await alarmsOf('before-update')).data[0]?._id, alarm);
  assert.deepEqual(await entity('before-update'), seen);
  await run(path.join(prefix, 'bin', 'send-event'), ['--component', 'after-rollback', '--state', '1'], { env: env() });
  await waitFor('v1 still processes events', async () => (await alarmsOf('after-rollback')).data.length === 1);
});

test('v1 -> v2: the setting renamed and the entities reshaped once, the edit kept, v1 alarms readable, the pipeline works', async () => {
  const before = await entity('before-update');
  const alarm = (await alarmsOf('before-update')).data[0]?._id;
  assert.ok(before && alarm);
  const up = await buildInstall(['update', '--bundle', v2, '--prefix', prefix]);
  assert.equal(up.exitCode, 0, up.all);
  assert.match(up.stdout, /stopping amqp2engines, webserver while stored data is migrated/);
  assert.match(up.stdout, /updated .* from 0\.2\.0 to 0\.4\.0/);
  const text = await settingsText();
  assert.match(text, /\nmongodb_dbpath = var\/lib\/mongodb\n/);
  assert.doesNotMatch(text, /\ndbpath =/);
  const record = await migrationRecord();
  assert.deepEqual(Object.keys(record), [
    '0.2.0-metric-engines',
    '0.3.0-store-dbpath',
    '0.3.0-entity-fields',
    '0.4.0-operator-engines',
    '0.4.0-alarms-v4',
  ]);
  assert.match(await readFile(path.join(prefix, 'etc', 'webserver.conf'), 'utf8'), /; kept across updates/);
  const v1Alarm = (await alarmsOf('before-update')).data[0] as { _id: string; v?: { state?: { val?: number } } } | undefined;
  assert.equal(v1Alarm?._id, alarm, 'the v1 alarm is readable through the v2 API');
  assert.equal(typeof v1Alarm?.v?.state?.val, 'number', "in Canopsis v4's shape");
  const reshaped = (await entity('before-update')) as unknown as Record<string, unknown>;
  const expected: Record<string, unknown> = {
    // v1 served its store key and dependency list; Canopsis' entity answer has neither.
    ...Object.fromEntries(Object.entries(before).filter(([k]) => !['first_seen', 'last_seen', 'depends', 'key'].includes(k))),
    created: before.first_seen,
    last_event_date: (before as { last_seen?: number }).last_seen,
    enabled: true,
  };
  for (const [k, v] of Object.entries(expected)) assert.deepEqual(reshaped[k], v, `entity field ${k}`);
  assert.equal(reshaped.first_seen, undefined);

  await run(path.join(prefix, 'bin', 'send-event'), ['--component', 'after-update', '--state', '3'], { env: env() });
  await waitFor('the pipeline works after the update', async () => (await alarmsOf('after-update')).data.length === 1);
  const fresh = await waitFor('v2 che', () => entity('after-update'));
  assert.equal(fresh.enabled, true);
  assert.equal(typeof fresh.created, 'number');

  // The same bundle again: not extracted, nothing written, nothing restarted (every process keeps its pid).
  const pids = async () => (await new Supervisor(prefix).status()).map((p) => `${p.name} ${p.state} ${/pid \d+/.exec(p.description)?.[0]}`);
  const running = await pids();
  assert.ok(running.length > 3 && running.every((p) => / RUNNING pid \d+$/.test(p)), running.join('\n'));
  const again = await buildInstall(['update', '--bundle', v2, '--prefix', prefix]);
  assert.equal(again.exitCode, 0, again.all);
  assert.match(again.stdout, /not extracted again/);
  assert.match(again.stdout, /nothing to restart: .* runs already and no file changed/);
  assert.deepEqual(await pids(), running, 'no process restarted');
  assert.deepEqual(await migrationRecord(), record, 'each migration ran once');
  const status = await buildInstall(['status', '--prefix', prefix]);
  assert.match(status.stdout, /Canopsis 0\.4\.0 .*running/);
  assert.match(status.stdout, /pending migrations: none/);
  assert.match(status.stdout, /modified conffiles: etc\/webserver\.conf/);
});
