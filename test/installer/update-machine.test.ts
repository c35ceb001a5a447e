import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, beforeEach, test } from 'node:test';
import { switchSymlink, writeAtomic } from '../../installer/apply/apply.js';
import { placeRelease } from '../../installer/bundle/lifecycle.js';
import { begin, commit, type RollbackEffects, recoverInterrupted, rollback } from '../../installer/bundle/transaction.js';
import { type ReleaseRef, runUpdate, type UpdateEffects, type UpdatePlan } from '../../installer/bundle/update-machine.js';
import { InstallerError, UpdateFailed } from '../../installer/errors.js';
import { failpoint, onFailpoint } from '../../installer/failpoint.js';
import { type Layout, layoutOf } from '../../installer/layout.js';
import type { Timing } from '../../installer/timing.js';
import { removeDir, run, snapshot, tempDir } from '../helpers/index.js';

/*
 * The update machine in-process, on a temp tree, killed at every point an
 * update passes (installer/failpoint.ts): the kill is a thrown Killed that
 * nothing catches, then the test runs what the next run would (recovery).
 * The snapshot, journal, rollback and release placement are the real ones;
 * the release installer and the services are fakes that do, on this tree,
 * what the real ones do (files, `current`, a migration of the stored
 * entities, a restart): a fake, because a real release installer and stack
 * cost minutes per kill point. test/e2e/crash.test.ts keeps kills against
 * a real running stack.
 */

class Killed extends Error {}

const V1: ReleaseRef = { version: '0.3.0', release: '0.3.0+aaaaaaaa' };
const V2: ReleaseRef = { version: '0.4.0', release: '0.4.0+bbbbbbbb' };
const MIGRATION = '0.4.0-entity-created';

let dir: string;
let layout: Layout;
let bundled: string;
let pristine: string;

interface Entity {
  first_seen?: number;
  created?: number;
}

const storeFile = () => path.join(layout.varLib, 'canopsis', 'store.json');
const readStore = async () => JSON.parse(await readFile(storeFile(), 'utf8')) as Record<string, Entity>;
const applied = async () =>
  Object.keys((JSON.parse(await readFile(path.join(layout.pkgmgr, 'migrations.json'), 'utf8')) as { applied: object }).applied);

/** v1 as installed: its files, records, release, `current` and stored entities. */
async function installV1(): Promise<void> {
  for (const d of [layout.etc, layout.bin, layout.pkgmgr, path.join(layout.varLib, 'canopsis'), path.join(layout.releases, V1.release)]) {
    await mkdir(d, { recursive: true });
  }
  await writeFile(path.join(layout.releases, V1.release, 'package.json'), '{"version":"0.3.0"}\n');
  await symlink(path.join('releases', V1.release), layout.current);
  await writeFile(path.join(layout.etc, 'amqp.conf'), '[master]\nhost = 127.0.0.1\n');
  await writeFile(path.join(layout.etc, 'webserver.conf'), '[server]\nport = 8082\n; the operator was here\n');
  await writeFile(path.join(layout.bin, 'engine-che'), '#!/bin/sh\nexec v1\n', { mode: 0o755 });
  await writeFile(layout.manifest, `${JSON.stringify({ version: V1.version, release: V1.release })}\n`);
  await writeFile(path.join(layout.pkgmgr, 'migrations.json'), `${JSON.stringify({ applied: { '0.3.0-store-dbpath': 'then' } })}\n`);
  await writeFile(storeFile(), JSON.stringify({ host0: { first_seen: 100 }, host1: { first_seen: 200 } }));
}

