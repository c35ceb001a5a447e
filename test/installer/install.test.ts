import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import lockfile from 'proper-lockfile';
import { buildInstall, CLI, isolatedPorts, removeDir, run, snapshot, tempDir } from '../helpers/index.js';

/*
 * The CLI end to end on a real prefix: what the operator sees (exit codes,
 * messages, files) on first install, re-runs, edits and refusals.
 */

const PORTS = isolatedPorts(5740);
let dir: string;

before(async () => {
  dir = await tempDir('install');
});
after(async () => {
  await removeDir(dir);
});

const json = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!);

test('install, re-run writes nothing, an edit survives a settings change with .dist beside it', async () => {
  const prefix = path.join(dir, 'p1');
  const first = await buildInstall(['--prefix', prefix, '--json', ...PORTS]);
  assert.equal(first.exitCode, 0, first.all);
  const r1 = json(first.stdout);
  assert.ok(r1.written > 30, `first install writes the tree (${r1.written})`);
  assert.ok(r1.validatedBy.includes('supervisord') && r1.validatedBy.includes('systemd-analyze verify'), r1.validatedBy.join());
  const secrets = await stat(path.join(prefix, 'etc/canopsis-secrets.ini'));
  assert.equal(secrets.mode & 0o777, 0o640);
  assert.equal(secrets.uid, 0, 'root owns the secrets: the service user only reads them');
  assert.ok(
    !first.all.includes((await readFile(path.join(prefix, 'etc/canopsis-secrets.ini'), 'utf8')).match(/password = (\S+)/)![1]!),
    'the password is never printed',
  );

  // The release is self-contained: the installed commands run from it.
  for (const command of ['engine-launcher', 'dead-letters', 'service', 'hypcontrol']) {
    const help = await run(path.join(prefix, 'bin', command), ['--help']);
    assert.equal(help.exitCode, 0, help.all);
    assert.match(help.stdout, new RegExp(`Usage: ${command}`));
  }
  // service and hypcontrol refuse an unknown action by name, with the usage exit code.
  const badAction = await run(path.join(prefix, 'bin', 'service'), ['webserver', 'reload']);
  assert.equal(badAction.exitCode, 2, badAction.all);
  assert.match(badAction.stderr, /'reload' is invalid for argument 'action'.*start, stop, restart, status/);
  const noAction = await run(path.join(prefix, 'bin', 'hypcontrol'), []);
  assert.equal(noAction.exitCode, 2, noAction.all);
  const launch = await run(path.join(prefix, 'bin', 'engine-che'), ['--help']);
  assert.match(launch.stdout, /-publishQueue/);

  const before = await snapshot(prefix);
  const second = await buildInstall(['--prefix', prefix, ...PORTS, '--timings']);
  assert.equal(second.exitCode, 0, second.all);
  assert.match(second.stdout, /already up to date, 0 files written/);
  // Every validator accepted these very files on the first run: none runs again.
  assert.match(second.stdout, /unchanged since validated: .*supervisord.*/);
  assert.match(second.stdout, /Time per step:\n(\s+\d+\.\d\d s {2}.*\n)+\s+\d+\.\d\d s {2}total/);
  assert.deepEqual(await snapshot(prefix), before, 'a second identical run changes no file, not even its mtime');

  // The operator edits a conffile, then changes a setting that changes our version of it.
  const conf = path.join(prefix, 'etc/webserver.conf');
  const edited = `${await readFile(conf, 'utf8')}\n; operator: keep this\n`;
  await writeFile(conf, edited);
  const third = await buildInstall(['--prefix', prefix, ...PORTS, '--set', 'webserver.port=5799']);
  assert.equal(third.exitCode, 0, third.all);
  assert.equal(await readFile(conf, 'utf8'), edited, 'the edit survives');
  assert.match(await readFile(`${conf}.dist`, 'utf8'), /port = 5799/);
  assert.match(third.stdout, /etc\/webserver\.conf\.dist/);
  assert.match(await readFile(path.join(prefix, 'etc/canopsis.ini'), 'utf8'), /\nport = 5799\n/, '--set is kept in canopsis.ini');

  // Untouched files follow the setting; the next run is quiet again.
  const fourth = await buildInstall(['--prefix', prefix, '--json']);
  assert.equal(fourth.exitCode, 0, fourth.all);
  assert.equal(json(fourth.stdout).written, 0);
  assert.deepEqual(json(fourth.stdout).validatedBy, []);
  assert.ok(json(fourth.stdout).timings.some((t: { step: string }) => t.step === 'Validate rendered files with their programs'));
  assert.deepEqual(json(fourth.stdout).dist, ['etc/webserver.conf.dist']);
});

test('a bad value: exit 2, the path-qualified reason, nothing written', async () => {
  const prefix = path.join(dir, 'bad');
  const r = await buildInstall(['--prefix', prefix, ...PORTS, '--set', 'engine:che.numprocs=zero']);
  assert.equal(r.exitCode, 2);
  assert.match(r.stderr, new RegExp(`${prefix}/etc/canopsis\\.ini:engine:che\\.numprocs: found "zero" \\(from --set\\)`));
  await assert.rejects(stat(prefix), 'the prefix was not even created');
});

