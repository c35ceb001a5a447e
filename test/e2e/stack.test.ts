import assert from 'node:assert/strict';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import amqp from 'amqplib';
import ini from 'ini';
import { SqliteStore } from '../../runtime/store/sqlite.js';
import { apiFetch } from '../helpers/api.js';
import { CLI, removeDir, run, tempDir, waitFor } from '../helpers/index.js';

/*
 * The whole appliance with real processes: build-install into a temp prefix
 * as a normal user, its own RabbitMQ node (other ports, own node name),
 * supervisord, collectd, the engines and the webserver; 10,000 events; an
 * engine killed five times and the broker restarted; numprocs changed; the
 * same faults with the engines fused.
 */

const USER = 'cpsoperator';
const BASE = 5820;
const SETS = [
  `rabbitmq.port=${BASE}`,
  `rabbitmq.dist_port=${BASE + 1}`,
  `rabbitmq.management_port=${BASE + 2}`,
  `webserver.port=${BASE + 3}`,
  `rabbitmq.node_name=cpse2e${BASE}@localhost`,
  'collectd.interval=2',
].flatMap((s) => ['--set', s]);

let dir: string;
let prefix: string;

const asUser = (file: string, args: string[], timeout = 600_000) =>
  run('setpriv', ['--reuid', USER, '--regid', USER, '--init-groups', file, ...args], {
    env: { CPS_PREFIX: prefix, HOME: prefix, PATH: process.env.PATH },
    timeout,
  });
const bin = (name: string, ...args: string[]) => asUser(path.join(prefix, 'bin', name), args);
const install = (...extra: string[]) => asUser(process.execPath, [CLI, '--prefix', prefix, '--no-install-deps', ...SETS, ...extra]);

let authkey = '';
const api = async (url: string) => {
  const r = await apiFetch(prefix, url, { headers: { 'x-canopsis-authkey': authkey } });
  return (await r.json()) as { data: Array<Record<string, unknown>>; meta: { total_count: number } };
};

async function brokerUrl(): Promise<string> {
  const m = ini.parse(await readFile(path.join(prefix, 'etc', 'amqp.conf'), 'utf8')).master;
  return `amqp://${m.userid}:${encodeURIComponent(m.password)}@127.0.0.1:${m.port}/${m.virtual_host}`;
}

/** A connector: publishes check events to canopsis.events with confirms. */
async function connector(events: Array<Record<string, unknown>>): Promise<void> {
  const conn = await amqp.connect(await brokerUrl());
  const ch = await conn.createConfirmChannel();
  for (const e of events) {
    const key = `${e.connector}.${e.connector_name}.check.resource.${e.component}.${e.resource}`;
    if (!ch.publish('canopsis.events', key, Buffer.from(JSON.stringify(e)), { persistent: true }))
      await new Promise((r) => ch.once('drain', r));
  }
  await ch.waitForConfirms();
  await ch.close();
  await conn.close();
}

const checks = (tag: string, n: number) =>
  Array.from({ length: n }, (_, i) => ({
    connector: 'e2e',
    connector_name: tag,
    event_type: 'check',
    source_type: 'resource',
    component: `${tag}-host${i % 50}`,
    resource: `svc${i}`,
    state: 1 + (i % 3),
    output: `${tag} ${i}`,
  }));

async function engineProcesses(): Promise<Array<{ name: string; pid: number }>> {
  const r = await asUser('supervisorctl', ['-c', path.join(prefix, 'etc', 'supervisord.conf'), 'status']);
  return r.stdout
    .split('\n')
    .map((l) => /^(amqp2engines:\S+)\s+RUNNING\s+pid (\d+)/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ name: m[1]!, pid: Number(m[2]) }));
}

before(async () => {
  if ((await run('id', ['-u', USER])).exitCode !== 0) {
    assert.equal(
      (await run('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', USER])).exitCode,
      0,
    );
  }
  dir = await tempDir('e2e');
  prefix = path.join(dir, 'canopsis');
  await mkdir(prefix);
  await chmod(prefix, 0o755);
  await run('chown', [`${USER}:${USER}`, prefix]);
});

after(async () => {
  await bin('hypcontrol', 'stop').catch(() => undefined);
  await run('pkill', ['-9', '-f', prefix]);
  await removeDir(dir);
});

