import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { after, before, test } from 'node:test';
import { execa } from 'execa';
import { waitFor } from '../helpers/index.js';
import { cleanupStale, createNet, type NetProcess, type TestNet } from '../helpers/netns.js';

/*
 * The network-namespace harness of the multi-host tests (test/helpers/netns.ts):
 * three hosts reach each other by address and by name, not the machine's
 * own services, and teardown leaves no namespace, link, file or process,
 * also after a creation that failed half-way or a run that crashed.
 */

const root = process.getuid?.() === 0;
const skip = root ? false : 'needs root (ip netns)';
// Unique per run: two runs at once each get their own namespaces (a subnet is private to its bridge).
const PREFIX = `nh${randomBytes(3).toString('hex')}`;
const SUBNET = '10.231.19';
const PORT = 7019;

let net: TestNet;
let server: NetProcess;
let linksBefore: string[];

const rootLinks = async () =>
  String((await execa('ip', ['-o', 'link', 'show'])).stdout)
    .split('\n')
    .map((l) => l.split(':')[1]?.trim() ?? '')
    .sort();
const namespaces = async () =>
  String((await execa('ip', ['netns', 'list'])).stdout)
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
const ours = async (prefix = PREFIX) => (await namespaces()).filter((n) => n.startsWith(`${prefix}-`));
const etcNetns = async (prefix = PREFIX) => {
  try {
    return (await readdir('/etc/netns')).filter((n) => n.startsWith(`${prefix}-`));
  } catch {
    return [];
  }
};
/** Gone, or a zombie waiting for its parent (it has left its namespace). */
const gone = async (pid: number) => {
  try {
    return (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /s, '').startsWith('Z');
  } catch {
    return true;
  }
};

/** A node one-liner as an argv for the embedded node. */
const nodeArgs = (code: string) => ['-e', code];

/** A TCP client in `from` that prints what the server at host:port sends, or the error code. */
const connect = (from: string, host: string, port = PORT) =>
  net.exec(
    from,
    process.execPath,
    nodeArgs(
      `const s = require('node:net').connect({ host: ${JSON.stringify(host)}, port: ${port}, timeout: 3000 });` +
        `let d = ''; s.on('data', (c) => (d += c)); s.on('end', () => console.log(d));` +
        `s.on('timeout', () => { console.log('TIMEOUT'); s.destroy(); }); s.on('error', (e) => console.log(e.code));`,
    ),
    { timeout: 15_000 },
  );

before(async () => {
  if (!root) return;
  await cleanupStale(PREFIX);
  linksBefore = await rootLinks();
  net = await createNet({ prefix: PREFIX, subnet: SUBNET, hosts: ['alpha', 'beta', 'gamma'] });
});

after(async () => {
  if (!root) return;
  await net?.teardown();
  await cleanupStale(PREFIX);
});

test('three namespaces, each with lo up and eth0 on the subnet, no route out', { skip }, async () => {
  assert.deepEqual((await ours()).sort(), [`${PREFIX}-alpha`, `${PREFIX}-beta`, `${PREFIX}-br`, `${PREFIX}-gamma`]);
  assert.deepEqual(
    Object.values(net.hosts).map((h) => [h.name, h.ns, h.ip]),
    [
      ['alpha', `${PREFIX}-alpha`, `${SUBNET}.11`],
      ['beta', `${PREFIX}-beta`, `${SUBNET}.12`],
      ['gamma', `${PREFIX}-gamma`, `${SUBNET}.13`],
    ],
  );
  for (const h of Object.values(net.hosts)) {
    const addr = await net.exec(h.name, 'ip', ['-o', '-4', 'addr', 'show']);
    assert.equal(addr.exitCode, 0, addr.all);
    assert.match(addr.stdout, /\blo\s+inet 127\.0\.0\.1\/8/);
    assert.match(addr.stdout, new RegExp(`\\beth0\\s+inet ${h.ip.replaceAll('.', '\\.')}/24`));
    const routes = await net.exec(h.name, 'ip', ['-4', 'route', 'show']);
    assert.equal(routes.stdout.trim(), `${SUBNET}.0/24 dev eth0 proto kernel scope link src ${h.ip}`, 'only the subnet, no default route');
  }
  // Not one link was added to the root namespace.
  assert.deepEqual(await rootLinks(), linksBefore);
});

