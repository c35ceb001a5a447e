import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CLI, ROOT, removeDir, tempDir } from './index.js';
import { cleanupStale, createNet, type NetExecResult, type NetProcess, type TestNet } from './netns.js';

/*
 * A site of several hosts on one machine, for the multi-host test and the
 * site benchmark: network namespaces (./netns.ts), each host installed by
 * build-install as root into its own prefix with its roles. Broker hosts
 * are named b1.., the store host `store`, engines hosts e1.., a webserver
 * host `web`.
 */

export interface SiteOptions {
  /** Unique per run: namespaces <prefix>-<host>. */
  prefix: string;
  subnet: string;
  brokers: number;
  engineHosts: number;
  web: boolean;
}

export interface Site {
  net: TestNet;
  dir: string;
  storeUrl: string;
  prefixOf(host: string): string;
  ipOf(host: string): string;
  /** build-install --start on a host with its roles' settings, plus `extra` (section.key=value); rejects with the output on failure. */
  install(host: string, extra?: string[]): Promise<void>;
  /** test/helpers/site-tool.js inside a host's namespace. */
  tool(host: string, ...args: string[]): Promise<NetExecResult>;
  spawnTool(host: string, ...args: string[]): NetProcess;
  /** Alarms of a run's resources, and (with `events`) the events they counted. */
  counted(run: string, events?: boolean): Promise<{ alarms: number; events: number }>;
  /** Processes of a host whose command line matches. */
  pidsOf(host: string, match: RegExp): Promise<number[]>;
  /** The cluster's running nodes as a broker host's node sees them. */
  runningNodes(host: string): Promise<string[]>;
  /** Consumers of each queue of the site's vhost, as a broker host's node sees them. */
  queueConsumers(host: string): Promise<Map<string, number>>;
  teardown(): Promise<void>;
}

const SITE_TOOL = () => path.join(ROOT, 'dist', 'test', 'helpers', 'site-tool.js');

export async function createSite(o: SiteOptions): Promise<Site> {
  const brokers = Array.from({ length: o.brokers }, (_, i) => `b${i + 1}`);
  const engines = Array.from({ length: o.engineHosts }, (_, i) => `e${i + 1}`);
  const hosts = [...brokers, 'store', ...engines, ...(o.web ? ['web'] : [])];
  await cleanupStale(o.prefix);
  const net = await createNet({ prefix: o.prefix, subnet: o.subnet, hosts });
  const dir = await tempDir(`site-${o.prefix}`);
  const ipOf = (h: string) => net.host(h).ip;
  const prefixOf = (h: string) => path.join(dir, h);
  const password = randomBytes(18).toString('base64url');
  const cookie = Array.from(randomBytes(32), (b) => String.fromCharCode(65 + (b % 26))).join('');
  const storeUrl = `postgresql://canopsis:${randomBytes(18).toString('base64url')}@${ipOf('store')}:5432/canopsis`;

  const setsFor = (h: string, extra: string[]): string[] => {
    // One broker: a plain node on its address (classic queues); three: the cluster.
    const cluster = o.brokers > 1 ? brokers.map((b) => `canopsis@${ipOf(b)}`).join(',') : '';
    const common = [
      `rabbitmq.cluster_nodes=${cluster}`,
      ...(o.brokers === 1 && !h.startsWith('b') ? [`rabbitmq.host=${ipOf('b1')}`] : []),
      `rabbitmq.password=${password}`,
      `rabbitmq.erlang_cookie=${cookie}`,
      'rabbitmq.management_port=0',
      'store.backend=postgresql',
      `store.postgresql_url=${storeUrl}`,
      'collectd.enabled=false',
      'pipeline.fuse=true',
      `pipeline.engine_hosts=${o.engineHosts}`,
    ];
    const own = h.startsWith('b')
      ? ['canopsis.roles=broker', `rabbitmq.node_name=canopsis@${ipOf(h)}`, `rabbitmq.host=${ipOf(h)}`]
      : h === 'store'
        ? ['canopsis.roles=store', `store.postgresql_listen=127.0.0.1,${ipOf(h)}`, `store.postgresql_clients=${o.subnet}.0/24`]
        : h.startsWith('e')
          ? ['canopsis.roles=engines', 'store.postgresql_mode=remote', `pipeline.engine_host=${Number(h.slice(1)) - 1}`]
          : ['canopsis.roles=webserver', 'store.postgresql_mode=remote'];
    return [...common, ...own, ...extra].flatMap((s) => ['--set', s]);
  };

  const tool = (h: string, ...args: string[]) => net.exec(h, process.execPath, [SITE_TOOL(), ...args]);
  // As canopsis with the node's own environment: its HOME holds the cookie.
  const rabbitmqctl = (h: string, args: string[]) => {
    const p = prefixOf(h);
    return net.exec(h, '/usr/lib/rabbitmq/bin/rabbitmqctl', args, {
      user: 'canopsis',
      env: {
        HOME: path.join(p, 'etc', 'rabbitmq', 'erlang'),
        RABBITMQ_CONF_ENV_FILE: path.join(p, 'etc', 'rabbitmq', 'rabbitmq-env.conf'),
      },
      timeout: 60_000,
    });
  };
  const site: Site = {
    net,
    dir,
    storeUrl,
    prefixOf,
    ipOf,
    install: async (h, extra = []) => {
      const r = await net.exec(h, process.execPath, [CLI, '--prefix', prefixOf(h), '--no-install-deps', '--start', ...setsFor(h, extra)], {
        timeout: 600_000,
        env: { PATH: process.env.PATH },
      });
      if (r.exitCode !== 0) throw new Error(`install of ${h} (exit ${r.exitCode}):\n${r.all}`);
    },
    tool,
    spawnTool: (h, ...args) => net.spawn(h, process.execPath, [SITE_TOOL(), ...args]),
    counted: async (run, events = false) => {
      const r = await tool('store', 'count', storeUrl, run, ...(events ? ['events'] : []));
      if (r.exitCode !== 0) throw new Error(`count: ${r.all}`);
      return JSON.parse(String(r.stdout).trim().split('\n').at(-1)!);
    },
    pidsOf: async (h, match) => {
      const out: number[] = [];
      for (const pid of await net.pids(h)) {
        const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
        if (match.test(cmd.replace(/\0/g, ' '))) out.push(pid);
      }
      return out;
    },
    runningNodes: async (h) => {
      const r = await rabbitmqctl(h, ['cluster_status', '--formatter', 'json']);
      if (r.exitCode !== 0) return [];
      return (JSON.parse(String(r.stdout)) as { running_nodes: string[] }).running_nodes;
    },
    queueConsumers: async (h) => {
      const r = await rabbitmqctl(h, ['list_queues', '-p', 'canopsis', 'name', 'consumers', '--formatter', 'json']);
      if (r.exitCode !== 0) return new Map();
      return new Map((JSON.parse(String(r.stdout)) as Array<{ name: string; consumers: number }>).map((q) => [q.name, q.consumers]));
    },
    teardown: async () => {
      for (const h of hosts)
        await net
          .exec(h, path.join(prefixOf(h), 'bin', 'hypcontrol'), ['stop'], { env: { CPS_PREFIX: prefixOf(h) }, timeout: 180_000 })
          .catch(() => undefined);
      await net.teardown();
      await removeDir(dir);
    },
  };
  return site;
}