/** What the new release's installer does on this tree, with its own kill points where the real one has them. */
async function fakeInstall(): Promise<string[]> {
  const writes = ['etc/amqp.conf', 'etc/collectd.conf', 'bin/engine-che', 'bin/engine-axe'];
  const content: Record<string, string> = {
    'etc/amqp.conf': '[master]\nhost = 127.0.0.1\nprefetch = 1000\n',
    'etc/collectd.conf': 'Interval 10\n',
    'bin/engine-che': '#!/bin/sh\nexec v2 che\n',
    'bin/engine-axe': '#!/bin/sh\nexec v2 axe\n',
  };
  for (const [i, w] of writes.entries()) {
    await writeAtomic(path.join(layout.prefix, w), content[w]!, w.startsWith('bin/') ? 0o755 : 0o644);
    if (i + 1 === writes.length / 2) failpoint('files-half');
  }
  await writeAtomic(layout.manifest, `${JSON.stringify({ version: V2.version, release: V2.release })}\n`, 0o644);
  failpoint('files-written');
  await switchSymlink(layout.current, path.join('releases', V2.release));
  failpoint('current-switched');
  await migrateStore('up');
  failpoint('store-migrated');
  return writes;
}

/** The v2 migration: entities get `created` from `first_seen`; down puts them back. Each document alone, idempotent. */
async function migrateStore(way: 'up' | 'down'): Promise<void> {
  const store = await readStore();
  for (const e of Object.values(store)) {
    if (way === 'up' && e.first_seen !== undefined) {
      e.created = e.first_seen;
      delete e.first_seen;
    } else if (way === 'down' && e.created !== undefined) {
      e.first_seen = e.created;
      delete e.created;
    }
  }
  await writeAtomic(storeFile(), JSON.stringify(store), 0o644);
  const file = path.join(layout.pkgmgr, 'migrations.json');
  const record = JSON.parse(await readFile(file, 'utf8')) as { applied: Record<string, string> };
  if (way === 'up') record.applied[MIGRATION] = 'now';
  else delete record.applied[MIGRATION];
  await writeAtomic(file, `${JSON.stringify(record)}\n`, 0o644);
}

interface World {
  running: boolean;
  /** Calls to the services, in order. */
  services: string[];
  /** What the health check answers (undefined: healthy). */
  unhealthy?: string;
  /** The exit code the release installer's `install` ends with. */
  installExit?: number;
}

function rollbackEffects(w: World): RollbackEffects {
  return {
    stopPipeline: async () => void w.services.push('stop pipeline'),
    restartAndProbe: async (services) => {
      w.services.push(`restart ${services.join(' ')}`);
      return undefined;
    },
    // Only v2 knows its migration; it undoes it (the real one: migrate --down-to).
    migrate: async (release, args) => {
      if (release.release !== V2.release || args[0] !== '--down-to') return [];
      if (!(await applied()).includes(MIGRATION)) return [];
      await migrateStore('down');
      return [MIGRATION];
    },
  };
}

function effects(w: World, log: string[]): UpdateEffects {
  return {
    place: async () => void (await placeRelease(layout, bundled, V2.release)),
    runRelease: async (release, command) => {
      assert.equal(release.release, V2.release, 'only the new release runs in an upgrade');
      if (command[0] === 'migrate') {
        const pending = (await applied()).includes(MIGRATION)
          ? []
          : [{ id: MIGRATION, description: 'created', store: true, reversible: true }];
        return { exitCode: 0, stdout: JSON.stringify({ ok: true, pending }), stderr: '' };
      }
      if (w.installExit) return { exitCode: w.installExit, stdout: '', stderr: 'preflight failed (ports)' };
      const writes = await fakeInstall();
      return { exitCode: 0, stdout: `installing\n${JSON.stringify({ ok: true, writes, dist: [] })}\n`, stderr: '' };
    },
    running: async () => w.running,
    backup: async () => void log.push('backup'),
    begin: (journal) => begin(layout, journal),
    commit: () => commit(layout),
    rollback: (journal) => rollback(layout, journal, {}, rollbackEffects(w)),
    stopPipeline: async () => void w.services.push('stop pipeline'),
    restartAndProbe: async (services) => {
      w.services.push(`restart ${services.join(' ')}`);
      if (services.includes('amqp2engines')) failpoint('engines-restarted');
      return w.unhealthy;
    },
    finish: async () => void log.push('finish'),
    failpoint,
    log: (l) => log.push(l),
    now: () => new Date('2026-11-30T12:00:00Z'),
  };
}