test('every namespace sees the hosts file, and resolves the others by name', { skip }, async () => {
  for (const h of Object.values(net.hosts)) {
    assert.equal(await readFile(`/etc/netns/${h.ns}/hosts`, 'utf8'), net.hostsFile);
    const hosts = await net.exec(h.name, 'cat', ['/etc/hosts']);
    assert.equal(`${hosts.stdout}\n`, net.hostsFile, 'ip netns exec bind-mounts /etc/netns/<ns>/hosts over /etc/hosts');
    const r = await net.exec(h.name, 'getent', ['hosts', 'alpha', 'beta', 'gamma']);
    assert.equal(r.exitCode, 0, r.all);
    assert.deepEqual(
      r.stdout.split('\n').map((l) => l.split(/\s+/)),
      [
        [`${SUBNET}.11`, 'alpha'],
        [`${SUBNET}.12`, 'beta'],
        [`${SUBNET}.13`, 'gamma'],
      ],
    );
  }
  // The machine's own /etc/hosts is untouched (the bind mount is in the command's mount namespace only).
  assert.doesNotMatch(await readFile('/etc/hosts', 'utf8'), /\balpha\b/);
});

test('a TCP server in one namespace is reached from the others by address and by name', { skip }, async () => {
  server = net.spawn(
    'alpha',
    process.execPath,
    nodeArgs(
      `require('node:net').createServer((s) => s.end('hello from ' + s.localAddress + ' to ' + s.remoteAddress))` +
        `.listen(${PORT}, '0.0.0.0', () => console.log('listening'));`,
    ),
  );
  let out = '';
  server.stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  await waitFor('the server in alpha', async () => out.includes('listening'), 15_000);
  for (const from of ['beta', 'gamma'] as const) {
    const by = { ip: net.host('alpha').ip, name: 'alpha' };
    for (const target of [by.ip, by.name]) {
      const r = await connect(from, target);
      assert.equal(r.exitCode, 0, r.all);
      assert.equal(r.stdout, `hello from ${net.host('alpha').ip} to ${net.host(from).ip}`, `${from} -> ${target}`);
    }
  }
  // Its own namespace reaches it on loopback too.
  assert.equal((await connect('alpha', '127.0.0.1')).stdout, 'hello from 127.0.0.1 to 127.0.0.1');
  // ip netns exec execs the command: the spawned pid is the server's, in alpha's namespace.
  assert.equal((await net.pids('alpha')).includes(server.pid!), true);
});

