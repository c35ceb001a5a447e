import path from 'node:path';
import type { HostFacts } from '../host/facts.js';
import { underPrefix, type Layout } from '../layout.js';
import type { Secrets } from '../settings/secrets.js';
import { rabbitmqPasswordHash } from '../settings/secrets.js';
import type { EngineSettings, Settings } from '../settings/schema.js';
import { EVENTS_EXCHANGE } from '../settings/cross-check.js';
import { clientAddress } from '../../runtime/config/files.js';

/*
 * Everything the templates show, computed here so that templates hold no
 * logic beyond loops and conditionals.
 */

export const EXCHANGES = {
  events: EVENTS_EXCHANGE,
  dead: 'canopsis.dead',
  collectd: 'canopsis.collectd',
  alerts: 'canopsis.alerts',
} as const;

export const DROP_IN_ENGINE = 'che';

export interface SystemdInstance {
  /** The %i of canopsis-engine-go@%i.service, e.g. engine-che or engine-che.1 */
  instance: string;
  worker: number;
}

export interface EngineView extends EngineSettings {
  program: string;
  nextList: string;
  command: string;
  log: string;
  instances: SystemdInstance[];
  /**
   * -publishQueue of the systemd drop-in. Seed 002 ships one for che (Go-style
   * chaining to Engine_axe); it follows che's next so the two never disagree.
   */
  publishQueue: string | undefined;
}

export interface RenderContext {
  prefix: string;
  paths: Record<'bin' | 'etc' | 'var' | 'log' | 'engineLog' | 'varLib' | 'run' | 'current' | 'plugins', string>;
  node: string;
  /** The runtime's commands (bin/<name>) and their entry points inside the active release. */
  runtime: Record<'engine-launcher' | 'webserver' | 'dead-letters' | 'api-users' | 'send-event' | 'service' | 'hypcontrol', string>;
  user: string;
  group: string;
  /** supervisord drops privileges to the service user when started as root. */
  supervisordUser: string | undefined;
  logLevel: string;
  settings: Settings;
  secrets: Secrets;
  exchanges: typeof EXCHANGES;
  rabbitmq: Settings['rabbitmq'] & {
    local: boolean;
    clientHost: string;
    passwordHash: string;
    server: string;
    home: string;
    mnesiaBase: string;
    logDir: string;
    configFile: string;
    envFile: string;
    enabledPluginsFile: string;
    definitionsFile: string;
    pidFile: string;
    management: boolean;
    plugins: string;
  };
  store: Settings['store'] & {
    embedded: boolean;
    embeddedFile: string;
    mongodbLocal: boolean;
    dbpathAbs: string;
    logFile: string;
    url: string;
    mongod: string;
  };
  collectd: Settings['collectd'] & { binary: string; pluginDir: string; typesDb: string; baseDir: string };
  webserver: Settings['webserver'];
  engines: EngineView[];
  enginePrograms: string;
  hypcontrol: { backend: string; middleware: string; frontend: string };
  systemd: {
    protectHome: boolean;
    brokerUnit: string | undefined;
    wants: string[];
    wantsLine: string;
  };
}


export function engineInstances(numprocs: number, name: string): SystemdInstance[] {
  return Array.from({ length: numprocs }, (_, worker) => ({
    instance: worker === 0 ? `engine-${name}` : `engine-${name}.${worker}`,
    worker,
  }));
}

