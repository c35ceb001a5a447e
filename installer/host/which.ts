import { access, constants } from 'node:fs/promises';
import path from 'node:path';

// sbin directories are missing from a normal user's PATH on Debian, yet
// rabbitmq-server and collectd live there.
const EXTRA = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

export async function which(name: string, extra: string[] = []): Promise<string | undefined> {
  const dirs = [...extra, ...(process.env.PATH ?? '').split(path.delimiter), ...EXTRA].filter(Boolean);
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export async function firstExisting(paths: string[]): Promise<string | undefined> {
  for (const p of paths) {
    try {
      await access(p);
      return p;
    } catch {
      // try the next one
    }
  }
  return undefined;
}