test("a namespace cannot reach the machine's services: not its 127.0.0.1:5672, not its addresses", { skip }, async () => {
  // 127.0.0.1 is the namespace's own loopback, where nothing listens.
  assert.equal((await connect('beta', '127.0.0.1', 5672)).stdout, 'ECONNREFUSED');
  const machine = Object.values(os.networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
  if (machine) assert.equal((await connect('beta', machine, 5672)).stdout, 'ENETUNREACH');
});

test('commands run as another user, and with the host name as hostname if asked', { skip }, async () => {
  const id = await net.exec('gamma', 'id', ['-u'], { user: 'nobody', group: 'nogroup' });
  assert.equal(id.stdout, '65534', id.all);
  assert.equal((await net.exec('gamma', 'hostname', [])).stdout, os.hostname(), 'ip netns does not change the UTS namespace');
  assert.equal((await net.exec('gamma', 'hostname', [], { hostname: true })).stdout, 'gamma');
  // Both at once: the new UTS namespace is made as root, then the user is switched to.
  const both = await net.exec('gamma', 'sh', ['-c', 'echo $(id -u) $(hostname)'], { user: 'nobody', group: 'nogroup', hostname: true });
  assert.equal(both.stdout, '65534 gamma', both.all);
  await assert.rejects(net.exec('nowhere', 'true', []), /no host nowhere/);
});

test('killAll stops what runs on one host: asked with a signal first, then killed', { skip }, async () => {
  const polite = net.spawn('gamma', 'sleep', ['600']);
  // Ignores SIGTERM (and so does the sleep it runs, which inherits the ignored signal).
  const stubborn = net.spawn('gamma', 'sh', ['-c', 'trap "" TERM; echo ready; sleep 600; :']);
  let ready = '';
  stubborn.stdout.on('data', (c: Buffer) => {
    ready += c.toString();
  });
  // Once the trap is set (before it, SIGTERM would end the shell).
  await waitFor('both in gamma', async () => ready.includes('ready') && (await net.pids('gamma')).includes(polite.pid!));
  const started = Date.now();
  await net.killAll('gamma', 'SIGTERM', 500);
  assert.equal(Date.now() - started >= 500, true, 'waited the grace time for the stubborn one');
  assert.equal((await polite).signal, 'SIGTERM');
  assert.equal((await stubborn).signal, 'SIGKILL');
  assert.deepEqual(await net.pids('gamma'), []);
  // The other hosts' processes are left alone.
  assert.equal((await net.pids('alpha')).includes(server.pid!), true);
});

test('teardown kills every process, deletes namespaces, links and files; twice is fine', { skip }, async () => {
  // A process that left its parent (setsid, double fork) still dies with its namespace.
  const daemon = await net.exec('beta', 'sh', ['-c', 'setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $!']);
  const sleeper = net.spawn('gamma', 'sleep', ['600']);
  const pids = [
    ...(await net.pids('alpha')),
    ...(await net.pids('beta')),
    ...(await net.pids('gamma')),
    Number(daemon.stdout),
    sleeper.pid!,
  ];
  assert.equal(pids.includes(Number(daemon.stdout)), true);
  assert.equal(pids.length >= 3, true);
  await net.teardown();
  await net.teardown();
  assert.deepEqual(await ours(), []);
  assert.deepEqual(await etcNetns(), []);
  assert.deepEqual(await rootLinks(), linksBefore);
  await waitFor('every process of the namespaces gone', async () => (await Promise.all(pids.map(gone))).every(Boolean), 10_000);
  assert.equal((await server).signal, 'SIGKILL');
  assert.equal((await sleeper).signal, 'SIGKILL');
});

test('a creation that fails half-way leaves nothing behind', { skip }, async () => {
  const prefix = `${PREFIX}f`;
  // The third host's /etc/netns entry cannot be made (a file is in the way): namespaces exist by then.
  await mkdir('/etc/netns', { recursive: true });
  await writeFile(`/etc/netns/${prefix}-c`, 'in the way');
  await assert.rejects(createNet({ prefix, subnet: SUBNET, hosts: ['a', 'b', 'c'] }), /EEXIST|ENOTDIR/);
  assert.deepEqual(await ours(prefix), []);
  assert.deepEqual(await etcNetns(prefix), []);
  assert.deepEqual(await rootLinks(), linksBefore);
  // Names are checked before anything is made.
  await assert.rejects(createNet({ prefix: 'Bad_Prefix', subnet: SUBNET, hosts: ['a'] }), /bad netns prefix/);
  await assert.rejects(createNet({ prefix, subnet: '10.300.1', hosts: ['a'] }), /bad subnet/);
  await assert.rejects(createNet({ prefix, subnet: SUBNET, hosts: ['a', 'a'] }), /unique/);
});

test("cleanupStale removes a crashed run's namespaces, processes and files", { skip }, async () => {
  const prefix = `${PREFIX}s`;
  const crashed = await createNet({ prefix, subnet: SUBNET, hosts: ['x', 'y'] });
  const orphan = crashed.spawn('y', 'sleep', ['600']);
  await waitFor('the sleeper in y', async () => (await crashed.pids('y')).includes(orphan.pid!));
  // A second net with the same names is refused while the first is there.
  await assert.rejects(createNet({ prefix, subnet: SUBNET, hosts: ['x'] }), /already exist.*cleanupStale/);
  assert.deepEqual((await cleanupStale(prefix)).sort(), [`${prefix}-br`, `${prefix}-x`, `${prefix}-y`]);
  assert.deepEqual(await ours(prefix), []);
  assert.deepEqual(await etcNetns(prefix), []);
  assert.equal((await orphan).signal, 'SIGKILL');
  assert.deepEqual(await cleanupStale(prefix), []);
});
