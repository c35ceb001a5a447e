import { mkdir, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa, type Result, type ResultPromise } from 'execa';

/*
 * Several "hosts" on one machine for the multi-host tests (issue 19): one
 * network namespace per host, each with loopback up and an eth0 on a
 * private /24, all plugged into a bridge that lives in a namespace of its
 * own (<prefix>-br). Nothing is created in the root namespace but the
 * namespaces' names (and /etc/netns/<ns>/hosts): no link, no route, no
 * NAT, no forwarding, so no traffic leaves the machine and the host's own
 * services (RabbitMQ on 127.0.0.1:5672...) cannot be reached from a host.
 *
 * Hosts resolve each other by name: `ip netns exec` bind-mounts
 * /etc/netns/<ns>/hosts over /etc/hosts in the mount namespace it makes for
 * the command. The UTS namespace is left alone (`hostname` still prints the
 * machine's name) unless a command is run with `hostname: true`.
 *
 * Needs root (ip netns).
 */

export interface NetHost {
  /** The name given to createNet, also its name in the hosts file. */
  name: string;
  /** Its network namespace: <prefix>-<name>. */
  ns: string;
  /** Its address on the test subnet. */
  ip: string;
}

export interface NetExecOptions {
  env?: Record<string, string | undefined>;
  /** false: only `env` (plus what execa always adds), not this process's environment. Default true. */
  extendEnv?: boolean;
  cwd?: string;
  timeout?: number;
  input?: string;
  /** Run as this user, with its supplementary groups, environment untouched (setpriv, which execs: the pid stays the command's). */
  user?: string;
  /** The group to run as with `user`; default: the group named like the user (useradd --user-group). */
  group?: string;
  /** Run in a new UTS namespace whose hostname is the host's name (unshare --uts), e.g. for Erlang short names. */
  hostname?: boolean;
}

type Common = { env?: Record<string, string | undefined>; extendEnv: boolean; cwd?: string; timeout?: number; input?: string };
type ExecOpts = Common & { readonly reject: false; readonly all: true };
type SpawnOpts = Common & { readonly reject: false; readonly all: true; readonly buffer: true };

export type NetExecResult = Result<ExecOpts>;
export type NetProcess = ResultPromise<SpawnOpts>;

