import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, open, readdir, readFile, stat } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import amqp, { type Channel, type ChannelModel } from 'amqplib';
import { execa } from 'execa';
import ini from 'ini';
import { buildInstall, isolatedPorts, removeDir, tempDir, waitFor } from '../helpers/index.js';

/*
 * The appliance's own RabbitMQ node (rabbitmq.mode=local), started exactly as
 * the rendered supervisord program starts it: its command, environment and
 * directory, as the canopsis user (supervisord drops to it when started by
 * root), in a process group of its own. Engines must then be able to connect
 * with etc/amqp.conf and find the exchanges of etc/rabbitmq/definitions.json.
 */

const root = process.getuid?.() === 0;
const BASE = 5730;

interface Program {
  command: string;
  directory: string;
  env: Record<string, string>;
  stopsignal: string;
  logfile: string;
}

/** `KEY="value",KEY2="value2"`, supervisord's environment= syntax. */
function parseEnvironment(s: string | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of (s ?? '').matchAll(/([A-Za-z_][A-Za-z0-9_]*)="([^"]*)"/g)) env[m[1]!] = m[2]!;
  return env;
}

/** What supervisord runs for [program:rabbitmq-server]: its environment= over the [supervisord] one. */
async function rabbitmqProgram(prefix: string): Promise<Program> {
  const etc = path.join(prefix, 'etc');
  const main = ini.parse(await readFile(path.join(etc, 'supervisord.conf'), 'utf8'));
  const conf = ini.parse(await readFile(path.join(etc, 'supervisord.d', 'rabbitmq-server.conf'), 'utf8'));
  const p = conf['program:rabbitmq-server'];
  assert.ok(p?.command, 'supervisord.d/rabbitmq-server.conf has no [program:rabbitmq-server] command');
  return {
    command: p.command,
    directory: p.directory ?? prefix,
    env: { ...parseEnvironment(main.supervisord?.environment), ...parseEnvironment(p.environment) },
    stopsignal: p.stopsignal ?? 'TERM',
    logfile: p.stdout_logfile,
  };
}

async function serviceIds(user: string): Promise<{ uid: number; gid: number }> {
  const uid = Number((await execa('id', ['-u', user])).stdout.trim());
  const gid = Number((await execa('getent', ['group', user])).stdout.split(':')[2]);
  return { uid, gid };
}

const asUser = (ids: { uid: number; gid: number }) => ['setpriv', `--reuid=${ids.uid}`, `--regid=${ids.gid}`, '--init-groups', '--'];

async function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

interface Proc {
  pid: number;
  pgid: number;
  comm: string;
  uid: number;
}

/**
 * Processes of this node: in the process group we started, or carrying our
 * RABBITMQ_CONF_ENV_FILE in their environment (beam.smp, erl_child_setup,
 * inet_gethost...). epmd is left out: it is shared by every node on the host.
 */
async function nodeProcesses(pgid: number, envFile: string): Promise<Proc[]> {
  const out: Proc[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = await readFile(`/proc/${e}/stat`, 'utf8');
      const close = st.lastIndexOf(')');
      const comm = st.slice(st.indexOf('(') + 1, close);
      const fields = st.slice(close + 2).split(' ');
      if (fields[0] === 'Z' || comm === 'epmd') continue;
      const pg = Number(fields[2]);
      const environ = pg === pgid ? '' : await readFile(`/proc/${e}/environ`, 'utf8');
      if (pg !== pgid && !environ.split('\0').includes(`RABBITMQ_CONF_ENV_FILE=${envFile}`)) continue;
      const status = await readFile(`/proc/${e}/status`, 'utf8');
      out.push({ pid: Number(e), pgid: pg, comm, uid: Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]) });
    } catch {
      // gone meanwhile, or not readable
    }
  }
  return out;
}

