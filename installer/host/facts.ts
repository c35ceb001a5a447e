import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { execa } from 'execa';
import { firstExisting, which } from './which.js';

/**
 * What the installer needs to know about the host, gathered once. Rendering
 * is a pure function of settings and these facts.
 */
export interface HostFacts {
  root: boolean;
  user: string;
  group: string;
  debian: boolean;
  systemdRunning: boolean;
  binaries: {
    /** The real server script: Debian's /usr/sbin wrapper would su to the rabbitmq user. */
    rabbitmqServer?: string;
    rabbitmqctl?: string;
    rabbitmqPlugins?: string;
    erl?: string;
    supervisord?: string;
    supervisorctl?: string;
    collectd?: string;
    mongod?: string;
    systemctl?: string;
    systemdAnalyze?: string;
    aptGet?: string;
    openssl?: string;
  };
  collectdPluginDir: string;
  collectdTypesDb: string;
  rabbitmqHome?: string;
}

async function primaryGroup(): Promise<string> {
  try {
    const { stdout } = await execa('id', ['-gn']);
    return stdout.trim();
  } catch {
    return String(os.userInfo().gid);
  }
}

async function rabbitmqLibDir(): Promise<string | undefined> {
  try {
    const { readdir } = await import('node:fs/promises');
    const base = '/usr/lib/rabbitmq/lib';
    const dirs = (await readdir(base)).filter((d) => d.startsWith('rabbitmq_server-')).sort();
    const last = dirs.at(-1);
    return last ? `${base}/${last}` : undefined;
  } catch {
    return undefined;
  }
}

export async function gatherFacts(): Promise<HostFacts> {
  const root = process.getuid?.() === 0;
  const debian = (await firstExisting(['/etc/debian_version'])) !== undefined;
  let systemdRunning = false;
  try {
    systemdRunning = (await readFile('/proc/1/comm', 'utf8')).trim() === 'systemd';
  } catch {
    systemdRunning = false;
  }
  const [rabbitmqServer, rabbitmqctl, rabbitmqPlugins] = await Promise.all(
    ['rabbitmq-server', 'rabbitmqctl', 'rabbitmq-plugins'].map(
      async (n) => (await firstExisting([`/usr/lib/rabbitmq/bin/${n}`])) ?? (await which(n)),
    ),
  );
  const binaries: HostFacts['binaries'] = {
    rabbitmqServer,
    rabbitmqctl,
    rabbitmqPlugins,
    erl: await which('erl'),
    supervisord: await which('supervisord'),
    supervisorctl: await which('supervisorctl'),
    collectd: await which('collectd'),
    mongod: await which('mongod'),
    systemctl: await which('systemctl'),
    systemdAnalyze: await which('systemd-analyze'),
    aptGet: await which('apt-get'),
    openssl: await which('openssl'),
  };
  return {
    root,
    user: os.userInfo().username,
    group: await primaryGroup(),
    debian,
    systemdRunning,
    binaries,
    collectdPluginDir: (await firstExisting(['/usr/lib/collectd', '/usr/lib64/collectd'])) ?? '/usr/lib/collectd',
    collectdTypesDb: (await firstExisting(['/usr/share/collectd/types.db'])) ?? '/usr/share/collectd/types.db',
    rabbitmqHome: await rabbitmqLibDir(),
  };
}
