import { z } from 'zod';
import { DEFAULT_VHOST, EXCHANGES } from '../../runtime/contract/names.js';
import {
  bool,
  engineName,
  filePath,
  hostname,
  integer,
  list,
  oneOf,
  optionalPath,
  port,
  size,
  taskName,
  text,
  unixName,
} from './fields.js';

/*
 * The schema of etc/canopsis.ini. Defaults are raw strings, merged under the
 * operator's values before parsing, so an error always shows the text that
 * was found, whether it came from the file, from --set or from a default.
 */

export const LOG_LEVELS = ['debug', 'info', 'warning', 'error', 'critical'] as const;

/** What a host does in a site of several hosts (as omnibus-gitlab's roles); all four is a single host. */
export const ROLES = ['broker', 'store', 'engines', 'webserver'] as const;
export type Role = (typeof ROLES)[number];

const NODE_NAME = /^[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+$/;
const nodeName = () => z.string().trim().regex(NODE_NAME, { error: 'expected a node name such as canopsis@localhost' });

export const sectionSchemas = {
  canopsis: z.object({
    user: unixName(),
    group: unixName(),
    init: oneOf(['supervisord', 'systemd']),
    log_level: oneOf(LOG_LEVELS),
    min_memory: size(),
    roles: list(z.enum(ROLES), `roles among ${ROLES.join(', ')}`).refine((r) => r.length > 0, {
      error: `expected one role or more among ${ROLES.join(', ')}, separated by commas`,
    }),
  }),
  rabbitmq: z.object({
    mode: oneOf(['local', 'external']),
    host: hostname(),
    port: port(),
    node_name: nodeName(),
    // The broker hosts' node names, the same list on every host: one cluster formed by classic config peer discovery.
    cluster_nodes: list(z.string().regex(NODE_NAME), 'node names such as canopsis@10.0.0.11'),
    vhost: text('a vhost name'),
    user: z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9_.-]+$/, { error: 'expected a user name (letters, digits, _ . -)' }),
    dist_port: port(),
    management_port: integer(0, 65535),
    prefetch: integer(1, 65535),
    max_message_size: size(),
  }),
  store: z.object({
    backend: oneOf(['embedded', 'mongodb', 'postgresql']),
    mongodb_mode: oneOf(['local', 'remote']),
    mongodb_port: port(),
    mongodb_dbpath: filePath('a directory (relative to the prefix, or absolute)'),
    postgresql_mode: oneOf(['local', 'remote']),
    postgresql_port: port(),
    // Addresses the local PostgreSQL listens on: its host's address(es) when engines elsewhere use it.
    postgresql_listen: list(z.string().regex(/^[A-Za-z0-9_.:*-]+$/), 'addresses such as 127.0.0.1 or 10.0.0.12'),
    postgresql_data: filePath('a directory (relative to the prefix, or absolute)'),
    // Who may log in over the network to a local PostgreSQL that listens beyond the loopback: the site's hosts.
    postgresql_clients: list(z.string().regex(/^[0-9A-Fa-f.:]+\/\d{1,3}$/), 'networks in CIDR form such as 10.0.0.0/24'),
    min_free_disk: size(),
  }),
  webserver: z.object({
    bind: hostname(),
    port: port(),
    tls: bool(),
    tls_cert: optionalPath('a PEM certificate file (absolute, or relative to the prefix), or nothing for the generated one'),
    tls_key: optionalPath('a PEM private key file (absolute, or relative to the prefix), or nothing for the generated one'),
  }),
  collectd: z.object({
    enabled: bool(),
    interval: integer(1, 3600),
  }),
  dispatchers: z.object({
    event_dispatchers: list(z.string().regex(/^[a-z][a-z0-9_]*$/), 'dispatcher names such as database or message'),
  }),
  alarms: z.object({
    resolve_delay: integer(0, 86400 * 30),
    cancel_delay: integer(0, 86400 * 30),
    flapping_count: integer(2, 1000),
    flapping_window: integer(1, 86400 * 7),
    stealthy_window: integer(0, 86400),
    max_steps: integer(10, 100000),
    snooze_default: integer(1, 86400 * 30),
  }),
  perfdata: z.object({
    retention: integer(60, 86400 * 3650),
  }),
  retention: z.object({
    event_log: integer(0, 86400 * 3650),
    resolved_alarms: integer(0, 86400 * 3650),
    dead_letters_max: integer(0, 100_000_000),
    // RabbitMQ's message-ttl holds at most 2^32-1 ms.
    dead_letters_max_age: integer(0, 4_294_967),
  }),
  pipeline: z.object({
    // Consecutive engines of the chain in one process, events passed in memory (runtime/engine/fused.ts).
    fuse: bool(),
    // Several engines hosts share each engine's partitions: host N runs workers N*numprocs .. N*numprocs+numprocs-1.
    engine_hosts: integer(1, 64),
    engine_host: integer(0, 63),
  }),
  backup: z.object({
    // ./build-install backup and the backup before an update keep this many archives in their directory.
    keep: integer(1, 1000),
  }),
} as const;

export const engineSchema = z.object({
  event_processing: taskName(),
  beat_processing: taskName(),
  next: list(engineName, 'engine names'),
  exchange: z
    .string()
    .trim()
    .regex(/^([A-Za-z0-9_.:-]*)$/, { error: 'expected an exchange name, or nothing' })
    .transform((v) => (v === '' ? undefined : v)),
  beat_interval: integer(1, 86400),
  numprocs: integer(1, 64),
});

