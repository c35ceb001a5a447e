import type { HostFacts } from '../../installer/host/facts.js';

/** A Debian host as root with every program rendering may name: rendering tests need no real host. */
export const RENDER_FACTS: HostFacts = {
  root: true,
  user: 'root',
  group: 'root',
  debian: true,
  systemdRunning: false,
  binaries: {
    rabbitmqServer: '/usr/lib/rabbitmq/bin/rabbitmq-server',
    collectd: '/usr/sbin/collectd',
    supervisord: '/usr/bin/supervisord',
    postgres: '/usr/lib/postgresql/15/bin/postgres',
  },
  collectdPluginDir: '/usr/lib/collectd',
  collectdTypesDb: '/usr/share/collectd/types.db',
  postgresqlBin: '/usr/lib/postgresql/15/bin',
};
