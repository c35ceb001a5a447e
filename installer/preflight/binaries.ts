import type { HostFacts } from '../host/facts.js';
import type { Prepared } from '../prepare.js';

/*
 * The programs each enabled service needs, and the Debian packages that
 * provide them.
 */

export interface MissingBinary {
  binary: string;
  neededBy: string;
  packages: string[];
  /** How to get it when no Debian package does. */
  fix: string;
}

type Key = keyof HostFacts['binaries'];

interface Need {
  key: Key;
  binary: string;
  neededBy: string;
  packages: string[];
  fix?: string;
}

export const PACKAGES = {
  rabbitmq: ['rabbitmq-server'],
  supervisord: ['supervisor'],
  // amqp.so links librabbitmq; the JSON format of write_amqp needs yajl.
  collectd: ['collectd-core', 'librabbitmq4', 'libyajl2'],
  systemd: ['systemd'],
  openssl: ['openssl'],
} as const;

export function needs(p: Prepared): Need[] {
  const s = p.settings;
  const out: Need[] = [];
  if (p.ctx.rabbitmq.local) {
    out.push({ key: 'rabbitmqServer', binary: 'rabbitmq-server', neededBy: 'rabbitmq.mode=local', packages: [...PACKAGES.rabbitmq] });
    out.push({ key: 'erl', binary: 'erl', neededBy: 'rabbitmq.mode=local', packages: [...PACKAGES.rabbitmq] });
  }
  if (s.canopsis.init === 'supervisord') {
    out.push({ key: 'supervisord', binary: 'supervisord', neededBy: 'canopsis.init=supervisord', packages: [...PACKAGES.supervisord] });
  } else {
    out.push({ key: 'systemctl', binary: 'systemctl', neededBy: 'canopsis.init=systemd', packages: [...PACKAGES.systemd] });
  }
  if (s.webserver.tls && !s.webserver.tls_cert) {
    out.push({ key: 'openssl', binary: 'openssl', neededBy: 'webserver.tls=true without webserver.tls_cert (a self-signed certificate is made)', packages: [...PACKAGES.openssl] });
  }
  if (s.collectd.enabled) out.push({ key: 'collectd', binary: 'collectd', neededBy: 'collectd.enabled=true', packages: [...PACKAGES.collectd] });
  if (p.ctx.store.mongodbLocal) {
    out.push({
      key: 'mongod',
      binary: 'mongod',
      neededBy: 'store.backend=mongodb with store.mongodb_mode=local',
      packages: [],
      fix: "Debian ships no MongoDB: install mongod from MongoDB's own packages, use store.mongodb_mode=remote, or store.backend=embedded",
    });
  }
  return out;
}

export function missingBinaries(p: Prepared): MissingBinary[] {
  return needs(p)
    .filter((n) => !p.facts.binaries[n.key])
    .map((n) => ({ binary: n.binary, neededBy: n.neededBy, packages: n.packages, fix: n.fix ?? `install ${n.binary}` }));
}