const PLAN: UpdatePlan = { from: V1, to: V2, allowIrreversible: false, passthrough: [] };

let golden: Map<string, string>;
let goldenStore: Record<string, Entity>;

/** Everything an update may touch, as one map: etc/, bin/, the records. */
async function tree(): Promise<Map<string, string>> {
  const all = new Map<string, string>();
  for (const d of ['etc', 'bin']) for (const [k, v] of await snapshot(path.join(layout.prefix, d))) all.set(`${d}/${k}`, v);
  for (const f of ['manifest.json', 'migrations.json']) all.set(f, await readFile(path.join(layout.pkgmgr, f), 'utf8'));
  return all;
}

async function assertOnV1(): Promise<void> {
  assert.equal(await readlink(layout.current), path.join('releases', V1.release));
  assert.deepEqual(await tree(), golden, 'etc/, bin/ and the records exactly as v1 left them');
  assert.deepEqual(await readStore(), goldenStore, "entities back in v1's shape");
  await assert.rejects(stat(path.join(layout.pkgmgr, 'transaction')), 'the journal and snapshot are gone');
  assert.deepEqual(
    (await readdir(layout.releases)).filter((e) => e.startsWith('.')),
    [],
    'no half-placed release',
  );
}

async function assertOnV2(): Promise<void> {
  assert.equal(await readlink(layout.current), path.join('releases', V2.release));
  assert.deepEqual(await applied(), ['0.3.0-store-dbpath', MIGRATION], 'the migration recorded once');
  assert.deepEqual(await readStore(), { host0: { created: 100 }, host1: { created: 200 } });
  assert.match(await readFile(path.join(layout.etc, 'webserver.conf'), 'utf8'), /; the operator was here/);
  assert.equal(await readFile(path.join(layout.bin, 'engine-axe'), 'utf8'), '#!/bin/sh\nexec v2 axe\n');
  await assert.rejects(stat(path.join(layout.pkgmgr, 'transaction')), 'the journal and snapshot are gone');
}

before(async () => {
  dir = await tempDir('machine');
  layout = layoutOf(path.join(dir, 'canopsis'));
  bundled = path.join(dir, 'bundle', 'release');
  await mkdir(path.join(bundled, 'dist'), { recursive: true });
  await writeFile(path.join(bundled, 'package.json'), '{"version":"0.4.0"}\n');
  await writeFile(path.join(bundled, 'dist', 'marker'), 'v2\n');
  await installV1();
  golden = await tree();
  goldenStore = await readStore();
  pristine = path.join(dir, 'pristine');
  assert.equal((await run('cp', ['-a', layout.prefix, pristine])).exitCode, 0);
});

/** Each case starts from the same copy of v1, mtimes included. */
beforeEach(async () => {
  onFailpoint(undefined);
  await removeDir(layout.prefix);
  // cp -a: mtimes to the nanosecond, as the rollback must put them back.
  assert.equal((await run('cp', ['-a', pristine, layout.prefix])).exitCode, 0);
});

after(async () => {
  onFailpoint(undefined);
  await removeDir(dir);
});

const CASES: Array<{ point: string; running: boolean; journal: boolean }> = [
  { point: 'release-copied', running: false, journal: false },
  { point: 'release-placed', running: false, journal: false },
  { point: 'snapshot', running: false, journal: false },
  { point: 'journal', running: true, journal: true },
  { point: 'files-half', running: true, journal: true },
  { point: 'files-written', running: false, journal: true },
  { point: 'current-switched', running: false, journal: true },
  { point: 'store-migrated', running: true, journal: true },
  { point: 'engines-restarted', running: true, journal: true },
  { point: 'healthy', running: false, journal: true },
];

