import assert from 'node:assert/strict';
import { chmod, chown, mkdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { buildInstall, isolatedPorts, removeDir, run, tempDir } from '../helpers/index.js';

/*
 * Root installs, the service user runs: what the service user can write
 * must never become root's. Each attack is made the way the service user
 * could make it (as that user, with setpriv), against an install made as
 * root the way the README says.
 */

const PORTS = isolatedPorts(5770);
const USER = 'canopsis';
let dir: string;
let uid: number;
let gid: number;

const asService = (args: string[]) => run('setpriv', ['--reuid', USER, '--regid', USER, '--init-groups', ...args]);
const install = (prefix: string, ...extra: string[]) => buildInstall(['--prefix', prefix, '--no-install-deps', ...PORTS, ...extra]);
const currentRelease = async (prefix: string) => path.basename(await readlink(path.join(prefix, 'lib/canopsis/current')));
const owner = async (p: string) => {
  const st = await stat(p);
  return `${st.uid === 0 ? 'root' : st.uid === uid ? USER : st.uid}:${st.gid === 0 ? 'root' : st.gid === gid ? USER : st.gid} ${(st.mode & 0o7777).toString(8)}`;
};

before(async () => {
  dir = await tempDir('rootsafe');
});
after(async () => {
  await removeDir(dir);
});

test("as root: var/ and the installer state are root's, the service user owns only its own directories, secrets are 0640 root:canopsis", async () => {
  const prefix = path.join(dir, 'owners');
  const r = await install(prefix);
  assert.equal(r.exitCode, 0, r.all);
  uid = Number((await run('id', ['-u', USER])).stdout.trim());
  gid = Number((await run('id', ['-g', USER])).stdout.trim());
  const table: Record<string, string> = {};
  for (const p of [
    'var',
    'var/lib',
    'var/lib/pkgmgr',
    'var/lib/pkgmgr/manifest.json',
    'var/log',
    'var/log/engines',
    'var/run',
    'var/lib/canopsis',
    'var/lib/rabbitmq',
    'etc',
    'etc/canopsis-secrets.ini',
    'etc/amqp.conf',
    'etc/runtime.conf',
    'etc/collectd.conf',
    'etc/canopsis.ini',
    'bin',
    'lib/canopsis/current/dist/installer/cli.js',
  ]) {
    table[p] = await owner(path.join(prefix, p));
  }
  assert.deepEqual(table, {
    var: 'root:root 755',
    'var/lib': 'root:root 755',
    'var/lib/pkgmgr': 'root:root 755',
    'var/lib/pkgmgr/manifest.json': 'root:root 644',
    'var/log': `${USER}:${USER} 755`,
    'var/log/engines': `${USER}:${USER} 755`,
    'var/run': `${USER}:${USER} 755`,
    'var/lib/canopsis': `${USER}:${USER} 750`,
    'var/lib/rabbitmq': `${USER}:${USER} 750`,
    etc: 'root:root 755',
    'etc/canopsis-secrets.ini': `root:${USER} 640`,
    'etc/amqp.conf': `root:${USER} 640`,
    'etc/runtime.conf': `root:${USER} 640`,
    'etc/collectd.conf': `root:${USER} 640`,
    'etc/canopsis.ini': 'root:root 644',
    bin: 'root:root 755',
    'lib/canopsis/current/dist/installer/cli.js': 'root:root 644',
  });
  // The service user reads its secrets, and cannot change them.
  assert.equal((await asService(['cat', path.join(prefix, 'etc/amqp.conf')])).exitCode, 0);
  assert.notEqual((await asService(['sh', '-c', `echo x >> ${path.join(prefix, 'etc/canopsis-secrets.ini')}`])).exitCode, 0);
  // Nor rename or write the installer state.
  assert.notEqual((await asService(['mv', path.join(prefix, 'var/lib/pkgmgr'), path.join(prefix, 'var/lib/old')])).exitCode, 0);
  assert.notEqual((await asService(['mkdir', path.join(prefix, 'var/lib/pkgmgr/transaction')])).exitCode, 0);
  assert.notEqual((await asService(['mv', path.join(prefix, 'var/lib'), path.join(prefix, 'var/old')])).exitCode, 0);
});

test("a journal the service user planted (as 0.3.0 let it) naming a release outside releases/ is refused by root's recover; nothing of it runs", async () => {
  const prefix = path.join(dir, 'journal');
  assert.equal((await install(prefix)).exitCode, 0);
  // 0.3.0 left var/lib and the state in it to the service user: put the prefix back in that shape.
  await run('chown', ['-R', `${USER}:${USER}`, path.join(prefix, 'var')]);
  const marker = path.join(dir, 'journal-ran-as-root');
  const evil = path.join(prefix, 'var/lib/evil');
  const plant = [
    `mkdir -p ${evil}/dist/installer`,
    `printf '%s\\n' "require('fs').writeFileSync('${marker}', String(process.getuid()))" > ${evil}/dist/installer/cli.js`,
    `mkdir -p ${prefix}/var/lib/pkgmgr/transaction`,
    `printf '%s' '{"op":"update","from":{"version":"0.3.0","release":"../../../var/lib/evil"},"to":{"version":"0.4.0","release":"../../../var/lib/evil"},"running":false,"started":"now"}' > ${prefix}/var/lib/pkgmgr/transaction/journal.json`,
  ].join(' && ');
  const planted = await asService(['sh', '-c', plant]);
  assert.equal(planted.exitCode, 0, planted.all);

  const r = await buildInstall(['recover', '--prefix', prefix]);
  assert.equal(r.exitCode, 6, r.all);
  assert.match(
    r.stderr,
    new RegExp(
      `transaction/journal\\.json belongs to uid ${uid}: the installer's state must be root's alone; refused \\(nothing was rolled back\\)`,
    ),
  );
  await assert.rejects(stat(marker), 'the planted installer never ran');
  // The run took the state back before reading it: the service user cannot plant a second time.
  assert.equal(await owner(path.join(prefix, 'var/lib/pkgmgr')), 'root:root 755');
  assert.equal(await owner(path.join(prefix, 'var/lib')), 'root:root 755');

  // Had it been root's, the journal would still be refused on what it names.
  await run('chown', ['-R', 'root:root', path.join(prefix, 'var/lib/pkgmgr/transaction')]);
  const named = await buildInstall(['recover', '--prefix', prefix]);
  assert.equal(named.exitCode, 6, named.all);
  assert.match(
    named.stderr,
    /transaction\/journal\.json: not an update journal \(from\.release: expected a release id <version>\+<8 hex digits>\); refused/,
  );
  // And a snapshot whose directories the service user made is never copied back over etc/ and bin/.
  await writeFile(
    path.join(prefix, 'var/lib/pkgmgr/transaction/journal.json'),
    JSON.stringify({
      op: 'update',
      from: { version: '0.4.0', release: await currentRelease(prefix) },
      to: { version: '0.4.0', release: await currentRelease(prefix) },
      running: false,
      started: 'now',
    }),
  );
  await mkdir(path.join(prefix, 'var/lib/pkgmgr/transaction/bin'), { recursive: true });
  await writeFile(path.join(prefix, 'var/lib/pkgmgr/transaction/bin/service'), '#!/bin/sh\ntouch /tmp/never\n', { mode: 0o755 });
  await chown(path.join(prefix, 'var/lib/pkgmgr/transaction/bin'), uid, gid);
  const snap = await buildInstall(['recover', '--prefix', prefix]);
  assert.equal(snap.exitCode, 6, snap.all);
  assert.match(
    snap.stderr,
    new RegExp(`transaction/bin belongs to uid ${uid}: the update snapshot must be root's alone to be rolled back`),
  );
  assert.doesNotMatch(await readFile(path.join(prefix, 'bin/service'), 'utf8'), /never/, 'bin/ was not touched');

  // A well-formed id whose directory is a link out of releases/ is refused too.
  await rm(path.join(prefix, 'var/lib/pkgmgr/transaction'), { recursive: true });
  await symlink(evil, path.join(prefix, 'lib/canopsis/releases/0.3.0+deadbeef'));
  await mkdir(path.join(prefix, 'var/lib/pkgmgr/transaction'));
  await writeFile(
    path.join(prefix, 'var/lib/pkgmgr/transaction/journal.json'),
    JSON.stringify({
      op: 'update',
      from: { version: '0.3.0', release: '0.3.0+deadbeef' },
      to: { version: '0.4.0', release: '0.3.0+deadbeef' },
      running: false,
      started: 'now',
    }),
  );
  const again = await buildInstall(['recover', '--prefix', prefix]);
  assert.equal(again.exitCode, 6, again.all);
  assert.match(again.stderr, /release 0\.3\.0\+deadbeef resolves to .*var\/lib\/evil, outside .*lib\/canopsis\/releases; refused/);
  await assert.rejects(stat(marker));
});

test('a link the service user plants in var/log/engines is refused by name; its target keeps its owner; files under var/ get their owner back', async () => {
  const prefix = path.join(dir, 'links');
  assert.equal((await install(prefix)).exitCode, 0);
  // Something root owns that the service user would like to have.
  const target = path.join(dir, 'root-only');
  await mkdir(target, { mode: 0o700 });
  await chmod(target, 0o700);
  const planted = await asService(['sh', '-c', `rm -rf ${prefix}/var/log/engines && ln -s ${target} ${prefix}/var/log/engines`]);
  assert.equal(planted.exitCode, 0, planted.all);
  const r = await install(prefix);
  assert.equal(r.exitCode, 6, r.all);
  assert.match(
    r.stderr,
    new RegExp(
      `${prefix}/var/log/engines is a symbolic link \\(to ${target}\\); a directory the installer manages must be a real directory`,
    ),
  );
  assert.equal(await owner(target), 'root:root 700', 'the link was not followed');

  // Once removed, the run goes on; what root left under var/ goes back to the service user, links included, never their targets.
  await rm(path.join(prefix, 'var/log/engines'));
  const secret = path.join(dir, 'root-file');
  await writeFile(secret, 'root only\n', { mode: 0o600 });
  await writeFile(path.join(prefix, 'var/lib/canopsis/canopsis.db'), '');
  await symlink(secret, path.join(prefix, 'var/log/pointer'));
  await chown(path.join(prefix, 'var/log'), 0, 0);
  const fixed = await install(prefix);
  assert.equal(fixed.exitCode, 0, fixed.all);
  assert.match(fixed.stdout, /gave \d+ entr(y|ies) under var\/ back to canopsis/);
  assert.equal(await owner(path.join(prefix, 'var/log/engines')), `${USER}:${USER} 755`);
  assert.equal(await owner(path.join(prefix, 'var/log')), `${USER}:${USER} 755`);
  assert.equal(await owner(path.join(prefix, 'var/lib/canopsis/canopsis.db')), `${USER}:${USER} 644`);
  assert.equal(await owner(secret), 'root:root 600', 'a link is given, never what it points at');
});

test('secret files an older release gave the service user are taken back; the lock owner file never follows a link', async () => {
  const prefix = path.join(dir, 'takeback');
  assert.equal((await install(prefix)).exitCode, 0);
  // 0.3.0: secrets 0600 and the service user's.
  for (const f of ['etc/canopsis-secrets.ini', 'etc/amqp.conf']) {
    await chown(path.join(prefix, f), uid, gid);
    await chmod(path.join(prefix, f), 0o600);
  }
  const bait = path.join(dir, 'bait');
  await writeFile(bait, 'untouched\n');
  await symlink(bait, path.join(prefix, 'var/lib/pkgmgr/install.lock.owner'));
  const r = await install(prefix, '--json');
  assert.equal(r.exitCode, 0, r.all);
  for (const f of ['etc/canopsis-secrets.ini', 'etc/amqp.conf']) assert.equal(await owner(path.join(prefix, f)), `root:${USER} 640`, f);
  assert.equal(await readFile(bait, 'utf8'), 'untouched\n');
});

test("a prefix the service user can write is refused; so is a link planted as supervisord's socket", async () => {
  const prefix = path.join(dir, 'writable');
  assert.equal((await install(prefix)).exitCode, 0);
  await chown(prefix, uid, gid);
  const r = await install(prefix);
  assert.equal(r.exitCode, 3, r.all);
  assert.match(r.stderr, new RegExp(`prefix: found canopsis can write ${prefix} \\(owner uid ${uid}, mode 755\\), the prefix`));
  await chown(prefix, 0, 0);

  const planted = await asService(['ln', '-s', '/run/some-other.sock', path.join(prefix, 'var/run/supervisor.sock')]);
  assert.equal(planted.exitCode, 0, planted.all);
  const status = await run(path.join(prefix, 'bin/hypcontrol'), ['status'], { env: { CPS_PREFIX: prefix } });
  assert.equal(status.exitCode, 125, status.all);
  assert.match(status.stderr, /var\/run\/supervisor\.sock is not supervisord's socket \(it is a symbolic link\)/);
});

test('an unsafe --prefix is refused before anything is written', async () => {
  const prefix = path.join(dir, 'has space');
  const r = await install(prefix);
  assert.equal(r.exitCode, 2, r.all);
  assert.match(r.stderr, /--prefix ".*has space": only letters, digits and _ \. \/ \+ @ : - are allowed/);
  await assert.rejects(stat(prefix));
});
