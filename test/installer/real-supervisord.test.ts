import assert from 'node:assert/strict';
import { chmod, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { buildInstall, isolatedPorts, removeDir, tempDir, waitFor } from '../helpers/index.js';

/*
 * The rendered supervisord configuration, run by the real supervisord: it
 * starts, knows every program (numprocs instances of each engine), drops
 * privileges to the service user and shuts down cleanly.
 */

const root = process.getuid?.() === 0;

/** `supervisorctl status` lines as name -> state; empty when supervisord does not answer. */
function parseStatus(out: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    const r = /^(\S+)\s+(STOPPED|STARTING|RUNNING|BACKOFF|STOPPING|EXITED|FATAL|UNKNOWN)\b/.exec(line);
    if (r) m.set(r[1]!, r[2]!);
  }
  return m;
}

/** The process exists and is not a zombie waiting for its parent (init here) to reap it. */
async function alive(pid: number): Promise<boolean> {
  try {
    const st = await readFile(`/proc/${pid}/stat`, 'utf8');
    return st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

describe('the rendered supervisord.conf run by supervisord', {
  skip: !root && 'needs root (the install creates the canopsis user)',
}, () => {
  let dir = '';
  let prefix = '';
  let conf = '';
  let pidFile = '';
  let pid = 0;
  const ctl = (...args: string[]) => execa('supervisorctl', ['-c', conf, ...args], { reject: false, all: true });

  before(async () => {
    dir = await tempDir('supervisord');
    // supervisord runs as canopsis: the prefix's parents must be traversable by it.
    await chmod(dir, 0o755);
    prefix = path.join(dir, 'canopsis');
    conf = path.join(prefix, 'etc', 'supervisord.conf');
    pidFile = path.join(prefix, 'var', 'run', 'supervisord.pid');
    const r = await buildInstall(['--prefix', prefix, ...isolatedPorts(5710), '--set', 'engine:che.numprocs=3']);
    assert.equal(r.exitCode, 0, r.all);

    // supervisord daemonizes: the command returns once the daemon is forked.
    const s = await execa('supervisord', ['-c', conf], { reject: false, all: true });
    assert.equal(s.exitCode, 0, `supervisord -c ${conf} failed:\n${s.all}`);
    await waitFor('supervisorctl status to answer', async () => parseStatus((await ctl('status')).stdout ?? '').size > 0, 20_000);
    pid = Number((await readFile(pidFile, 'utf8')).trim());
    assert.ok(pid > 0, `no pid in ${pidFile}`);
  });

  after(async () => {
    if (pid && (await alive(pid))) {
      await ctl('shutdown');
      try {
        await waitFor('supervisord to exit', async () => !(await alive(pid)), 15_000);
      } catch {
        process.kill(pid, 'SIGKILL');
      }
    }
    if (dir) await removeDir(dir);
  });

  it('lists every program, with numprocs instances of each engine in the amqp2engines group', async () => {
    const r = await ctl('status');
    // Exit status 3 only means some programs are not running (all have autostart=false).
    assert.ok(r.exitCode === 0 || r.exitCode === 3, `supervisorctl status exited ${r.exitCode}:\n${r.all}`);
    const names = [...parseStatus(r.stdout).keys()].sort();
    assert.deepEqual(
      names,
      [
        'amqp2engines:engine-action-0',
        'amqp2engines:engine-axe-0',
        'amqp2engines:engine-che-0',
        'amqp2engines:engine-che-1',
        'amqp2engines:engine-che-2',
        'amqp2engines:engine-cleaner-0',
        'amqp2engines:engine-collectdgw-0',
        'amqp2engines:engine-event_filter-0',
        'amqp2engines:engine-pbehavior-0',
        'amqp2engines:engine-perfdata-0',
        'collectd',
        'rabbitmq-server',
        'webserver',
      ],
      r.all,
    );
  });

  it('runs as the canopsis user when started by root', async () => {
    const uid = Number((await execa('id', ['-u', 'canopsis'])).stdout.trim());
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const ids = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status);
    assert.ok(ids, status);
    // real, effective, saved and filesystem uid: no way back to root.
    assert.deepEqual(ids.slice(1).map(Number), [uid, uid, uid, uid]);
  });

  it('shuts down on supervisorctl shutdown and removes its pid file', async () => {
    const r = await ctl('shutdown');
    assert.equal(r.exitCode, 0, r.all);
    await waitFor(`supervisord (pid ${pid}) to exit`, async () => !(await alive(pid)), 15_000);
    await assert.rejects(stat(pidFile), { code: 'ENOENT' });
    // The control socket no longer answers.
    const after = await ctl('status');
    assert.equal(parseStatus(after.stdout).size, 0, after.all);
  });
});
