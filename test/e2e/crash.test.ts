import assert from 'node:assert/strict';
import { appendFile, readdir, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { SqliteStore } from '../../runtime/store/sqlite.js';
import { apiFetch } from '../helpers/api.js';
import { bundleOfCommit, currentBundle, trustIn, V1_COMMIT } from '../helpers/bundles.js';
import { buildInstall, removeDir, run, snapshot, tempDir, waitFor } from '../helpers/index.js';

/*
 * The updater killed with -9 during a v1 -> v2 update (v1 is 0.2.0 from its
 * commit, v2 the tree, which migrates settings and stored entities), with
 * the real stack, the real release installers and a real SIGKILL aimed by
 * CPS_FAILPOINT (installer/failpoint.ts), since an outside kill cannot hit
 * a point between two writes. After each kill, `current` names a complete
 * release; recovery puts v1 back exactly (files, records, data), and an
 * update then ends on v2 with the same data, the operator's edit and each
 * migration once. Each case starts from the same copy of an installed v1
 * holding alarms. All ten points of the update machine are killed
 * in-process in test/installer/update-machine.test.ts; here, one with the
 * stack running, and with it stopped a rollback killed half-way and an
 * update started on top of an interrupted one.
 */

const BASE = 5870;
const SETS = [
  `rabbitmq.port=${BASE}`,
  `rabbitmq.dist_port=${BASE + 1}`,
  `rabbitmq.management_port=${BASE + 2}`,
  `webserver.port=${BASE + 3}`,
  `rabbitmq.node_name=cpscrash${BASE}@localhost`,
].flatMap((s) => ['--set', s]);
const EVENTS = 40;

let dir: string;
let prefix: string;
let golden: string;
let v1: string;
let v2: string;
let v1Release: string;
let v2Release: string;
let before1: { alarms: string[]; entities: Map<string, Record<string, unknown>> };

const env = () => ({ CPS_PREFIX: prefix });
const storeFile = () => path.join(prefix, 'var', 'lib', 'canopsis', 'canopsis.db');

/** Alarms and entities as stored (opened only once the file exists: see the wait in before()). */
async function data(): Promise<typeof before1> {
  const store = new SqliteStore(storeFile());
  try {
    const alarms = (await store.collection('alarms').find()).map((a) => a.key).sort();
    const entities = new Map((await store.collection<Record<string, unknown>>('entities').find()).map((e) => [e.key, e]));
    return { alarms, entities };
  } finally {
    await store.close();
  }
}

async function stopStack(): Promise<void> {
  await run(path.join(prefix, 'bin', 'hypcontrol'), ['stop'], { env: env() });
  await run('pkill', ['-9', '-f', prefix]);
}

before(async () => {
  dir = await tempDir('crash');
  prefix = path.join(dir, 'canopsis');
  golden = path.join(dir, 'golden');
  v1 = await bundleOfCommit(V1_COMMIT);
  let publicKey: string;
  ({ file: v2, release: v2Release, publicKey } = await currentBundle(dir));
  // v1 is built from its commit, unsigned; v2 is signed, and its signer trusted on the host.
  const install = await buildInstall(['install', '--bundle', v1, '--prefix', prefix, ...SETS, '--start', '--allow-unsigned']);
  assert.equal(install.exitCode, 0, install.all);
  await trustIn(prefix, publicKey);
  v1Release = path.basename(await readlink(path.join(prefix, 'lib', 'canopsis', 'current')));
  // Through the API: the store file is the service user's, and the first to open it would own it.
  const key = (await readFile(path.join(prefix, 'etc', 'canopsis-secrets.ini'), 'utf8')).match(/authkey = (\S+)/)![1]!;
  const opened = async () => {
    const r = await apiFetch(prefix, '/alarms?opened=true', { headers: { 'x-canopsis-authkey': key } });
    return ((await r.json()) as { meta: { total_count: number } }).meta.total_count;
  };
  const start = await opened(); // the probe alarm of --start
  for (let i = 0; i < EVENTS; i++) {
    const r = await run(
      path.join(prefix, 'bin', 'send-event'),
      ['--component', `host${i}`, '--resource', 'disk', '--state', String(1 + (i % 3))],
      { env: env() },
    );
    assert.equal(r.exitCode, 0, r.all);
  }
  await waitFor(`${EVENTS} alarms`, async () => (await opened()) === start + EVENTS, 60_000);
  await stopStack();
  await appendFile(path.join(prefix, 'etc', 'webserver.conf'), '; the operator was here\n');
  before1 = await data();
  assert.equal(before1.entities.get('host0')?.first_seen !== undefined, true, 'v1 stores entities with first_seen');
  const cp = await run('cp', ['-a', prefix, golden]);
  assert.equal(cp.exitCode, 0, cp.all);
});

after(async () => {
  await stopStack();
  await removeDir(dir);
});

/** What a recovery must put back: v1 exactly as the golden copy has it, files, records and data. */
async function assertOnV1(running: boolean): Promise<void> {
  assert.equal(await readlink(path.join(prefix, 'lib', 'canopsis', 'current')), path.join('releases', v1Release));
  for (const d of ['etc', 'bin'])
    assert.deepEqual(await snapshot(path.join(prefix, d)), await snapshot(path.join(golden, d)), `${d}/ as v1 left it`);
  for (const f of ['manifest.json', 'migrations.json']) {
    assert.equal(
      await readFile(path.join(prefix, 'var', 'lib', 'pkgmgr', f), 'utf8'),
      await readFile(path.join(golden, 'var', 'lib', 'pkgmgr', f), 'utf8'),
      f,
    );
  }
  await assert.rejects(stat(path.join(prefix, 'var', 'lib', 'pkgmgr', 'transaction')), 'the journal and snapshot are gone');
  assert.deepEqual(
    (await readdir(path.join(prefix, 'lib', 'canopsis', 'releases'))).filter((e) => e.startsWith('.')),
    [],
    'no half-placed release',
  );
  const now = await data();
  assert.deepEqual(now.alarms, before1.alarms, 'the same alarms');
  // The events' entities as v1 stored them (the probes of a restart may touch others).
  for (const [key, old] of before1.entities)
    if (key.includes('host')) assert.deepEqual(now.entities.get(key), old, `entity ${key} back in v1's shape`);
  if (running) {
    const s = await run(path.join(prefix, 'bin', 'hypcontrol'), ['status'], { env: env() });
    assert.equal(s.exitCode, 0, s.all);
  }
}

/** The state every next run must end in: v2, complete, with v1's data reshaped and the edit kept. */
async function assertOnV2(running: boolean): Promise<void> {
  assert.equal(await readlink(path.join(prefix, 'lib', 'canopsis', 'current')), path.join('releases', v2Release));
  const status = JSON.parse((await buildInstall(['status', '--prefix', prefix, '--json'])).stdout);
  assert.equal(status.version, '0.4.0');
  assert.equal(status.interrupted, undefined, 'no interrupted update left');
  assert.deepEqual(status.pendingMigrations, []);
  assert.deepEqual(status.modifiedConffiles, ['etc/webserver.conf']);
  const applied = JSON.parse(await readFile(path.join(prefix, 'var', 'lib', 'pkgmgr', 'migrations.json'), 'utf8')).applied;
  assert.deepEqual(Object.keys(applied), [
    '0.2.0-metric-engines',
    '0.3.0-store-dbpath',
    '0.3.0-entity-fields',
    '0.4.0-operator-engines',
    '0.4.0-alarms-v4',
  ]);
  assert.match(await readFile(path.join(prefix, 'etc', 'canopsis.ini'), 'utf8'), /\nmongodb_dbpath = var\/lib\/mongodb\n/);
  assert.match(await readFile(path.join(prefix, 'etc', 'webserver.conf'), 'utf8'), /; the operator was here\n/);
  await assert.rejects(stat(path.join(prefix, 'var', 'lib', 'pkgmgr', 'transaction')), 'the journal and snapshot are gone');
  assert.deepEqual(
    (await readdir(path.join(prefix, 'lib', 'canopsis', 'releases'))).filter((e) => e.startsWith('.')),
    [],
    'no half-placed release',
  );
  const now = await data();
  assert.deepEqual(now.alarms, before1.alarms, 'the same alarms');
  for (const [key, old] of before1.entities) {
    const e = now.entities.get(key);
    assert.ok(e, `entity ${key} kept`);
    assert.equal(e.first_seen, undefined, `${key} reshaped`);
    assert.equal(e.created, old.first_seen, `${key} created = its first_seen`);
    assert.equal(e.enabled, true);
    assert.equal(e.impact_level, 1, `${key} has Canopsis' impact_level`);
  }
  if (running) {
    const s = await run(path.join(prefix, 'bin', 'hypcontrol'), ['status'], { env: env() });
    assert.equal(s.exitCode, 0, s.all);
  }
}

interface Case {
  point: string;
  running: boolean;
  /** Whether the kill left an update journal (the next run says it rolls back). */
  journal: boolean;
}

// Every kill point (files-half among them) is tested in-process against a temp tree
// (test/installer/update-machine.test.ts); this one stays end to end, against a real running stack:
// between the restart of the engines and the health check, where the most is in flight.
const CASES: Case[] = [{ point: 'engines-restarted', running: true, journal: true }];

async function fromGolden(running: boolean): Promise<void> {
  await stopStack();
  await removeDir(prefix);
  const cp = await run('cp', ['-a', golden, prefix]);
  assert.equal(cp.exitCode, 0, cp.all);
  if (running) {
    const s = await run(path.join(prefix, 'bin', 'hypcontrol'), ['start'], { env: env() });
    assert.equal(s.exitCode, 0, s.all);
  }
}

async function killedAt(point: string) {
  const r = await buildInstall(['update', '--bundle', v2, '--prefix', prefix], { env: { ...process.env, CPS_FAILPOINT: point } });
  assert.equal(r.signal, 'SIGKILL', `the updater died at ${point}: ${r.all}`);
  // Never between: `current` names a release that is there whole.
  const current = path.basename(await readlink(path.join(prefix, 'lib', 'canopsis', 'current')));
  assert.ok([v1Release, v2Release].includes(current), `current is ${current}`);
  await stat(path.join(prefix, 'lib', 'canopsis', 'releases', current, 'dist', 'installer', 'cli.js'));
  return r;
}

for (const c of CASES) {
  test(`killed -9 at ${c.point} (stack ${c.running ? 'running' : 'stopped'}): recovery puts v1 back exactly, then the update ends on v2 with the same data`, async () => {
    await fromGolden(c.running);
    await killedAt(c.point);
    const status = JSON.parse((await buildInstall(['status', '--prefix', prefix, '--json'])).stdout);
    assert.equal(status.interrupted !== undefined, c.journal, 'status tells of the interrupted update');
    const recovered = await buildInstall(['recover', '--prefix', prefix]);
    assert.equal(recovered.exitCode, 0, recovered.all);
    assert.match(
      recovered.stdout,
      c.journal
        ? /an update from 0\.2\.0 to 0\.4\.0 begun .* did not finish: rolling back to 0\.2\.0\n.*rolled back to 0\.2\.0/
        : /nothing to recover/,
    );
    await assertOnV1(c.running);
    const next = await buildInstall(['update', '--bundle', v2, '--prefix', prefix]);
    assert.equal(next.exitCode, 0, next.all);
    await assertOnV2(c.running);
  });
}

test('a rollback killed half-way is finished by the next run', async () => {
  await fromGolden(false);
  await killedAt('current-switched');
  const r = await buildInstall(['recover', '--prefix', prefix], { env: { ...process.env, CPS_FAILPOINT: 'rollback-restored' } });
  assert.equal(r.signal, 'SIGKILL', r.all);
  const again = await buildInstall(['recover', '--prefix', prefix]);
  assert.equal(again.exitCode, 0, again.all);
  assert.match(again.stdout, /did not finish: rolling back to 0\.2\.0/);
  await assertOnV1(false);
  // And an update started on top of an interrupted one repairs first, then updates.
  await killedAt('store-migrated');
  const next = await buildInstall(['update', '--bundle', v2, '--prefix', prefix]);
  assert.equal(next.exitCode, 0, next.all);
  assert.match(next.stdout, /did not finish: rolling back to 0\.2\.0/);
  await assertOnV2(false);
});