test("a file its program rejects stops the run with that program's message; the live tree stays as it was", async () => {
  const prefix = path.join(dir, 'reject');
  assert.equal((await buildInstall(['--prefix', prefix, ...PORTS])).exitCode, 0);
  // The accepted rabbitmq.conf is on record: a changed one is checked all the same.
  const record = JSON.parse(await readFile(path.join(prefix, 'var/lib/pkgmgr/validated.json'), 'utf8'));
  assert.match(record.accepted['RabbitMQ config check (cuttlefish)'], /^[0-9a-f]{64}$/);
  const before = await snapshot(prefix);
  // Valid for the schema, but RabbitMQ's listener wants an IP address.
  const r = await buildInstall(['--prefix', prefix, ...PORTS, '--set', 'rabbitmq.host=localhost']);
  assert.equal(r.exitCode, 4, r.all);
  assert.match(r.stderr, /etc\/rabbitmq\/rabbitmq\.conf rejected by RabbitMQ config check/);
  assert.match(r.stderr, /"localhost:5740" cannot be converted to a\(n\) IP/);
  assert.deepEqual(await snapshot(prefix), before);
});

test("a run validates only what changed: the validators of the changed files run, the others are skipped; a record not root's is ignored", async () => {
  const prefix = path.join(dir, 'verdicts');
  const first = await buildInstall(['--prefix', prefix, ...PORTS, '--json']);
  assert.equal(first.exitCode, 0, first.all);
  const all = json(first.stdout).validatedBy as string[];
  assert.ok(all.length >= 6, all.join());
  // Only collectd.conf changes: only collectd looks at it again.
  const interval = await buildInstall(['--prefix', prefix, '--set', 'collectd.interval=30', '--json']);
  assert.equal(interval.exitCode, 0, interval.all);
  assert.deepEqual(json(interval.stdout).validatedBy, ['collectd -T']);
  assert.deepEqual(json(interval.stdout).unchangedSinceValidated.sort(), all.filter((p) => p !== 'collectd -T').sort());
  // Back to the value accepted before: its verdict was replaced, so collectd runs once more.
  const back = await buildInstall(['--prefix', prefix, '--set', 'collectd.interval=10', '--json']);
  assert.deepEqual(json(back.stdout).validatedBy, ['collectd -T']);
  // A record the service user could have written decides nothing: every validator runs, and the run says why.
  const record = path.join(prefix, 'var/lib/pkgmgr/validated.json');
  await chmod(record, 0o666);
  const distrusted = await buildInstall(['--prefix', prefix, '--json']);
  assert.equal(distrusted.exitCode, 0, distrusted.all);
  assert.deepEqual(json(distrusted.stdout).validatedBy.sort(), [...all].sort());
  assert.ok(
    json(distrusted.stdout).warnings.some((w: string) => /validated\.json is writable by others .*every file is validated again/.test(w)),
    json(distrusted.stdout).warnings.join('\n'),
  );
  assert.equal((await stat(record)).mode & 0o777, 0o644, 'and root wrote it again, its own');
});

test('preflight refuses a dbPath filesystem below min_free_disk, lists every failure, writes nothing', async () => {
  const prefix = path.join(dir, 'disk');
  const r = await buildInstall([
    '--prefix',
    prefix,
    ...PORTS,
    '--set',
    'store.backend=mongodb',
    '--set',
    'store.mongodb_mode=local',
    '--set',
    'store.min_free_disk=1000PiB',
  ]);
  assert.equal(r.exitCode, 3, r.all);
  assert.match(r.stderr, /preflight failed/);
  assert.match(r.stderr, new RegExp(`disk: found .* free on the filesystem of the MongoDB dbPath ${prefix}/var/lib/mongodb`));
  assert.match(r.stderr, /needs 1000 PiB \(store\.min_free_disk\)/);
  // No mongod on Debian: reported in the same run, with a way out.
  assert.match(r.stderr, /binaries: found mongod missing/);
  await assert.rejects(stat(prefix));

  const skipped = await buildInstall([
    'check',
    '--prefix',
    prefix,
    ...PORTS,
    '--set',
    'store.backend=mongodb',
    '--set',
    'store.mongodb_mode=local',
    '--set',
    'store.min_free_disk=1000PiB',
    '--skip-check',
    'disk',
    '--skip-check',
    'binaries',
  ]);
  assert.equal(skipped.exitCode, 0, skipped.all);
  assert.match(skipped.stdout, /skipped: disk, binaries/);
});

test('a port held by another program is refused, naming it', async () => {
  // 5672 is this machine's own RabbitMQ.
  const r = await buildInstall(['check', '--prefix', path.join(dir, 'ports'), ...PORTS, '--set', 'rabbitmq.port=5672']);
  assert.equal(r.exitCode, 3, r.all);
  assert.match(r.stderr, /ports: found port 5672 for rabbitmq \(AMQP\)/);
});

