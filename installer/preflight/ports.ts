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

/** Socket inodes listening on a TCP port (IPv4 and IPv6). */
async function listeningInodes(port: number): Promise<Set<string>> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const localPort = parseInt(cols[1]!.split(':')[1] ?? '', 16);
      if (localPort === port && cols[3] === '0A') inodes.add(cols[9]!);
    }
  }
  return inodes;
}

export interface Holder {
  pid: number;
  command: string;
}

/** The processes holding a listening socket on the port (only those we may inspect). */
export async function portHolders(port: number): Promise<Holder[]> {
  const inodes = await listeningInodes(port);
  if (inodes.size === 0) return [];
  const out: Holder[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m && inodes.has(m[1]!)) {
        const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
        out.push({ pid: Number(pid), command: cmdline.split('\0').join(' ').trim() });
        break;
      }
    }
  }
  return out;
}

/** A process is ours when its command line names the prefix (config files, release path). */
export const heldByPrefix = (holders: Holder[], prefix: string) =>
  holders.length > 0 && holders.every((h) => h.command.includes(`${prefix}/`));