test('as a normal user: build-install, hypcontrol start, every service ready', async () => {
  const r = await install();
  assert.equal(r.exitCode, 0, r.all);
  assert.match(r.stdout, new RegExp(`services will run as ${USER}`));
  authkey = ini.parse(await readFile(path.join(prefix, 'etc', 'canopsis-secrets.ini'), 'utf8')).api.authkey;
  const start = await bin('hypcontrol', 'start');
  assert.equal(start.exitCode, 0, start.all);
  for (const s of ['rabbitmq-server', 'collectd', 'amqp2engines', 'webserver']) assert.match(start.stdout, new RegExp(`${s} +ready`));
});

test('10,000 check events from a connector become alarms readable through the REST API', async () => {
  await connector(checks('bulk', 10_000));
  const total = await waitFor(
    '10,000 alarms',
    async () => {
      const t = (await api('/alarms?opened=true&limit=1')).meta?.total_count;
      return t === 10_000 ? t : undefined;
    },
    300_000,
    500,
  );
  assert.equal(total, 10_000);
  const page = await api('/alarms?opened=true&entity=svc42/bulk-host42');
  assert.equal(page.data.length, 1);
  assert.equal((page.data[0]!.v as { state: { val: number } }).state.val, 1 + (42 % 3));
});

/**
 * While a connector publishes 5,000 events: five times, an engine process
 * picked by `pick` killed -9 and restarted by supervisord; then the broker
 * restarted. Every event must still become an alarm, `total` in all.
 */
async function faults(
  tag: string,
  total: number,
  pick: (procs: Array<{ name: string; pid: number }>, i: number) => { name: string; pid: number } | undefined,
): Promise<void> {
  const publishing = connector(checks(tag, 5000));
  for (let i = 0; i < 5; i++) {
    const victim = await waitFor('engines running', async () => pick(await engineProcesses(), i), 60_000);
    await run('kill', ['-9', String(victim.pid)]);
    // supervisord restarts it: wait for a new pid under the same name.
    await waitFor(
      `${victim.name} restarted`,
      async () => (await engineProcesses()).some((p) => p.name === victim.name && p.pid !== victim.pid),
      60_000,
    );
  }
  await publishing;
  const restart = await bin('service', 'rabbitmq-server', 'restart');
  assert.equal(restart.exitCode, 0, restart.all);
  await waitFor(`${total} alarms`, async () => (await api('/alarms?opened=true&limit=1')).meta?.total_count === total, 300_000, 500);
  const status = await waitFor(
    'every service ready again',
    async () => {
      const s = await bin('hypcontrol', 'status');
      return s.exitCode === 0 ? s : undefined;
    },
    120_000,
    1000,
  );
  assert.match(status.stdout, /amqp2engines +running/);
}

test('faults: an engine killed -9 five times and the broker restarted once, nothing lost, no engine left dead', async () => {
  await faults('fault', 15_000, (procs) => (procs.length >= 6 ? procs[Math.floor(Math.random() * procs.length)] : undefined));
});

test('a stopped service is named by hypcontrol status, which exits non-zero', async () => {
  assert.equal((await bin('service', 'collectd', 'stop')).exitCode, 0);
  const s = await bin('hypcontrol', 'status');
  assert.equal(s.exitCode, 1, s.all);
  assert.match(s.stdout, /collectd +DOWN/);
  assert.match(s.stdout, /1 service failed: collectd/);
  // The console's platform page sees what hypcontrol sees: the webserver reads the same supervisord.
  const platform = (await api('/platform')) as unknown as { processes: Array<{ name: string; state: string }> | null };
  await waitFor('the platform page naming collectd stopped', async () => {
    const p = (await api('/platform')) as unknown as typeof platform;
    return p.processes?.find((x) => x.name === 'collectd')?.state === 'STOPPED';
  });
  assert.ok(
    platform.processes?.some((x) => x.name.startsWith('amqp2engines:') && x.state === 'RUNNING'),
    JSON.stringify(platform.processes),
  );
  const svc = await bin('service', 'collectd', 'status');
  assert.equal(svc.exitCode, 3, svc.all);
  assert.equal((await bin('service', 'collectd', 'start')).exitCode, 0);
});

