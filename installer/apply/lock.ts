import { constants } from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { z } from 'zod';
import { LockedError } from '../errors.js';
import type { Layout } from '../layout.js';
import { ensureStateDir } from './dirs.js';
import { nodeFor } from './runtime.js';

/*
 * One build-install at a time per prefix. proper-lockfile's directory lock
 * (atomic mkdir, refreshed while held, stale after 30 s), plus an owner file
 * beside it naming the holder's pid and start time: a holder killed with -9
 * is seen dead at once, so the next run takes the lock over and repairs what
 * the dead one left, instead of waiting or asking the operator to delete it.
 */

/** The environment variable through which an updater lends its lock to the release installer it runs. */
export const LOCK_HELD_ENV = 'CPS_PREFIX_LOCK_HELD';

const processSchema = z.object({ pid: z.number().int().positive(), start: z.string().regex(/^\d+$/).optional() });
const ownerSchema = processSchema.extend({
  /** The release installer the holder lent the lock to: the lock lives while either does. */
  borrower: processSchema.optional(),
});
type Process = z.infer<typeof processSchema>;
type Owner = z.infer<typeof ownerSchema>;

export const lockPath = (layout: Layout) => path.join(layout.pkgmgr, 'install.lock');
// Beside the lock, not in it: a write inside the directory changes the mtime proper-lockfile watches.
const ownerFile = (layout: Layout) => `${lockPath(layout)}.owner`;

/** Fields of /proc/PID/stat after the command name: state first, start time (field 22) 20th. */
async function procStat(pid: number): Promise<string[] | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** The kernel's start time of a process, which tells a reused pid apart. */
const startOf = async (pid: number) => (await procStat(pid))?.[19];

async function readOwner(layout: Layout): Promise<Owner | undefined> {
  try {
    const parsed = ownerSchema.safeParse(JSON.parse(await readFile(ownerFile(layout), 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

async function running(o: Process): Promise<boolean> {
  try {
    process.kill(o.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = await procStat(o.pid);
  // A zombie (killed, not yet reaped by a parent that is gone too) holds nothing.
  if (stat?.[0] === 'Z') return false;
  return stat === undefined || stat[19] === o.start;
}

/** A holder killed with -9 may leave its borrower running: the lock stays until both are gone. */
const alive = async (o: Owner) => (await running(o)) || (o.borrower !== undefined && (await running(o.borrower)));

/** A new file renamed over the owner file: a link planted in its place is replaced, never followed. */
async function writeOwner(layout: Layout, borrower?: number): Promise<void> {
  const owner: Owner = {
    pid: process.pid,
    start: await startOf(process.pid),
    ...(borrower ? { borrower: { pid: borrower, start: await startOf(borrower) } } : {}),
  };
  const tmp = `${ownerFile(layout)}.${process.pid}.tmp`;
  await rm(tmp, { force: true });
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  try {
    await fh.writeFile(JSON.stringify(owner));
  } finally {
    await fh.close();
  }
  await rename(tmp, ownerFile(layout));
}

/** Runs `fn` under the prefix lock, or under the one an updater lent this process. */
export async function withPrefixLock<T>(layout: Layout, fn: () => Promise<T>): Promise<T> {
  const unlock = (await lockLent(layout)) ? undefined : await lockPrefix(layout);
  try {
    return await fn();
  } finally {
    await unlock?.();
  }
}

/**
 * Runs a release's installer (node script `cli`) under this holder's lock:
 * told so through the environment, and named in the owner file while it runs.
 */
export async function runBorrowing(layout: Layout, cli: string, args: string[], env: Record<string, string> = {}) {
  // A release's installer runs on that release's own Node (cli is <release>/dist/installer/cli.js).
  const node = await nodeFor(path.resolve(cli, '..', '..', '..'));
  // Imported here, not with the module: the child itself is needed (its pid), and most runs start none.
  const { execa } = await import('execa');
  const child = execa(node, [cli, ...args, '--prefix', layout.prefix], {
    env: { ...env, [LOCK_HELD_ENV]: String(process.pid) },
    reject: false,
    all: true,
  });
  if (child.pid) await writeOwner(layout, child.pid);
  try {
    return await child;
  } finally {
    await writeOwner(layout);
  }
}

/** Whether this process runs under a lock its parent holds on the prefix (the release installer of an update). */
export async function lockLent(layout: Layout): Promise<boolean> {
  const lender = Number(process.env[LOCK_HELD_ENV]);
  if (!lender) return false;
  const o = await readOwner(layout);
  return o?.pid === lender && (await running(o));
}

/** Takes the prefix lock; returns its release. */
export async function lockPrefix(layout: Layout): Promise<() => Promise<void>> {
  await ensureStateDir(layout);
  const take = () => lockfile.lock(layout.pkgmgr, { lockfilePath: lockPath(layout), retries: 0, stale: 30_000 });
  let release: () => Promise<void>;
  try {
    release = await take();
  } catch (e) {
    const owner = await readOwner(layout);
    // No owner file: the holder is between its mkdir and its owner write, or an older build-install.
    // (A holder in that window while a dead holder's owner file is still there looks dead: a run started
    // in the same millisecond could take its lock, and proper-lockfile then stops the first as compromised.)
    if (!owner || (await alive(owner))) {
      throw new LockedError(
        `another build-install${owner ? ` (pid ${owner.pid})` : ''} is running on ${layout.prefix} (lock ${lockPath(layout)}); wait for it to finish`,
      );
    }
    // The holder died without releasing: the lock is ours, and its unfinished work is repaired next.
    await rm(lockPath(layout), { recursive: true, force: true });
    try {
      release = await take();
    } catch {
      throw new LockedError(`another build-install is running on ${layout.prefix} (lock ${lockPath(layout)}); wait for it to finish`, {
        cause: e,
      });
    }
  }
  await writeOwner(layout);
  return async () => {
    await rm(ownerFile(layout), { force: true });
    await release();
  };
}
