import { readdir, readFile, readlink } from 'node:fs/promises';
import net from 'node:net';

/*
 * Who listens where, from /proc: a port held by a process of this prefix
 * (our own broker or webserver from an earlier install) is not a conflict.
 */

export async function portFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Socket inodes listening on each of `ports` (IPv4 and IPv6). */
async function listeningInodes(ports: ReadonlySet<number>): Promise<Map<string, number>> {
  const inodes = new Map<string, number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const localPort = parseInt(cols[1]!.split(':')[1] ?? '', 16);
      if (ports.has(localPort) && cols[3] === '0A') inodes.set(cols[9]!, localPort);
    }
  }
  return inodes;
}

export interface Holder {
  pid: number;
  command: string;
}

/**
 * The processes holding a listening socket on each of `ports` (only those we
 * may inspect), in one walk of /proc: with the stack running every port is
 * held, and a walk per port took a preflight most of a second.
 */
export async function portsHolders(ports: number[]): Promise<Map<number, Holder[]>> {
  const out = new Map<number, Holder[]>(ports.map((p) => [p, []]));
  const inodes = await listeningInodes(new Set(ports));
  if (inodes.size === 0) return out;
  const pids = (await readdir('/proc')).filter((pid) => /^\d+$/.test(pid));
  await Promise.all(
    pids.map(async (pid) => {
      const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
      const held = new Set<number>();
      for (const fd of fds) {
        const m = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''));
        const port = m && inodes.get(m[1]!);
        if (port) held.add(port);
      }
      if (held.size === 0) return;
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      for (const port of held) out.get(port)!.push({ pid: Number(pid), command: cmdline.split('\0').join(' ').trim() });
    }),
  );
  return out;
}

/** A process is ours when its command line names the prefix (config files, release path). */
export const heldByPrefix = (holders: Holder[], prefix: string) =>
  holders.length > 0 && holders.every((h) => h.command.includes(`${prefix}/`));
