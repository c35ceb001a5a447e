import path from 'node:path';
import type amqp from 'amqplib';
import { conf, program, UNIT_DIR } from '../render/file-spec.js';
import { hasRole } from '../settings/roles.js';
import type { ServiceModule } from './types.js';

/*
 * amqp2engines: every engine of the chain, one supervisord program (and one
 * systemd instance per process) each, in the group amqp2engines; with
 * [pipeline] fuse = true, one program per fused group.
 */

export const engines: ServiceModule = {
  name: 'amqp2engines',
  tier: 'MIDDLEWARE',
  enabled: (s) => hasRole(s, 'engines'),
  files: (ctx) => [
    conf('etc/supervisord.d/amqp2engines.conf', 'templates/supervisord.d/amqp2engines.conf.hbs'),
    conf(`${UNIT_DIR}/canopsis-engine-go@.service`, 'systemd/canopsis-engine-go@.service.hbs'),
    ...ctx.engines
      .filter((engine) => engine.runs)
      .flatMap((engine) => [
        { ...conf(`etc/engines/${engine.program.replace(/^engine-/, '')}.ini`, 'templates/engines/engine.ini.hbs'), data: { engine } },
        ...engine.instances.flatMap((inst) => [
          program(`bin/${inst.instance}`, 'templates/bin/engine.hbs', { engine, worker: inst.worker }),
          ...(engine.publishQueue
            ? [
                {
                  ...conf(`${UNIT_DIR}/canopsis-engine-go@${inst.instance}.service.d/override.conf`, 'systemd/engine-override.conf.hbs'),
                  data: { engine },
                },
              ]
            : []),
        ]),
      ]),
  ],
  directories: (ctx) => [
    { dir: ctx.paths.engineLog, owner: 'service', mode: 0o755 },
    { dir: path.join(ctx.paths.etc, 'engines'), owner: 'root', mode: 0o755 },
  ],
  needs: () => [],
  ports: () => [],
  units: (ctx) => ctx.engines.flatMap((e) => e.instances.map((i) => `canopsis-engine-go@${i.instance}.service`)),
  // Every engine with event_processing consumes its queue.
  ready: async (prefix) => {
    // Loaded when asked: the installer renders with this module and never needs a broker client.
    const [{ connectAny }, { engineQueue, queueCounts }, { readEngines }, { readBrokerConfig }] = await Promise.all([
      import('../../runtime/amqp/connection.js'),
      import('../../runtime/amqp/topology.js'),
      import('../../runtime/config/engines.js'),
      import('../../runtime/config/files.js'),
    ]);
    const b = await readBrokerConfig(prefix);
    const { engines: list } = await readEngines(prefix);
    let conn: amqp.ChannelModel;
    try {
      conn = await connectAny(b.urls, b.wheres);
    } catch (e) {
      return `broker unreachable: ${(e as Error).message}`;
    }
    try {
      const idle: string[] = [];
      for (const e of list.values()) {
        if (!e.eventProcessing) continue; // a beat-only engine consumes nothing
        if ((await queueCounts(conn, engineQueue(e.name))).consumers < 1) idle.push(e.name);
      }
      return idle.length ? `not consuming: ${idle.join(', ')}` : undefined;
    } finally {
      await conn.close().catch(() => undefined);
    }
  },
  // They run the release's code.
  restarts: () => true,
};
