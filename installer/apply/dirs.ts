import { constants } from 'node:fs';
import { type FileHandle, lchown, lstat, mkdir, open, readdir, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';
import { ApplyError } from '../errors.js';
import type { Layout } from '../layout.js';
import type { Ids } from './apply.js';

/*
 * Directories root creates or takes back, without ever following a link the
 * service user may have planted. The service user owns var/log, var/run and
 * its data directories, so it can replace any entry inside them with a
 * symbolic link between two of our system calls: a chown by path would then
 * hand whatever the link points at (/etc, a root-owned binary) to it.
 * So a directory is opened once with O_NOFOLLOW, the kernel is asked which
 * directory that descriptor really is (/proc/self/fd), and owner and mode
 * are changed through the descriptor; entries below it are reached through
 * /proc/self/fd/N/<name>, which never resolves the path again.
 */

export interface ManagedDir {
  dir: string;
  /** Who owns it: root (program files, installer state, and the parents of both) or the service user. */
  owner: 'root' | 'service';
  mode: number;
}

export class LinkRefused extends ApplyError {}

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

const refuse = async (p: string, why: string): Promise<never> => {
  const to = await readlink(p).catch(() => undefined);
  throw new LinkRefused(
    `${p} ${to !== undefined ? `is a symbolic link (to ${to})` : why}; a directory the installer manages must be a real directory: remove it (its owner may have planted it) and re-run`,
  );
};

/** Refuses a link anywhere between the prefix and `dir` (inclusive): the common case, named clearly before anything is created. */
async function assertNoLinks(prefix: string, dir: string): Promise<void> {
  const rel = path.relative(prefix, dir);
  const parts =
    rel.startsWith('..') || path.isAbsolute(rel)
      ? [dir]
      : rel.split(path.sep).map((_, i, all) => path.join(prefix, ...all.slice(0, i + 1)));
  for (const p of parts) {
    const st = await lstat(p).catch(() => undefined);
    if (!st) return;
    if (st.isSymbolicLink()) await refuse(p, 'is a symbolic link');
    if (!st.isDirectory()) await refuse(p, 'is not a directory');
  }
}

/** The canonical path `dir` must have once opened: its parent resolved (the prefix may sit behind a link of the operator's), itself not. */
async function canonical(dir: string): Promise<string> {
  return path.join(await realpath(path.dirname(dir)), path.basename(dir));
}

/**
 * Creates `d.dir` when missing and gives it its owner and mode (owners only as
 * root). Returns whether anything changed.
 */
export async function ensureDir(prefix: string, d: ManagedDir, ids: { root: Ids; service: Ids } | undefined): Promise<boolean> {
  await assertNoLinks(prefix, d.dir);
  const created = (await mkdir(d.dir, { recursive: true, mode: d.mode })) !== undefined;
  const want = await canonical(d.dir);
  let fh: FileHandle;
  try {
    fh = await open(d.dir, DIR_FLAGS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOTDIR') return refuse(d.dir, 'is not a directory');
    throw e;
  }
  try {
    const real = await readlink(`/proc/self/fd/${fh.fd}`);
    if (real !== want)
      throw new LinkRefused(
        `${d.dir} resolved to ${real} while being opened (a link was swapped in); nothing was changed there: check who can write its parent and re-run`,
      );
    const st = await fh.stat();
    let changed = created;
    const owner = ids && (d.owner === 'root' ? ids.root : ids.service);
    if (owner && (st.uid !== owner.uid || st.gid !== owner.gid)) {
      await fh.chown(owner.uid, owner.gid);
      changed = true;
    }
    if ((st.mode & 0o7777) !== d.mode && (!ids || owner)) {
      await fh.chmod(d.mode);
      changed = true;
    }
    return changed;
  } finally {
    await fh.close();
  }
}

/**
 * Gives every entry below a service-owned directory back to the service
 * user (a file root created there by mistake, an old release's store file).
 * Never follows a link: entries are reached through the descriptor of their
 * directory. Returns the paths it changed.
 */
export async function repairOwnership(dir: string, owner: Ids, shown = dir): Promise<string[]> {
  let fh: FileHandle;
  try {
    fh = await open(dir, DIR_FLAGS);
  } catch (e) {
    // Gone, or swapped for a link since it was listed: nothing of ours to follow there.
    if (['ENOENT', 'ELOOP', 'ENOTDIR'].includes((e as NodeJS.ErrnoException).code ?? '')) return [];
    throw e;
  }
  const changed: string[] = [];
  try {
    const base = `/proc/self/fd/${fh.fd}`;
    for (const name of await readdir(base)) {
      const p = `${base}/${name}`;
      const st = await lstat(p).catch(() => undefined);
      if (!st) continue;
      // A file with another name elsewhere (a hard link the service user made to a file of root's) is not given away.
      const linked = !st.isDirectory() && st.nlink > 1 && st.uid !== owner.uid;
      if (!linked && (st.uid !== owner.uid || st.gid !== owner.gid)) {
        await lchown(p, owner.uid, owner.gid);
        changed.push(path.join(shown, name));
      }
      if (st.isDirectory()) changed.push(...(await repairOwnership(p, owner, path.join(shown, name))));
    }
  } finally {
    await fh.close();
  }
  return changed;
}

/** var/, var/lib and the installer state under it: root's, so the service user can neither rename nor replace them. */
export function stateDirs(layout: Layout): ManagedDir[] {
  return [
    { dir: layout.var, owner: 'root', mode: 0o755 },
    { dir: layout.varLib, owner: 'root', mode: 0o755 },
    { dir: layout.pkgmgr, owner: 'root', mode: 0o755 },
  ];
}

/**
 * Every directory below `dir` must be root's and writable by root alone, and
 * nothing there a link: then nobody but root put anything there (files keep
 * the owners cp -a gave them, those of the live tree when it was copied).
 * A release before 0.4.0 left var/lib to the service user, who could have
 * replaced var/lib/pkgmgr with a tree of its own; what root is about to act
 * on (an update's snapshot, which a rollback copies over etc/ and bin/)
 * must not come from there.
 */
export async function assertRootTree(dir: string, why: string): Promise<void> {
  const visit = async (p: string): Promise<void> => {
    const st = await lstat(p);
    const bad = st.isSymbolicLink()
      ? 'is a symbolic link'
      : !st.isDirectory()
        ? undefined
        : st.uid !== 0
          ? `belongs to uid ${st.uid}`
          : st.mode & 0o022
            ? `is writable by others (mode ${(st.mode & 0o7777).toString(8)})`
            : undefined;
    if (bad) throw new ApplyError(`${p} ${bad}: ${why}`);
    if (st.isDirectory()) for (const e of await readdir(p)) await visit(path.join(p, e));
  };
  if (process.getuid?.() === 0) await visit(dir);
}

/** Makes the installer state directory safe to use (as root: root-owned up to the prefix, no links). */
export async function ensureStateDir(layout: Layout): Promise<void> {
  const root = process.getuid?.() === 0 ? { uid: 0, gid: 0 } : undefined;
  for (const d of stateDirs(layout)) await ensureDir(layout.prefix, d, root && { root, service: root });
}