for (const c of CASES) {
  test(`killed at ${c.point} (stack ${c.running ? 'running' : 'stopped'}): recovery puts v1 back exactly, then the update ends on v2`, async () => {
    const w: World = { running: c.running, services: [] };
    const log: string[] = [];
    onFailpoint((name) => {
      if (name === c.point) throw new Killed(name);
    });
    await assert.rejects(runUpdate(PLAN, effects(w, log)), Killed);
    onFailpoint(undefined);
    // Never between: `current` names a release that is there whole.
    const current = path.basename(await readlink(layout.current));
    assert.ok([V1.release, V2.release].includes(current), `current is ${current}`);
    await stat(path.join(layout.releases, current, 'package.json'));

    const said: string[] = [];
    const line = await recoverInterrupted(layout, (l) => said.push(l), rollbackEffects(w));
    if (c.journal) {
      assert.match(said[0]!, /an update from 0\.3\.0 to 0\.4\.0 begun 2026-11-30T12:00:00\.000Z did not finish: rolling back to 0\.3\.0/);
      assert.match(
        line!,
        new RegExp(
          `rolled back to 0\\.3\\.0 \\(0\\.3\\.0\\+aaaaaaaa\\)${c.point === 'store-migrated' || c.point === 'engines-restarted' || c.point === 'healthy' ? `, migrations undone: ${MIGRATION}` : ''}`,
        ),
      );
      if (c.running) assert.match(line!, /, running again$/);
    } else assert.equal(line, undefined, 'no journal: nothing to roll back');
    await assertOnV1();

    const again: World = { running: c.running, services: [] };
    await runUpdate(PLAN, effects(again, []));
    await assertOnV2();
    if (c.running) assert.deepEqual(again.services, ['stop pipeline', 'restart collectd amqp2engines webserver']);
  });
}

test('a rollback killed half-way is finished by the next run', async () => {
  const w: World = { running: false, services: [] };
  onFailpoint((name) => {
    if (name === 'store-migrated') throw new Killed(name);
  });
  await assert.rejects(runUpdate(PLAN, effects(w, [])), Killed);
  onFailpoint((name) => {
    if (name === 'rollback-restored') throw new Killed(name);
  });
  await assert.rejects(
    recoverInterrupted(layout, () => undefined, rollbackEffects(w)),
    Killed,
  );
  onFailpoint(undefined);
  const said: string[] = [];
  await recoverInterrupted(layout, (l) => said.push(l), rollbackEffects(w));
  assert.match(said.join('\n'), /did not finish: rolling back to 0\.3\.0/);
  await assertOnV1();
});

test('a failed health check rolls back at once: the error says why, what was undone, and that v1 runs again', async () => {
  const w: World = { running: true, services: [], unhealthy: 'service amqp2engines restart: exited too quickly' };
  const log: string[] = [];
  await assert.rejects(runUpdate(PLAN, effects(w, log)), (e: unknown) => {
    assert.ok(e instanceof UpdateFailed, String(e));
    assert.equal(e.exitCode, 9);
    assert.equal(
      e.message,
      `update to 0.4.0 failed (health check: service amqp2engines restart: exited too quickly); rolled back to 0.3.0 (0.3.0+aaaaaaaa), migrations undone: ${MIGRATION}, running again`,
    );
    return true;
  });
  assert.deepEqual(log.slice(0, 2), [`migrations to run: ${MIGRATION}`, 'backup']);
  assert.ok(log.includes('health check: service amqp2engines restart: exited too quickly; rolling back to 0.3.0'), log.join('\n'));
  await assertOnV1();
  // Stopped for the migration, restarted on v2 (unhealthy), stopped for the rollback, restarted on v1.
  assert.deepEqual(w.services, [
    'stop pipeline',
    'restart collectd amqp2engines webserver',
    'stop pipeline',
    'restart collectd amqp2engines webserver',
  ]);
});