/** The last lines of the node's logs, for a failure message. */
async function logTails(prefix: string, lines = 40): Promise<string> {
  const files = [path.join(prefix, 'var', 'log', 'rabbitmq-server.log')];
  const dir = path.join(prefix, 'var', 'log', 'rabbitmq');
  try {
    files.push(...(await readdir(dir)).map((f) => path.join(dir, f)));
  } catch {
    // no log directory
  }
  const parts: string[] = [];
  for (const f of files) {
    try {
      const text = (await readFile(f, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
      parts.push(`==> ${f} <==\n${text}`);
    } catch (e) {
      parts.push(`==> ${f} <== ${(e as Error).message}`);
    }
  }
  return parts.join('\n');
}

describe('the local RabbitMQ node started as supervisord would start it', {
  skip: !root && 'needs root (runs the node as the canopsis user)',
}, () => {
  let dir = '';
  let prefix = '';
  let program: Program;
  let ids: { uid: number; gid: number };
  let master: { host: string; port: number; userid: string; password: string; virtual_host: string };
  let child: ChildProcess | undefined;
  let exited: { code: number | null; signal: NodeJS.Signals | null; error?: string } | undefined;
  let pgid = 0;
  let conn: ChannelModel | undefined;
  const connErrors: Error[] = [];

  const connect = (username: string, password: string, vhost: string) =>
    amqp.connect({ protocol: 'amqp', hostname: master.host, port: master.port, username, password, vhost }, { timeout: 5_000 });

  /** rabbitmqctl beside rabbitmq-server, with the program's environment, as canopsis. */
  const rabbitmqctl = (...args: string[]) => {
    const [cmd, ...pre] = asUser(ids);
    return execa(cmd!, [...pre, path.join(path.dirname(program.command), 'rabbitmqctl'), ...args], {
      reject: false,
      all: true,
      cwd: program.directory,
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...program.env },
      extendEnv: false,
      timeout: 60_000,
    });
  };

  before(async () => {
    dir = await tempDir('rabbitmq');
    // The node runs as canopsis: the prefix's parents must be traversable by it.
    await chmod(dir, 0o755);
    prefix = path.join(dir, 'canopsis');
    // Small bounds, so that the node shows them.
    const r = await buildInstall([
      '--prefix',
      prefix,
      ...isolatedPorts(BASE),
      '--set',
      'retention.dead_letters_max=3',
      '--set',
      'rabbitmq.max_message_size=2MiB',
    ]);
    assert.equal(r.exitCode, 0, r.all);

    program = await rabbitmqProgram(prefix);
    ids = await serviceIds('canopsis');
    const amqpConf = ini.parse(await readFile(path.join(prefix, 'etc', 'amqp.conf'), 'utf8'));
    master = { ...amqpConf.master, port: Number(amqpConf.master.port) };
    assert.equal(master.port, BASE, 'etc/amqp.conf does not point at the isolated port');

    // supervisord: its own environment (HOME, CPS_PREFIX) under the program's, output appended to stdout_logfile.
    const log = await open(program.logfile, 'a');
    const [cmd, ...pre] = asUser(ids);
    try {
      child = spawn(cmd!, [...pre, program.command], {
        cwd: program.directory,
        env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...program.env },
        detached: true,
        stdio: ['ignore', log.fd, log.fd],
      });
    } finally {
      await log.close();
    }
    pgid = child.pid!;
    child.once('exit', (code, signal) => {
      exited = { code, signal };
    });
    child.once('error', (e) => {
      exited = { code: null, signal: null, error: e.message };
    });
    child.unref();

    let up: ChannelModel | { exited: NonNullable<typeof exited> };
    try {
      up = await waitFor(
        `an AMQP connection to ${master.host}:${master.port} as ${master.userid}`,
        async () => (exited ? { exited } : connect(master.userid, master.password, master.virtual_host)),
        60_000,
        250,
      );
    } catch (e) {
      assert.fail(`${(e as Error).message}\n${await logTails(prefix)}`);
    }
    if ('exited' in up)
      assert.fail(`${program.command} exited (${JSON.stringify(up.exited)}) before accepting connections\n${await logTails(prefix)}`);
    conn = up;
    conn.on('error', (e: Error) => connErrors.push(e));
  });

  after(async () => {
    if (conn) await conn.close().catch(() => undefined);
    if (pgid) {
      // Whatever happened above, no process of this node may outlive the test.
      const envFile = program?.env.RABBITMQ_CONF_ENV_FILE ?? '';
      const remaining = () => nodeProcesses(pgid, envFile);
      if ((await remaining()).length) {
        // As supervisord stops it; if rabbitmq-server is gone but its VM is not, ask the node itself.
        if (!exited) process.kill(pgid, 'SIGTERM');
        else await rabbitmqctl('stop');
        try {
          await waitFor('the node to stop', async () => (await remaining()).length === 0, 30_000, 250);
        } catch {
          for (const p of await remaining()) {
            try {
              process.kill(p.pid, 'SIGKILL');
            } catch {
              // already gone
            }
          }
          await waitFor('the node to die', async () => (await remaining()).length === 0, 10_000, 100);
        }
      }
    }
    if (dir) await removeDir(dir);
  });

  it('runs as canopsis, from rabbitmq-server with the rendered rabbitmq-env.conf', async () => {
    assert.equal(program.env.RABBITMQ_CONF_ENV_FILE, path.join(prefix, 'etc', 'rabbitmq', 'rabbitmq-env.conf'));
    // HOME holds the cookie the installer wrote: canopsis's own, 0400, in a directory of root's.
    assert.equal(program.env.HOME, path.join(prefix, 'etc', 'rabbitmq', 'erlang'));
    const cookie = await stat(path.join(program.env.HOME!, '.erlang.cookie'));
    assert.equal(cookie.uid, ids.uid);
    assert.equal(cookie.mode & 0o777, 0o400);
    assert.equal((await stat(program.env.HOME!)).uid, 0);
    const procs = await nodeProcesses(pgid, program.env.RABBITMQ_CONF_ENV_FILE!);
    const beams = procs.filter((p) => p.comm.startsWith('beam'));
    assert.equal(beams.length, 1, JSON.stringify(procs));
    assert.deepEqual(
      procs.map((p) => p.uid),
      procs.map(() => ids.uid),
      `every process of the node runs as canopsis: ${JSON.stringify(procs)}`,
    );
    // On the isolated port of etc/amqp.conf, not on the machine's own RabbitMQ.
    assert.equal(await portOpen(master.port), true);
  });

  it('has the canopsis exchanges of definitions.json, with their types', async () => {
    const ch: Channel = await conn!.createChannel();
    ch.on('error', () => undefined);
    const declared = {
      'canopsis.events': 'topic',
      'canopsis.dead': 'direct',
      'canopsis.collectd': 'topic',
      'canopsis.alerts': 'topic',
    } as const;
    for (const [name, type] of Object.entries(declared)) {
      await ch.checkExchange(name);
      // What the engines do: declaring an existing exchange with other attributes closes the channel (406).
      await ch.assertExchange(name, type, { durable: true, autoDelete: false, internal: false });
    }
    await ch.close();

    // The check has teeth: canopsis.events declared as direct is refused.
    const probe = await conn!.createChannel();
    const closed = new Promise((resolve) => probe.once('close', resolve));
    probe.on('error', () => undefined);
    await assert.rejects(
      probe.assertExchange('canopsis.events', 'direct', { durable: true }),
      /PRECONDITION.FAILED.*inequivalent arg 'type'/,
    );
    await closed;
    assert.deepEqual(connErrors, []);
  });

  it('rabbitmqctl, run as canopsis with the same environment, reaches the node and shows the exchange types', async () => {
    const r = await rabbitmqctl('-q', 'list_exchanges', '-p', master.virtual_host, 'name', 'type');
    assert.equal(r.exitCode, 0, r.all);
    const types = new Map(
      r.stdout
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .filter((f) => f.length === 2)
        .map(([n, t]) => [n!, t!]),
    );
    assert.equal(types.get('canopsis.events'), 'topic', r.stdout);
    assert.equal(types.get('canopsis.dead'), 'direct', r.stdout);
    assert.equal(types.get('canopsis.collectd'), 'topic', r.stdout);
    assert.equal(types.get('canopsis.alerts'), 'topic', r.stdout);
  });

  it('refuses a wrong password', async () => {
    await assert.rejects(connect(master.userid, `${master.password}x`, master.virtual_host), /ACCESS.REFUSED/);
  });

  it('has no guest user (guest/guest is refused even from the loopback)', async () => {
    await assert.rejects(connect('guest', 'guest', '/'), /ACCESS.REFUSED/);
  });

  it('bounds what grows: a dead-letter queue keeps its newest 3 (the policy of definitions.json), a message over max_message_size is refused', async () => {
    const policies = await rabbitmqctl('-q', 'list_policies', '-p', master.virtual_host);
    assert.match(policies.stdout, /canopsis-dead-letters/, policies.all);
    const ch = await conn!.createConfirmChannel();
    ch.on('error', () => undefined);
    await ch.assertQueue('Engine_bounded.dead', { durable: true });
    await ch.assertQueue('Engine_bounded', { durable: true });
    for (let i = 0; i < 5; i++) {
      ch.sendToQueue('Engine_bounded.dead', Buffer.from(`dead ${i}`), { persistent: true });
      ch.sendToQueue('Engine_bounded', Buffer.from(`live ${i}`), { persistent: true });
    }
    await ch.waitForConfirms();
    assert.equal((await ch.checkQueue('Engine_bounded.dead')).messageCount, 3, 'the oldest dead letters were dropped');
    assert.equal((await ch.checkQueue('Engine_bounded')).messageCount, 5, 'a live engine queue is never bounded');
    const first = await ch.get('Engine_bounded.dead', { noAck: true });
    assert.ok(first, 'a dead letter is there');
    assert.equal(first.content.toString(), 'dead 2');
    await ch.close();

    const big = await conn!.createConfirmChannel();
    const closed = new Promise<Error | undefined>((resolve) => big.once('error', resolve));
    big.sendToQueue('Engine_bounded', Buffer.alloc(3 * 2 ** 20, 1), { persistent: true });
    assert.match(
      String(((await closed) as Error)?.message),
      /PRECONDITION.FAILED.*message size 3145728 is larger than configured max size 2097152/,
    );
  });

  it(`stops cleanly on supervisord's stopsignal and frees its port`, async () => {
    await conn!.close();
    conn = undefined;
    assert.equal(program.stopsignal, 'TERM');
    // supervisord signals the program's process (not the group); rabbitmq-server traps it and stops the node.
    process.kill(child!.pid!, 'SIGTERM');
    await waitFor('rabbitmq-server to exit after SIGTERM', async () => exited, 120_000, 250);
    assert.deepEqual(exited, { code: 0, signal: null }, await logTails(prefix, 15));
    await waitFor(`port ${master.port} to close`, async () => !(await portOpen(master.port)), 30_000, 250);
    await waitFor(
      'no process of the node to remain',
      async () => (await nodeProcesses(pgid, program.env.RABBITMQ_CONF_ENV_FILE!)).length === 0,
      30_000,
      250,
    );
  });
});