test('as root, a prefix the service user cannot reach is refused before anything is written', async () => {
  const closed = path.join(dir, 'closed');
  await mkdir(closed, { mode: 0o700 });
  await chmod(closed, 0o700);
  const prefix = path.join(closed, 'p');
  const r = await buildInstall(['--prefix', prefix, ...PORTS]);
  assert.equal(r.exitCode, 3, r.all);
  assert.match(r.stderr, new RegExp(`prefix: found canopsis cannot enter ${closed} \\(mode 700\\)`));
  await assert.rejects(stat(prefix));
});

test('one run at a time: a second run while the prefix is locked says so', async () => {
  const prefix = path.join(dir, 'lock');
  assert.equal((await buildInstall(['--prefix', prefix, ...PORTS])).exitCode, 0);
  const pkgmgr = path.join(prefix, 'var/lib/pkgmgr');
  const release = await lockfile.lock(pkgmgr, { lockfilePath: path.join(pkgmgr, 'install.lock') });
  try {
    const r = await buildInstall(['--prefix', prefix, ...PORTS]);
    assert.equal(r.exitCode, 5, r.all);
    assert.match(r.stderr, /another build-install is running on/);
  } finally {
    await release();
  }
});

test('plan shows diffs of conffiles without secrets and changes nothing', async () => {
  const prefix = path.join(dir, 'plan');
  assert.equal((await buildInstall(['--prefix', prefix, ...PORTS])).exitCode, 0);
  const before = await snapshot(prefix);
  const r = await buildInstall(['plan', '--prefix', prefix, ...PORTS, '--set', 'rabbitmq.prefetch=50']);
  assert.equal(r.exitCode, 0, r.all);
  assert.match(r.stdout, /update etc\/amqp\.conf/);
  assert.match(r.stdout, /-prefetch = 1000\n\s+\+prefetch = 50/);
  const pw = (await readFile(path.join(prefix, 'etc/canopsis-secrets.ini'), 'utf8')).match(/password = (\S+)/)![1]!;
  assert.ok(!r.stdout.includes(pw), 'secrets are masked');
  assert.deepEqual(await snapshot(prefix), before);
});

test('as a normal user: installs into a prefix it can write, services run as that user', async () => {
  // A regular account (systemd rightly refuses units running as nobody).
  const user = 'cpsoperator';
  if ((await run('id', ['-u', user])).exitCode !== 0) {
    const add = await run('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', user]);
    assert.equal(add.exitCode, 0, add.all);
  }
  const uid = Number((await run('id', ['-u', user])).stdout.trim());
  const prefix = path.join(dir, 'operator');
  await mkdir(prefix, { recursive: true });
  await chmod(dir, 0o755);
  await run('chown', [`${user}:${user}`, prefix]);
  // setpriv drops privileges; node and the repository are world-readable.
  const r = await run(
    'setpriv',
    [
      '--reuid',
      user,
      '--regid',
      user,
      '--clear-groups',
      process.execPath,
      CLI,
      '--prefix',
      prefix,
      ...isolatedPorts(5750),
      '--no-install-deps',
    ],
    {
      env: { HOME: prefix },
    },
  );
  assert.equal(r.exitCode, 0, r.all);
  assert.match(r.stdout, new RegExp(`Not root: the services will run as ${user}`));
  assert.match(await readFile(path.join(prefix, 'etc/canopsis.ini'), 'utf8'), new RegExp(`\\nuser = ${user}\\n`));
  assert.doesNotMatch(await readFile(path.join(prefix, 'etc/supervisord.conf'), 'utf8'), /^user=/m);
  assert.equal((await stat(path.join(prefix, 'etc/amqp.conf'))).uid, uid);
});

test('--help works for every command', async () => {
  for (const args of [['--help'], ['install', '--help'], ['plan', '--help'], ['check', '--help'], ['deps', '--help']]) {
    const r = await buildInstall(args);
    assert.equal(r.exitCode, 0, `${args.join(' ')}: ${r.all}`);
    assert.match(r.stdout, /Usage: build-install/);
  }
});

test('--conffile-policy: replace takes ours and keeps yours as .operator; ask needs a terminal', async () => {
  const prefix = path.join(dir, 'policy');
  assert.equal((await buildInstall(['--prefix', prefix, ...PORTS])).exitCode, 0);
  const conf = path.join(prefix, 'etc/webserver.conf');
  const edited = `${await readFile(conf, 'utf8')}; mine\n`;
  await writeFile(conf, edited);
  const ask = await buildInstall(['--prefix', prefix, ...PORTS, '--set', 'webserver.port=5798', '--conffile-policy', 'ask']);
  assert.equal(ask.exitCode, 2, ask.all);
  assert.match(ask.stderr, /--conffile-policy ask needs a terminal \(etc\/webserver\.conf was edited/);
  assert.equal(await readFile(conf, 'utf8'), edited, 'nothing written');
  const r = await buildInstall(['--prefix', prefix, ...PORTS, '--set', 'webserver.port=5798', '--conffile-policy', 'replace']);
  assert.equal(r.exitCode, 0, r.all);
  assert.match(await readFile(conf, 'utf8'), /port = 5798/);
  assert.equal(await readFile(`${conf}.operator`, 'utf8'), edited);
  assert.match(r.stdout, /Replaced your edits .*etc\/webserver\.conf/);
});
