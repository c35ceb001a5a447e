import type { RenderContext } from './context.js';

/*
 * The list of files the installer owns under the prefix, as data: which
 * template renders which path, with which mode, for whom. Conditions here
 * decide which services exist; templates never do.
 */

/** settings: the operator's canopsis.ini and secrets, written only when new or changed by --set. */
export type FileKind = 'conffile' | 'program' | 'settings';

export interface FileSpec {
  /** Path relative to the prefix. */
  target: string;
  /** Template path relative to the source root. */
  template: string;
  mode: number;
  /** Holds credentials: root's, readable by the service group only (0640), never shown in diffs. */
  secret: boolean;
  kind: FileKind;
  /** Extra template data (the engine of a per-engine file). */
  data?: Record<string, unknown>;
}

const conf = (target: string, template: string, secret = false): FileSpec => ({
  target,
  template,
  mode: secret ? 0o640 : 0o644,
  secret,
  kind: 'conffile',
});

const program = (target: string, template: string, data?: Record<string, unknown>): FileSpec => ({
  target,
  template,
  mode: 0o755,
  secret: false,
  kind: 'program',
  ...(data ? { data } : {}),
});

export const UNIT_DIR = 'etc/systemd/system';

export function catalog(ctx: RenderContext): FileSpec[] {
  const s = ctx.settings;
  const files: FileSpec[] = [
    conf('etc/supervisord.conf', 'templates/supervisord.conf.hbs'),
    conf('etc/supervisord.d/amqp2engines.conf', 'templates/supervisord.d/amqp2engines.conf.hbs'),
    conf('etc/supervisord.d/webserver.conf', 'templates/supervisord.d/webserver.conf.hbs'),
    conf('etc/amqp2engines.conf', 'templates/amqp2engines.conf.hbs'),
    conf('etc/amqp.conf', 'templates/amqp.conf.hbs', true),
    conf('etc/webserver.conf', 'templates/webserver.conf.hbs'),
    conf('etc/hypcontrol.conf', 'templates/hypcontrol.conf.hbs'),
    conf('etc/go-engines-vars.conf', 'templates/go-engines-vars.conf.hbs'),
    conf(`${UNIT_DIR}/canopsis.target`, 'systemd/canopsis.target.hbs'),
    conf(`${UNIT_DIR}/canopsis-engine-go@.service`, 'systemd/canopsis-engine-go@.service.hbs'),
    conf(`${UNIT_DIR}/canopsis-webserver.service`, 'systemd/canopsis-webserver.service.hbs'),
    conf('etc/event_filter.yaml', 'templates/event_filter.yaml.hbs'),
    // The MongoDB URL may hold credentials.
    conf('etc/runtime.conf', 'templates/runtime.conf.hbs', true),
    ...Object.entries(ctx.runtime).map(([command, script]) => program(`bin/${command}`, 'templates/bin/node-command.hbs', { script })),
  ];

  if (ctx.rabbitmq.local) {
    files.push(
      conf('etc/supervisord.d/rabbitmq-server.conf', 'templates/supervisord.d/rabbitmq-server.conf.hbs'),
      conf('etc/rabbitmq/rabbitmq.conf', 'templates/rabbitmq/rabbitmq.conf.hbs'),
      conf('etc/rabbitmq/definitions.json', 'templates/rabbitmq/definitions.json.hbs', true),
      conf('etc/rabbitmq/enabled_plugins', 'templates/rabbitmq/enabled_plugins.hbs'),
      conf('etc/rabbitmq/rabbitmq-env.conf', 'templates/rabbitmq/rabbitmq-env.conf.hbs'),
      conf(`${UNIT_DIR}/canopsis-rabbitmq.service`, 'systemd/canopsis-rabbitmq.service.hbs'),
    );
  }
  if (ctx.store.mongodbLocal) {
    files.push(
      conf('etc/supervisord.d/mongodb.conf', 'templates/supervisord.d/mongodb.conf.hbs'),
      conf('etc/mongodb.conf', 'templates/mongodb.conf.hbs'),
      conf(`${UNIT_DIR}/canopsis-mongodb.service`, 'systemd/canopsis-mongodb.service.hbs'),
    );
  }
  if (s.collectd.enabled) {
    files.push(
      conf('etc/supervisord.d/collectd.conf', 'templates/supervisord.d/collectd.conf.hbs'),
      conf('etc/collectd.conf', 'templates/collectd.conf.hbs', true),
      conf(`${UNIT_DIR}/canopsis-collectd.service`, 'systemd/canopsis-collectd.service.hbs'),
    );
  }

  for (const engine of ctx.engines) {
    files.push({ ...conf(`etc/engines/${engine.name}.ini`, 'templates/engines/engine.ini.hbs'), data: { engine } });
    for (const inst of engine.instances) {
      files.push(program(`bin/${inst.instance}`, 'templates/bin/engine.hbs', { engine, worker: inst.worker }));
      if (engine.publishQueue) {
        files.push({
          ...conf(`${UNIT_DIR}/canopsis-engine-go@${inst.instance}.service.d/override.conf`, 'systemd/engine-override.conf.hbs'),
          data: { engine },
        });
      }
    }
  }
  return files;
}

/** The systemd units of a context, instances included, as systemd-analyze verify wants them named. */
export function unitNames(ctx: RenderContext): string[] {
  return ctx.systemd.wants.concat('canopsis.target');
}
