import { conf, UNIT_DIR } from '../render/file-spec.js';
import { runsMongodb } from '../settings/roles.js';
import type { ServiceModule } from './types.js';

/* A local mongod (store.backend = mongodb, store.mongodb_mode = local). */

const FILES = [
  conf('etc/supervisord.d/mongodb.conf', 'templates/supervisord.d/mongodb.conf.hbs'),
  conf('etc/mongodb.conf', 'templates/mongodb.conf.hbs'),
  conf(`${UNIT_DIR}/canopsis-mongodb.service`, 'systemd/canopsis-mongodb.service.hbs'),
];

export const mongodb: ServiceModule = {
  name: 'mongodb',
  tier: 'BACKEND',
  enabled: runsMongodb,
  files: () => FILES,
  directories: (ctx) => [{ dir: ctx.store.dbpathAbs, owner: 'service', mode: 0o750 }],
  needs: () => [
    {
      key: 'mongod',
      binary: 'mongod',
      neededBy: 'store.backend=mongodb with store.mongodb_mode=local',
      packages: [],
      fix: "Debian ships no MongoDB: install mongod from MongoDB's own packages, use store.mongodb_mode=remote, or store.backend=embedded",
    },
  ],
  ports: (s) => [{ service: 'mongodb', host: '127.0.0.1', port: s.store.mongodb_port, setting: ['store', 'mongodb_port'] }],
  units: () => ['canopsis-mongodb.service'],
  // The store answers (a network connection: root never opens an embedded store file).
  ready: async (prefix) => {
    // Loaded when asked: the store drivers are no part of rendering.
    const { openStore, readRuntimeConfig } = await import('../../runtime/config/runtime.js');
    try {
      const s = await openStore(await readRuntimeConfig(prefix));
      await s.ping();
      await s.close();
      return undefined;
    } catch (e) {
      return `store not answering: ${(e as Error).message}`;
    }
  },
  restarts: (written) => FILES.some((f) => written.includes(f.target)),
};
