import { conf, UNIT_DIR } from '../render/file-spec.js';
import type { ServiceModule } from './types.js';

/* collectd with the amqp plugin: host metrics to the broker (collectd.enabled). */

const FILES = [
  conf('etc/supervisord.d/collectd.conf', 'templates/supervisord.d/collectd.conf.hbs'),
  conf('etc/collectd.conf', 'templates/collectd.conf.hbs', true),
  conf(`${UNIT_DIR}/canopsis-collectd.service`, 'systemd/canopsis-collectd.service.hbs'),
];

export const collectd: ServiceModule = {
  name: 'collectd',
  tier: 'MIDDLEWARE',
  enabled: (s) => s.collectd.enabled,
  files: () => FILES,
  directories: (ctx) => [{ dir: ctx.collectd.baseDir, owner: 'service', mode: 0o750 }],
  // amqp.so links librabbitmq; the JSON format of write_amqp needs yajl.
  needs: () => [
    { key: 'collectd', binary: 'collectd', neededBy: 'collectd.enabled=true', packages: ['collectd-core', 'librabbitmq4', 'libyajl2'] },
  ],
  ports: () => [],
  units: () => ['canopsis-collectd.service'],
  restarts: (written) => FILES.some((f) => written.includes(f.target)),
};