export type SectionName = keyof typeof sectionSchemas;
export type EngineSettings = z.output<typeof engineSchema> & { name: string };

export type Settings = { [K in SectionName]: z.output<(typeof sectionSchemas)[K]> } & {
  engines: EngineSettings[];
};

export type RawSection = Record<string, string>;
export type RawSettings = Record<string, RawSection>;

export interface HostIdentity {
  /** The user and group that run the services when not root: the invoking user. */
  user: string;
  group: string;
  root: boolean;
}

export const ENGINE_DEFAULTS: RawSection = {
  event_processing: '',
  beat_processing: '',
  next: '',
  exchange: '',
  beat_interval: '60',
  numprocs: '1',
};

/** The chain a new install starts with: cleaner -> event_filter -> che -> axe -> perfdata, and collectdgw -> che. */
export const DEFAULT_ENGINES: Array<[string, RawSection]> = [
  [
    'cleaner',
    {
      event_processing: 'canopsis.cleaner.process.event_processing',
      next: 'event_filter',
      exchange: EXCHANGES.events,
    },
  ],
  [
    'event_filter',
    {
      event_processing: 'canopsis.event_filter.process.event_processing',
      beat_processing: 'canopsis.event_filter.process.beat_processing',
      next: 'che',
    },
  ],
  ['che', { event_processing: 'canopsis.che.process.event_processing', next: 'pbehavior' }],
  // Maintenance windows, between che and axe as in Canopsis 4.
  [
    'pbehavior',
    {
      event_processing: 'canopsis.pbehavior.process.event_processing',
      beat_processing: 'canopsis.pbehavior.process.beat_processing',
      next: 'axe',
    },
  ],
  [
    'axe',
    {
      event_processing: 'canopsis.axe.process.event_processing',
      beat_processing: 'canopsis.axe.process.beat_processing',
      next: 'action',
    },
  ],
  // Scenarios and their webhooks, after axe as in Canopsis 4.
  [
    'action',
    {
      event_processing: 'canopsis.action.process.event_processing',
      beat_processing: 'canopsis.action.process.beat_processing',
      next: 'perfdata',
    },
  ],
  [
    'perfdata',
    {
      event_processing: 'canopsis.perfdata.process.event_processing',
      beat_processing: 'canopsis.perfdata.process.beat_processing',
    },
  ],
  // Host metrics from collectd's amqp plugin, as perf events into the chain.
  ['collectdgw', { event_processing: 'canopsis.collectdgw.process.event_processing', exchange: EXCHANGES.collectd, next: 'che' }],
];

export function sectionDefaults(host: HostIdentity): Record<SectionName, RawSection> {
  return {
    canopsis: {
      user: host.root ? 'canopsis' : host.user,
      group: host.root ? 'canopsis' : host.group,
      init: 'supervisord',
      log_level: 'info',
      min_memory: '1GiB',
      roles: ROLES.join(','),
    },
    rabbitmq: {
      mode: 'local',
      host: '127.0.0.1',
      port: '5672',
      node_name: 'canopsis@localhost',
      cluster_nodes: '',
      vhost: DEFAULT_VHOST,
      user: 'cpsrabbit',
      dist_port: '25672',
      management_port: '15672',
      prefetch: '1000',
      max_message_size: '4MiB',
    },
    store: {
      backend: 'embedded',
      mongodb_mode: 'local',
      mongodb_port: '27017',
      mongodb_dbpath: 'var/lib/mongodb',
      postgresql_mode: 'local',
      postgresql_port: '5432',
      postgresql_listen: '127.0.0.1',
      postgresql_data: 'var/lib/postgresql',
      postgresql_clients: '',
      min_free_disk: '20GiB',
    },
    webserver: { bind: '0.0.0.0', port: '8082', tls: 'true', tls_cert: '', tls_key: '' },
    collectd: { enabled: 'true', interval: '10' },
    dispatchers: { event_dispatchers: 'database' },
    // Canopsis 2.3's shipped flapping rule (10 changes in 3600 s) and stealthy window (300 s).
    alarms: {
      resolve_delay: '60',
      cancel_delay: '3600',
      flapping_count: '10',
      flapping_window: '3600',
      stealthy_window: '300',
      max_steps: '2000',
      snooze_default: '300',
    },
    perfdata: { retention: '604800' },
    // 30 days of history; dead letters bounded in number and age (RabbitMQ drops the oldest).
    retention: { event_log: '2592000', resolved_alarms: '2592000', dead_letters_max: '100000', dead_letters_max_age: '1209600' },
    backup: { keep: '5' },
    pipeline: { fuse: 'false', engine_hosts: '1', engine_host: '0' },
  };
}

export const ENGINE_SECTION = /^engine:(.*)$/;

/** Keys renamed by a release: an old name gets a pointer to the new one, and the release's migration renames it in canopsis.ini. */
export const RENAMED_KEYS = [{ section: 'store', from: 'dbpath', to: 'mongodb_dbpath', version: '0.3.0' }] as const;

/** Keys that hold credentials: they live in canopsis-secrets.ini; found in canopsis.ini (0.3.0 kept mongodb_url there), they are moved. */
export const SECRET_KEYS = [
  { section: 'store', key: 'mongodb_url', version: '0.4.0' },
  { section: 'store', key: 'postgresql_url', version: '0.5.0' },
  // Shared by every host of a cluster: set on each with --set, like the URL.
  { section: 'rabbitmq', key: 'password', version: '0.5.0' },
  { section: 'rabbitmq', key: 'erlang_cookie', version: '0.5.0' },
] as const;