export function buildContext(settings: Settings, secrets: Secrets, layout: Layout, facts: HostFacts): RenderContext {
  const p = layout;
  const rmqLocal = settings.rabbitmq.mode === 'local';
  const mongodbLocal = settings.store.backend === 'mongodb' && settings.store.mongodb_mode === 'local';
  const management = settings.rabbitmq.management_port > 0;
  const user = settings.canopsis.user;
  const group = settings.canopsis.group;

  const engines: EngineView[] = settings.engines.map((e) => ({
    ...e,
    program: `engine-${e.name}`,
    nextList: e.next.join(','),
    command: `${p.bin}/engine-launcher -e dynamic -n ${e.name} -w %(process_num)d -l ${settings.canopsis.log_level}`,
    log: path.join(p.engineLog, `${e.name}.log`),
    instances: engineInstances(e.numprocs, e.name),
    publishQueue: e.name === DROP_IN_ENGINE && e.next.length === 1 ? `Engine_${e.next[0]}` : undefined,
  }));

  const backend = [rmqLocal ? 'rabbitmq-server' : '', mongodbLocal ? 'mongodb' : ''].filter(Boolean);
  const middleware = [settings.collectd.enabled ? 'collectd' : '', 'amqp2engines'].filter(Boolean);

  const units = [
    rmqLocal ? 'canopsis-rabbitmq.service' : '',
    mongodbLocal ? 'canopsis-mongodb.service' : '',
    settings.collectd.enabled ? 'canopsis-collectd.service' : '',
    ...engines.flatMap((e) => e.instances.map((i) => `canopsis-engine-go@${i.instance}.service`)),
    'canopsis-webserver.service',
  ].filter(Boolean);

  const home = path.join(p.varLib, 'rabbitmq');
  return {
    prefix: p.prefix,
    paths: {
      bin: p.bin,
      etc: p.etc,
      var: p.var,
      log: p.log,
      engineLog: p.engineLog,
      varLib: p.varLib,
      run: p.run,
      current: p.current,
      plugins: p.plugins,
    },
    node: facts.node,
    runtime: {
      ...(Object.fromEntries(
        (['engine-launcher', 'webserver', 'dead-letters', 'api-users', 'send-event'] as const).map((c) => [c, path.join(p.current, 'dist', 'runtime', 'cli', `${c}.js`)]),
      ) as Record<'engine-launcher' | 'webserver' | 'dead-letters' | 'api-users' | 'send-event', string>),
      // Service control lives with the installer (it drives supervisord), in the same release.
      service: path.join(p.current, 'dist', 'installer', 'control', 'service.js'),
      hypcontrol: path.join(p.current, 'dist', 'installer', 'control', 'hypcontrol.js'),
    },
    user,
    group,
    supervisordUser: facts.root ? user : undefined,
    logLevel: settings.canopsis.log_level,
    settings,
    secrets,
    exchanges: EXCHANGES,
    rabbitmq: {
      ...settings.rabbitmq,
      local: rmqLocal,
      clientHost: clientAddress(settings.rabbitmq.host),
      passwordHash: rabbitmqPasswordHash(secrets.rabbitmq.password),
      server: facts.binaries.rabbitmqServer ?? '/usr/lib/rabbitmq/bin/rabbitmq-server',
      home,
      mnesiaBase: path.join(home, 'mnesia'),
      logDir: path.join(p.log, 'rabbitmq'),
      configFile: path.join(p.etc, 'rabbitmq', 'rabbitmq.conf'),
      envFile: path.join(p.etc, 'rabbitmq', 'rabbitmq-env.conf'),
      enabledPluginsFile: path.join(p.etc, 'rabbitmq', 'enabled_plugins'),
      definitionsFile: path.join(p.etc, 'rabbitmq', 'definitions.json'),
      pidFile: path.join(p.run, 'rabbitmq.pid'),
      management,
      plugins: [management ? 'rabbitmq_management' : '', 'rabbitmq_consistent_hash_exchange'].filter(Boolean).join(','),
    },
    store: {
      ...settings.store,
      embedded: settings.store.backend === 'embedded',
      embeddedFile: path.join(p.varLib, 'canopsis', 'canopsis.db'),
      mongodbLocal,
      dbpathAbs: underPrefix(p, settings.store.mongodb_dbpath),
      logFile: path.join(p.log, 'mongodb.log'),
      url: mongodbLocal ? `mongodb://127.0.0.1:${settings.store.mongodb_port}/canopsis` : settings.store.mongodb_url,
      mongod: facts.binaries.mongod ?? '/usr/bin/mongod',
    },
    collectd: {
      ...settings.collectd,
      binary: facts.binaries.collectd ?? '/usr/sbin/collectd',
      pluginDir: facts.collectdPluginDir,
      typesDb: facts.collectdTypesDb,
      baseDir: path.join(p.varLib, 'collectd'),
    },
    webserver: settings.webserver,
    engines,
    enginePrograms: engines.map((e) => e.program).join(','),
    hypcontrol: { backend: backend.join(' '), middleware: middleware.join(' '), frontend: 'webserver' },
    systemd: {
      protectHome: !['/home', '/root', '/run/user'].some((d) => p.prefix === d || p.prefix.startsWith(`${d}/`)),
      brokerUnit: rmqLocal ? 'canopsis-rabbitmq.service' : undefined,
      wants: units,
      wantsLine: units.join(' '),
    },
  };
}