test('an installer that refuses before writing (preflight, exit 3): nothing changed, no journal left, the stopped pipeline runs again', async () => {
  const w: World = { running: true, services: [], installExit: 3 };
  await assert.rejects(runUpdate(PLAN, effects(w, [])), (e: unknown) => {
    assert.ok(e instanceof InstallerError && !(e instanceof UpdateFailed), String(e));
    assert.match(
      e.message,
      /the installer of 0\.4\.0 refused \(exit 3\): preflight failed \(ports\); nothing was changed; the engines and the webserver run again/,
    );
    return true;
  });
  assert.deepEqual(w.services, ['stop pipeline', 'restart amqp2engines webserver']);
  assert.equal(await readlink(layout.current), path.join('releases', V1.release));
  assert.deepEqual(await tree(), golden);
  await assert.rejects(stat(path.join(layout.pkgmgr, 'transaction')));
});

test('an irreversible store migration is refused before anything changes, unless allowed', async () => {
  const w: World = { running: false, services: [] };
  const fx = effects(w, []);
  const oneWay: UpdateEffects = {
    ...fx,
    runRelease: async (release, command) =>
      command[0] === 'migrate'
        ? {
            exitCode: 0,
            stdout: JSON.stringify({ pending: [{ id: 'x', description: 'drops a field', store: true, reversible: false }] }),
            stderr: '',
          }
        : fx.runRelease(release, command),
  };
  await assert.rejects(
    runUpdate(PLAN, oneWay),
    /0\.4\.0 reshapes stored data in a way a failed update cannot undo \(x: drops a field\).*--allow-irreversible/,
  );
  await assert.rejects(stat(path.join(layout.pkgmgr, 'transaction')));
  assert.equal(await readlink(layout.current), path.join('releases', V1.release));
  await runUpdate({ ...PLAN, allowIrreversible: true }, oneWay);
  assert.equal(await readlink(layout.current), path.join('releases', V2.release));
});

test('an install answer that cannot be read is a failed install: rolled back', async () => {
  const w: World = { running: false, services: [] };
  const fx = effects(w, []);
  const garbled: UpdateEffects = {
    ...fx,
    runRelease: async (release, command) => {
      const r = await fx.runRelease(release, command);
      return command[0] === 'install' ? { ...r, stdout: 'Segmentation fault\n' } : r;
    },
  };
  await assert.rejects(
    runUpdate(PLAN, garbled),
    /update to 0\.4\.0 failed \(the installer of 0\.4\.0\+bbbbbbbb \(install --json\) printed no JSON answer/,
  );
  await assertOnV1();
});

test('the same release again: nothing written restarts nothing (no stop, no probe); a written file restarts as any update does', async () => {
  const w: World = { running: true, services: [] };
  await runUpdate(PLAN, effects(w, []));
  await assertOnV2();
  const again = (writes: string[]): UpdateEffects => {
    const fx = effects(w, []);
    return {
      ...fx,
      runRelease: async (release, command) =>
        command[0] === 'install'
          ? {
              exitCode: 0,
              stdout: JSON.stringify({ ok: true, writes, dist: [], timings: [{ step: 'Read settings', ms: 12 }] }),
              stderr: '',
            }
          : fx.runRelease(release, command),
    };
  };
  w.services = [];
  const log: string[] = [];
  const timings: Timing[] = [];
  await runUpdate({ ...PLAN, from: V2 }, { ...again([]), log: (l) => log.push(l) }, timings);
  assert.deepEqual(w.services, [], 'nothing stopped, restarted or probed');
  assert.ok(log.includes(`nothing to restart: ${V2.release} runs already and no file changed`), log.join('\n'));
  await assertOnV2();
  // Where the time went: every state it passed, the installer's own steps under its run.
  assert.deepEqual(
    timings.map((t) => t.step),
    [
      'Place the release',
      'Ask it what it migrates, back up',
      'Snapshot and journal',
      'Run its installer',
      'Restart and probe',
      'Commit, prune, postupdate',
    ],
  );
  assert.deepEqual(timings[3]!.parts, [{ step: 'Read settings', ms: 12 }]);

  await runUpdate({ ...PLAN, from: V2 }, again(['etc/rabbitmq/rabbitmq.conf']));
  assert.deepEqual(w.services, ['restart rabbitmq-server amqp2engines webserver']);
});
