import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
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
    /** The server program of postgresqlBin. */
    postgres?: string;
  };
  collectdPluginDir: string;
  collectdTypesDb: string;
  rabbitmqHome?: string;
  /** Debian's newest PostgreSQL server programs (/usr/lib/postgresql/<version>/bin): postgres and initdb are not on PATH. */
  postgresqlBin?: string;
}

/** The invoking user's primary group by name: from /etc/group, else `id -gn` (a directory service), else its number. */
async function primaryGroup(): Promise<string> {
  const gid = String(os.userInfo().gid);
  const local = (await readFile('/etc/group', 'utf8').catch(() => ''))
    .split('\n')
    .map((l) => l.split(':'))
    .find((f) => f[2] === gid && f[0]);
  if (local) return local[0]!;
  return new Promise((resolve) => {
    execFile('id', ['-gn'], { encoding: 'utf8' }, (err, stdout) => resolve(err ? gid : stdout.trim()));
  });
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

async function postgresqlBin(): Promise<string | undefined> {
  const { readdir } = await import('node:fs/promises');
  const versions = (await readdir('/usr/lib/postgresql').catch(() => [] as string[])).filter((d) => /^\d+$/.test(d));
  for (const v of versions.sort((a, b) => Number(b) - Number(a))) {
    const bin = `/usr/lib/postgresql/${v}/bin`;
    if (await firstExisting([`${bin}/postgres`])) return bin;
  }
  return undefined;
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
  // Looked for together: a dozen PATH walks one after the other showed in every run's start.
  const names = [
    'erl',
    'supervisord',
    'supervisorctl',
    'collectd',
    'mongod',
    'systemctl',
    'systemd-analyze',
    'apt-get',
    'openssl',
  ] as const;
  const [erl, supervisord, supervisorctl, collectd, mongod, systemctl, systemdAnalyze, aptGet, openssl] = await Promise.all(
    names.map((n) => which(n)),
  );
  const binaries: HostFacts['binaries'] = {
    rabbitmqServer,
    rabbitmqctl,
    rabbitmqPlugins,
    erl,
    supervisord,
    supervisorctl,
    collectd,
    mongod,
    systemctl,
    systemdAnalyze,
    aptGet,
    openssl,
  };
  const [group, collectdPluginDir, collectdTypesDb, rabbitmqHome, pgBin] = await Promise.all([
    primaryGroup(),
    firstExisting(['/usr/lib/collectd', '/usr/lib64/collectd']),
    firstExisting(['/usr/share/collectd/types.db']),
    rabbitmqLibDir(),
    postgresqlBin(),
  ]);
  return {
    root,
    user: os.userInfo().username,
    group,
    debian,
    systemdRunning,
    collectdPluginDir: collectdPluginDir ?? '/usr/lib/collectd',
    collectdTypesDb: collectdTypesDb ?? '/usr/share/collectd/types.db',
    rabbitmqHome,
    postgresqlBin: pgBin,
    binaries: { ...binaries, ...(pgBin ? { postgres: `${pgBin}/postgres` } : {}) },
  };
}
