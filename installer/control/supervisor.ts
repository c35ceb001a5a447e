import { readFileSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { layoutOf } from '../../runtime/contract/layout.js';
import { execa } from '../host/exec.js';

/*
 * supervisord of a prefix, driven through supervisorctl and its own socket.
 * supervisord is started from etc/supervisord.conf when it is not running.
 */

export interface ProcessStatus {
  name: string;
  state: string;
  description: string;
}

export class Supervisor {
  readonly conf: string;
  readonly socket: string;

  constructor(readonly prefix: string) {
    const layout = layoutOf(prefix);
    this.conf = layout.files.supervisord;
    this.socket = layout.supervisorSocket;
  }

  async ctl(...args: string[]) {
    return execa('supervisorctl', ['-c', this.conf, ...args], { reject: false, all: true });
  }

  async running(): Promise<boolean> {
    // var/run is the service user's: a link planted there would have root's supervisorctl talk to a socket of its choosing.
    const st = await lstat(this.socket).catch(() => undefined);
    if (!st) return false;
    if (!st.isSocket())
      throw new Error(
        `${this.socket} is not supervisord's socket (it is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a socket'}): remove it, then start again`,
      );
    const r = await this.ctl('pid');
    return r.exitCode === 0 && /^\d+$/.test(r.stdout.trim());
  }

  /** Starts supervisord (it daemonises) and waits for its socket to answer. */
  async ensure(timeoutMs = 20_000): Promise<void> {
    if (await this.running()) return;
    const r = await execa('supervisord', ['-c', this.conf], { reject: false, all: true, cwd: this.prefix });
    if (r.exitCode !== 0) throw new Error(`supervisord -c ${this.conf} failed: ${r.all}`);
    const deadline = Date.now() + timeoutMs;
    while (!(await this.running())) {
      if (Date.now() > deadline) throw new Error(`supervisord did not answer on ${this.socket} within ${timeoutMs} ms`);
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  async status(): Promise<ProcessStatus[]> {
    const r = await this.ctl('status');
    return r.stdout
      .split('\n')
      .map((l) => /^(\S+)\s+(\S+)\s*(.*)$/.exec(l.trim()))
      .filter((m): m is RegExpExecArray => m !== null && /^[A-Z]+$/.test(m[2]!))
      .map((m) => ({ name: m[1]!, state: m[2]!, description: m[3]! }));
  }

  /** supervisorctl names of a service: a program, a group (amqp2engines:*) or one engine's instances. */
  async namesOf(service: string): Promise<string[]> {
    const all = await this.status();
    if (service === 'amqp2engines') return all.filter((p) => p.name.startsWith('amqp2engines:')).map((p) => p.name);
    const engine = all.filter((p) => p.name.startsWith(`amqp2engines:${service}-`)).map((p) => p.name);
    if (engine.length) return engine;
    return all.filter((p) => p.name === service).map((p) => p.name);
  }

  /** Stops supervisord and waits for its process to be gone. */
  async shutdown(timeoutMs = 60_000): Promise<void> {
    if (!(await this.running())) return;
    const pid = Number((await this.ctl('pid')).stdout.trim());
    await this.ctl('shutdown');
    const deadline = Date.now() + timeoutMs;
    // A zombie is gone for us: where PID 1 does not reap (containers), it lingers.
    const alive = () => {
      try {
        return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    while (pid > 0 && alive()) {
      if (Date.now() > deadline) throw new Error(`supervisord (pid ${pid}) still running ${timeoutMs / 1000} s after shutdown`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