export interface TestNet {
  prefix: string;
  /** e.g. '10.231.7': the /24 is <subnet>.0/24; hosts are <subnet>.11, .12, ... in the order given. */
  subnet: string;
  hosts: Record<string, NetHost>;
  /** The namespace holding the bridge (br0) and the host side of each veth. */
  bridgeNs: string;
  /** The hosts file every namespace sees as /etc/hosts. */
  hostsFile: string;
  /** The host, or throws if there is no such host. */
  host(name: string): NetHost;
  /** Runs a command to its end inside the host's namespace; a failed command does not reject (look at exitCode). */
  exec(host: string, file: string, args: string[], opts?: NetExecOptions): Promise<NetExecResult>;
  /** Starts a long-running command inside the host's namespace (output buffered, stdout and stderr in `all`). */
  spawn(host: string, file: string, args: string[], opts?: NetExecOptions): NetProcess;
  /** The pids of every process in the host's namespace. */
  pids(host: string): Promise<number[]>;
  /** Kills every process in the host's namespace and waits until none is left: `signal` (default SIGKILL), then SIGKILL after graceMs (default 10 s). */
  killAll(host: string, signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
  /** Kills every process in the namespaces, deletes them (with the bridge and links) and their /etc/netns entries. Idempotent. */
  teardown(): Promise<void>;
}

export interface CreateNetOptions {
  /**
   * Short, [a-z0-9]{1,12}: namespaces are <prefix>-<host> and <prefix>-br. Unique per run: two runs at
   * once with one prefix clash, and cleanupStale(prefix) of one removes the other's namespaces.
   */
  prefix: string;
  /** The first three octets of a private /24, e.g. '10.231.7'. */
  subnet: string;
  /** Host names: [a-z][a-z0-9-]* (used in the hosts file and in the namespace names). */
  hosts: string[];
  /** If given, each host is also <host>.<domain> in the hosts file (first, as its canonical name). */
  domain?: string;
}

const NETNS_ETC = '/etc/netns';
const PREFIX_RE = /^[a-z0-9]{1,12}$/;
const HOST_RE = /^[a-z][a-z0-9-]{0,30}$/;
const SUBNET_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
/** Host i (0-based) gets <subnet>.(FIRST_IP + i). */
const FIRST_IP = 11;

async function ip(args: string[]): Promise<void> {
  const r = await execa('ip', args, { reject: false, all: true });
  if (r.exitCode !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.exitCode}): ${r.all}`);
}

async function netnsList(): Promise<string[]> {
  const r = await execa('ip', ['netns', 'list'], { reject: false });
  if (r.exitCode !== 0) return [];
  // "name (id: 3)" or just "name"
  return String(r.stdout)
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter(Boolean);
}

async function nsPids(ns: string): Promise<number[]> {
  const r = await execa('ip', ['netns', 'pids', ns], { reject: false });
  if (r.exitCode !== 0) return [];
  return String(r.stdout)
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Kills every process in a namespace until none is left (processes may fork
 * while being killed). A signal other than SIGKILL is sent once and given
 * graceMs to work; what is left is then killed.
 */
async function killNs(ns: string, signal: NodeJS.Signals = 'SIGKILL', graceMs = 10_000): Promise<void> {
  const send = (pids: number[], sig: NodeJS.Signals) => {
    for (const pid of pids) {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  };
  const others = async () => (await nsPids(ns)).filter((p) => p !== process.pid);
  if (signal !== 'SIGKILL') {
    send(await others(), signal);
    const until = Date.now() + graceMs;
    while (Date.now() < until && (await others()).length > 0) await sleep(100);
  }
  const deadline = Date.now() + 10_000;
  for (;;) {
    const pids = await others();
    if (pids.length === 0) return;
    if (Date.now() > deadline) throw new Error(`processes still running in netns ${ns}: ${pids.join(' ')}`);
    send(pids, 'SIGKILL');
    await sleep(50);
  }
}

/** Kills what runs in the namespace, deletes it and its /etc/netns entry; quiet if it is not there. */
async function removeNs(ns: string): Promise<void> {
  const existing = await netnsList();
  if (existing.includes(ns)) {
    await killNs(ns);
    // Deleting a namespace deletes its links (the veth pairs and the bridge with them).
    await ip(['netns', 'delete', ns]);
  }
  await rm(path.join(NETNS_ETC, ns), { recursive: true, force: true });
}

async function removeNetnsEtcIfEmpty(): Promise<void> {
  try {
    await rmdir(NETNS_ETC);
  } catch {
    // not empty (another run's, or someone else's) or not there
  }
}

/**
 * Removes what a crashed earlier run with this prefix left: namespaces
 * <prefix>-* (with their processes and links) and /etc/netns/<prefix>-*.
 * Returns the namespaces it removed.
 */
export async function cleanupStale(prefix: string): Promise<string[]> {
  if (!PREFIX_RE.test(prefix)) throw new Error(`bad netns prefix ${JSON.stringify(prefix)}`);
  const mine = (n: string) => n.startsWith(`${prefix}-`);
  const removed = (await netnsList()).filter(mine);
  for (const ns of removed) await removeNs(ns);
  let etc: string[] = [];
  try {
    etc = (await readdir(NETNS_ETC)).filter(mine);
  } catch {
    // no /etc/netns
  }
  for (const ns of etc) await rm(path.join(NETNS_ETC, ns), { recursive: true, force: true });
  await removeNetnsEtcIfEmpty();
  return removed;
}

/** The argv that runs `file args` in a namespace, as a user, with its own hostname. */
export function netnsArgv(
  host: NetHost,
  file: string,
  args: string[],
  opts: Pick<NetExecOptions, 'user' | 'group' | 'hostname'> = {},
): string[] {
  let argv = [file, ...args];
  if (opts.user) argv = ['setpriv', `--reuid=${opts.user}`, `--regid=${opts.group ?? opts.user}`, '--init-groups', '--', ...argv];
  // unshare runs as root (before setpriv drops to the user), since a new UTS namespace needs CAP_SYS_ADMIN.
  if (opts.hostname) argv = ['unshare', '--uts', 'sh', '-c', 'hostname "$0" && exec "$@"', host.name, ...argv];
  return ['netns', 'exec', host.ns, ...argv];
}

export async function createNet(opts: CreateNetOptions): Promise<TestNet> {
  const { prefix, subnet, hosts: names } = opts;
  if (!PREFIX_RE.test(prefix)) throw new Error(`bad netns prefix ${JSON.stringify(prefix)} (want [a-z0-9]{1,12})`);
  const m = SUBNET_RE.exec(subnet);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) throw new Error(`bad subnet ${JSON.stringify(subnet)} (want e.g. '10.231.7')`);
  if (names.length === 0 || names.length > 200) throw new Error('createNet: 1 to 200 hosts');
  for (const n of names) if (!HOST_RE.test(n) || n === 'br') throw new Error(`bad host name ${JSON.stringify(n)}`);
  if (new Set(names).size !== names.length) throw new Error('createNet: host names must be unique');
  if (opts.domain !== undefined && !/^[a-z0-9]+(\.[a-z0-9-]+)*$/.test(opts.domain)) throw new Error(`bad domain ${opts.domain}`);

  const bridgeNs = `${prefix}-br`;
  const hosts: Record<string, NetHost> = {};
  names.forEach((name, i) => {
    hosts[name] = { name, ns: `${prefix}-${name}`, ip: `${subnet}.${FIRST_IP + i}` };
  });
  const all = [bridgeNs, ...Object.values(hosts).map((h) => h.ns)];
  const hostsFile = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    ...Object.values(hosts).map((h) => `${h.ip}\t${opts.domain ? `${h.name}.${opts.domain} ` : ''}${h.name}`),
    '',
  ].join('\n');

  const host = (name: string): NetHost => {
    const h = hosts[name];
    if (!h) throw new Error(`no host ${name} in this test net (${names.join(', ')})`);
    return h;
  };

  let torn: Promise<void> | undefined;
  const teardown = (): Promise<void> => {
    // Idempotent, and concurrent calls share the one teardown.
    torn ??= (async () => {
      const errors: unknown[] = [];
      // Hosts first (their processes hold the veths), the bridge last.
      for (const ns of [...all].reverse()) await removeNs(ns).catch((e: unknown) => errors.push(e));
      await removeNetnsEtcIfEmpty();
      if (errors.length) {
        torn = undefined; // let a later call retry
        throw new AggregateError(errors, `netns teardown of ${prefix}: ${errors.map((e) => (e as Error).message).join('; ')}`);
      }
    })();
    return torn;
  };

  const existing = await netnsList();
  const clash = all.filter((ns) => existing.includes(ns));
  if (clash.length) throw new Error(`netns ${clash.join(', ')} already exist: another run, or call cleanupStale('${prefix}')`);

  try {
    for (const ns of all) {
      await ip(['netns', 'add', ns]);
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    await ip(['-n', bridgeNs, 'link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
    await ip(['-n', bridgeNs, 'link', 'set', 'br0', 'up']);
    let i = 0;
    for (const h of Object.values(hosts)) {
      const port = `veth${i++}`;
      // Made in the bridge's namespace with its peer straight in the host's: never a link in the root namespace.
      await ip(['-n', bridgeNs, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns]);
      await ip(['-n', bridgeNs, 'link', 'set', port, 'master', 'br0', 'up']);
      await ip(['-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', 'eth0']);
      await ip(['-n', h.ns, 'link', 'set', 'eth0', 'up']);
      await mkdir(path.join(NETNS_ETC, h.ns), { recursive: true });
      await writeFile(path.join(NETNS_ETC, h.ns, 'hosts'), hostsFile);
    }
  } catch (e) {
    await teardown().catch(() => undefined);
    throw e;
  }

  const common = (o: NetExecOptions) => ({
    env: o.env,
    extendEnv: o.extendEnv ?? true,
    cwd: o.cwd,
    timeout: o.timeout,
    input: o.input,
  });

  return {
    prefix,
    subnet,
    hosts,
    bridgeNs,
    hostsFile,
    host,
    exec: async (name, file, args, o = {}) =>
      execa('ip', netnsArgv(host(name), file, args, o), { ...common(o), reject: false, all: true } as const),
    spawn: (name, file, args, o = {}) =>
      execa('ip', netnsArgv(host(name), file, args, o), { ...common(o), reject: false, all: true, buffer: true } as const),
    pids: (name) => nsPids(host(name).ns),
    killAll: (name, signal, graceMs) => killNs(host(name).ns, signal, graceMs),
    teardown,
  };
}