test("collectd's metrics for this host reach the store as perf data within two intervals", async () => {
  const store = new SqliteStore(path.join(prefix, 'var', 'lib', 'canopsis', 'canopsis.db'));
  try {
    const since = Math.floor(Date.now() / 1000);
    // Two intervals of 2 s, plus the pipeline.
    // The engines' own stats (resource Engine_<name>.<n>) land in the same
    // collection: only collectd's samples (resource = plugin[-instance]) count.
    const fromCollectd = async () =>
      (await store.collection<{ entity: string; metric: string }>('metrics').find({ timestamp: { $gte: since } })).find(
        (m) => !m.entity.startsWith('Engine_'),
      );
    const sample = await waitFor('fresh collectd samples', fromCollectd, 2 * 2 * 1000 + 10_000, 200);
    assert.match(sample.entity, /^[a-z]+(-[^/]+)?\/.+/);
  } finally {
    await store.close();
  }
});

test('numprocs changed in canopsis.ini, build-install, service amqp2engines restart: two che processes', async () => {
  const r = await install('--set', 'engine:che.numprocs=2');
  assert.equal(r.exitCode, 0, r.all);
  const restart = await bin('service', 'amqp2engines', 'restart');
  assert.equal(restart.exitCode, 0, restart.all);
  const che = (await engineProcesses()).filter((p) => p.name.startsWith('amqp2engines:engine-che-'));
  assert.deepEqual(che.map((p) => p.name).sort(), ['amqp2engines:engine-che-0', 'amqp2engines:engine-che-1']);
});

test('pipeline.fuse = true: the chain in fused processes, killed -9 five times and the broker restarted, nothing lost', async () => {
  const r = await install('--set', 'pipeline.fuse=true');
  assert.equal(r.exitCode, 0, r.all);
  const restart = await bin('service', 'amqp2engines', 'restart');
  assert.equal(restart.exitCode, 0, restart.all);
  const names = (await engineProcesses()).map((p) => p.name).sort();
  // che asked for 2 processes (the test above): the fused group runs as many.
  assert.deepEqual(names, [
    'amqp2engines:engine-collectdgw-0',
    'amqp2engines:engine-fused-cleaner-0',
    'amqp2engines:engine-fused-cleaner-1',
  ]);
  await faults('fused', 20_000, (procs, i) => {
    const fused = procs.filter((x) => x.name.includes('engine-fused-'));
    return fused.length === 2 ? fused[i % 2] : undefined;
  });
  // Back to one process per engine for the tests below (the che drop-in exists only then).
  const back = await install('--set', 'pipeline.fuse=false');
  assert.equal(back.exitCode, 0, back.all);
});

test('hypcontrol stop leaves no process of the appliance', async () => {
  const s = await bin('hypcontrol', 'stop');
  assert.equal(s.exitCode, 0, s.all);
  const left = await run('pgrep', ['-af', prefix]);
  assert.equal(left.stdout.trim(), '', `left running:\n${left.stdout}`);
});

test('init = systemd where systemd is not PID 1: units installed into the given directory, the stack runs under supervisord, proven by a probe alarm', async () => {
  const unitDir = path.join(dir, 'units');
  await mkdir(unitDir);
  await run('chown', [`${USER}:${USER}`, unitDir]);
  const r = await install('--set', 'canopsis.init=systemd', '--start', '--unit-dir', unitDir);
  assert.equal(r.exitCode, 0, r.all);
  assert.match(r.stdout, /units written to a given directory only: starting under supervisord|systemd is not PID 1 on this host/);
  assert.match(r.stdout, /Running \(supervisord\)/);
  assert.match(
    r.stdout,
    /Proof: a probe event went through the pipeline and came back as alarm [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.\n/,
  );
  const dropIn = await readFile(path.join(unitDir, 'canopsis-engine-go@engine-che.service.d', 'override.conf'), 'utf8');
  assert.match(dropIn, new RegExp(`ExecStart=\\nExecStart=/usr/bin/env ${prefix}/bin/%i -publishQueue Engine_pbehavior`));
  await readFile(path.join(unitDir, 'canopsis.target'), 'utf8');
  const s = await bin('hypcontrol', 'stop');
  assert.equal(s.exitCode, 0, s.all);
});
