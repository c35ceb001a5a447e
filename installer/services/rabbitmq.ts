import { conf, ownedSecret, UNIT_DIR } from '../render/file-spec.js';
import { runsBroker } from '../settings/roles.js';
import type { ServiceModule } from './types.js';

/* The appliance's own RabbitMQ node (the broker role, rabbitmq.mode = local): alone, or one node of a cluster. */

const FILES = [
  conf('etc/supervisord.d/rabbitmq-server.conf', 'templates/supervisord.d/rabbitmq-server.conf.hbs'),
  conf('etc/rabbitmq/rabbitmq.conf', 'templates/rabbitmq/rabbitmq.conf.hbs'),
  conf('etc/rabbitmq/definitions.json', 'templates/rabbitmq/definitions.json.hbs', true),
  conf('etc/rabbitmq/enabled_plugins', 'templates/rabbitmq/enabled_plugins.hbs'),
  conf('etc/rabbitmq/rabbitmq-env.conf', 'templates/rabbitmq/rabbitmq-env.conf.hbs'),
  conf(`${UNIT_DIR}/canopsis-rabbitmq.service`, 'systemd/canopsis-rabbitmq.service.hbs'),
  // The cluster's shared secret, where Erlang looks for it ($HOME) and as it insists (its user's, 0400).
  ownedSecret('etc/rabbitmq/erlang/.erlang.cookie', 'templates/rabbitmq/erlang.cookie.hbs'),
];

export const rabbitmq: ServiceModule = {
  name: 'rabbitmq-server',
  tier: 'BACKEND',
  enabled: runsBroker,
  files: () => FILES,
  directories: (ctx) => [
    { dir: ctx.rabbitmq.logDir, owner: 'service', mode: 0o750 },
    { dir: ctx.rabbitmq.home, owner: 'service', mode: 0o750 },
  ],
  needs: () => [
    { key: 'rabbitmqServer', binary: 'rabbitmq-server', neededBy: 'rabbitmq.mode=local', packages: ['rabbitmq-server'] },
    { key: 'erl', binary: 'erl', neededBy: 'rabbitmq.mode=local', packages: ['rabbitmq-server'] },
  ],
  ports: (s) => [
    { service: 'rabbitmq (AMQP)', host: s.rabbitmq.host, port: s.rabbitmq.port, setting: ['rabbitmq', 'port'] },
    { service: 'rabbitmq (Erlang distribution)', host: '0.0.0.0', port: s.rabbitmq.dist_port, setting: ['rabbitmq', 'dist_port'] },
    ...(s.rabbitmq.management_port > 0
      ? [
          {
            service: 'rabbitmq (management)',
            host: s.rabbitmq.host,
            port: s.rabbitmq.management_port,
            setting: ['rabbitmq', 'management_port'] as [string, string],
          },
        ]
      : []),
  ],
  units: () => ['canopsis-rabbitmq.service'],
  // The broker accepts our login on the vhost.
  ready: async (prefix) => {
    // Loaded when asked: the installer renders with this module and never needs a broker client.
    const [{ default: amqp }, { readBrokerConfig }] = await Promise.all([import('amqplib'), import('../../runtime/config/files.js')]);
    const b = await readBrokerConfig(prefix);
    try {
      const conn = await amqp.connect(b.url);
      await conn.close();
      return undefined;
    } catch (e) {
      return `broker login on ${b.where} refused or unreachable: ${(e as Error).message}`;
    }
  },
  // The broker keeps queueing events through an update unless its own configuration changed.
  restarts: (written) => FILES.some((f) => written.includes(f.target)),
};
