import { constants } from 'node:fs';
import { copyFile, lstat, mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { readRuntimeConfig } from '../../runtime/config/runtime.js';
import { writeAtomic } from '../apply/apply.js';
import { ensureDir } from '../apply/dirs.js';
import { filesUnder } from '../apply/fs.js';
import { readManifest, sha256 } from '../apply/manifest.js';
import { RELEASE_ID, VERSION } from '../apply/release-id.js';
import { readStateFile } from '../apply/state-file.js';
import { InstallerError, UsageError } from '../errors.js';
import { lookupIds } from '../host/users.js';
import type { Layout } from '../layout.js';
import { readMigrationState } from '../migrations/index.js';
import { serviceAccount } from '../migrations/store-jobs.js';
import { migrationsFile } from '../prepare.js';
import { sha256File, writeArchive } from './archive.js';
import { archiveName, BACKUP_MANIFEST, BACKUP_NAME, type BackupFileEntry, type BackupManifest } from './format.js';
import { dumpMongo } from './mongo.js';
import { dumpPostgresql } from './postgresql.js';
import { pruneBackups, readKeep } from './retention.js';
import { copyStore } from './store-copy.js';

/*
 * ./build-install backup: an online copy of the store (the stack keeps
 * running) with etc/ (secrets included), the installer's manifest and the
 * migration record, into one 0600 archive of root's. The caller holds the
 * prefix lock, so etc/ and the record belong to one version.
 */

/** Where backups go unless --out says otherwise: root's, 0700 (they hold the secrets). */
export const defaultBackupDir = (layout: Layout) => path.join(layout.var, 'backups');

const lastFile = (layout: Layout) => path.join(layout.pkgmgr, 'last-backup.json');
const lastSchema = z.object({
  file: z.string(),
  version: z.string().regex(VERSION),
  release: z.string().regex(RELEASE_ID),
  created: z.iso.datetime(),
  bytes: z.number().int().nonnegative(),
});
export type LastBackup = z.infer<typeof lastSchema>;

export interface BackupOptions {
  /** Directory of the archive (created 0700 when missing); PREFIX/var/backups by default. */
  out?: string;
  log: (line: string) => void;
  /** Releases whose store-copy script may do the copy when the installed one has none (an update's new one). */
  releases?: string[];
  now?: () => Date;
}

export interface BackupResult {
  file: string;
  bytes: number;
  manifest: BackupManifest;
  /** Older archives removed by retention. */
  deleted: string[];
  seconds: number;
}

/** The backup directory, made root's and 0700 when it is ours (under the prefix) or new; never through a link. */
async function backupDir(layout: Layout, dir: string): Promise<void> {
  const inPrefix = !path.relative(layout.prefix, dir).startsWith('..');
  const root = process.getuid?.() === 0 ? { uid: 0, gid: 0 } : undefined;
  if (inPrefix) {
    await ensureDir(layout.prefix, { dir, owner: 'root', mode: 0o700 }, root && { root, service: root });
    return;
  }
  const st = await lstat(dir).catch(() => undefined);
  if (!st) await mkdir(dir, { recursive: true, mode: 0o700 });
  else if (!st.isDirectory()) throw new UsageError(`--out ${dir}: not a directory`);
}

/** What a killed backup or restore left in a backup directory (the caller holds the prefix lock: none runs now). */
export async function removeLeftovers(dir: string): Promise<void> {
  for (const n of await readdir(dir).catch(() => [] as string[])) {
    if (/^\.(staging|restore)-/.test(n) || /^\.canopsis-backup-.*\.partial$/.test(n))
      await rm(path.join(dir, n), { recursive: true, force: true });
  }
}

/** Copies etc/ (regular files only; root's tree) into the stage, with what a restore needs to give each its owner back. */
async function copyEtc(layout: Layout, base: string, serviceGid: number | undefined): Promise<Record<string, BackupFileEntry>> {
  const files: Record<string, BackupFileEntry> = {};
  for (const rel of await filesUnder(layout.etc)) {
    const src = path.join(layout.etc, rel);
    const st = await lstat(src);
    if (!st.isFile()) continue;
    const content = await readFile(src);
    const dst = path.join(base, 'etc', rel);
    await mkdir(path.dirname(dst), { recursive: true, mode: 0o700 });
    await writeFile(dst, content, { mode: 0o600 });
    files[path.posix.join('etc', ...rel.split(path.sep))] = {
      sha256: sha256(content),
      size: content.length,
      mode: st.mode & 0o777,
      group: serviceGid !== undefined && st.gid === serviceGid && serviceGid !== 0 ? 'service' : 'root',
    };
  }
  return files;
}

async function entryOf(file: string, mode = 0o600): Promise<BackupFileEntry> {
  const st = await lstat(file);
  return { sha256: await sha256File(file), size: st.size, mode, group: 'root' };
}

/** The store into base/store/: the embedded one by the service user through a descriptor, MongoDB by mongodump. */
async function copyStoreOut(layout: Layout, base: string, releases: string[]): Promise<BackupManifest['store']> {
  const cfg = await readRuntimeConfig(layout.prefix);
  await mkdir(path.join(base, 'store'), { mode: 0o700 });
  if (cfg.store.backend === 'postgresql') {
    const rel = 'store/pg_dump.custom';
    await dumpPostgresql(cfg.store.url, path.join(base, rel));
    return { backend: 'postgresql', file: rel };
  }
  if (cfg.store.backend === 'mongodb') {
    const rel = 'store/mongodump.archive.gz';
    await dumpMongo(cfg.store.url, path.join(base, rel), base);
    return { backend: 'mongodb', file: rel };
  }
  const rel = 'store/canopsis.db';
  const fh = await open(path.join(base, rel), constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  let report: Awaited<ReturnType<typeof copyStore>>;
  try {
    report = await copyStore(layout, 'backup', fh.fd, releases);
    await fh.sync();
    const { size } = await fh.stat();
    if (size !== report.bytes) throw new InstallerError(`the store copy is ${size} bytes where its writer reported ${report.bytes}`);
    if (report.present) {
      const head = Buffer.alloc(16);
      await fh.read(head, 0, 16, 0);
      if (head.toString('latin1') !== 'SQLite format 3\0') throw new InstallerError('the store copy is not an SQLite database');
    }
  } finally {
    await fh.close();
  }
  if (!report.present) {
    await rm(path.join(base, rel));
    return { backend: 'embedded' };
  }
  return { backend: 'embedded', file: rel, entities: report.entities, alarms: report.alarms };
}

export async function createBackup(layout: Layout, o: BackupOptions): Promise<BackupResult> {
  const t0 = performance.now();
  const installed = await readManifest(layout.manifest);
  if (!installed) throw new UsageError(`nothing installed in ${layout.prefix} to back up`);
  const keep = await readKeep(layout);
  const dir = path.resolve(o.out ?? defaultBackupDir(layout));
  await backupDir(layout, dir);
  await removeLeftovers(dir);
  const account = await serviceAccount(layout);
  const serviceGid = (await lookupIds(account.user, account.group))?.gid;
  const record = await readMigrationState(migrationsFile(layout));
  let created = (o.now ?? (() => new Date()))();
  // Two backups within one second: the later one takes the next free second (names sort as times).
  while (
    await lstat(path.join(dir, archiveName(installed.version, created))).then(
      () => true,
      () => false,
    )
  )
    created = new Date(created.getTime() + 1000);
  const name = archiveName(installed.version, created);
  const top = name.replace(/\.tar\.gz$/, '');
  const stage = await mkdtemp(path.join(dir, '.staging-'));
  try {
    const base = path.join(stage, top);
    await mkdir(base, { mode: 0o700 });
    const files = await copyEtc(layout, base, serviceGid);
    await mkdir(path.join(base, 'pkgmgr'), { mode: 0o700 });
    await copyFile(layout.manifest, path.join(base, 'pkgmgr', 'manifest.json'));
    files['pkgmgr/manifest.json'] = await entryOf(path.join(base, 'pkgmgr', 'manifest.json'), 0o644);
    const store = await copyStoreOut(layout, base, [installed.release, ...(o.releases ?? [])]);
    if (store.file) files[store.file] = await entryOf(path.join(base, store.file));
    const manifest: BackupManifest = {
      format: 1,
      name: BACKUP_NAME,
      version: installed.version,
      release: installed.release,
      created: created.toISOString(),
      prefix: layout.prefix,
      store,
      migrations: { applied: record.applied },
      files,
    };
    await writeFile(path.join(base, BACKUP_MANIFEST), `${JSON.stringify(manifest, null, 1)}\n`, { mode: 0o600 });
    const file = path.join(dir, name);
    const bytes = await writeArchive(stage, top, Object.keys(files).sort(), file);
    await writeAtomic(
      lastFile(layout),
      `${JSON.stringify({ file, version: installed.version, release: installed.release, created: manifest.created, bytes } satisfies LastBackup, null, 2)}\n`,
      0o644,
    );
    // Only once the new one is safely written.
    const deleted = (await pruneBackups(dir, keep)).filter((f) => f !== file);
    return { file, bytes, manifest, deleted, seconds: (performance.now() - t0) / 1000 };
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

/** The last backup this prefix made, and whether its archive is still there. */
export async function lastBackup(layout: Layout): Promise<(LastBackup & { present: boolean }) | undefined> {
  const last = await readStateFile(lastFile(layout), lastSchema, 'a backup record');
  if (!last) return undefined;
  return { ...last, present: (await lstat(last.file).catch(() => undefined))?.isFile() ?? false };
}

/** One line on a backup: where, of what, how big, what its store held. */
export function describeBackup(r: BackupResult): string {
  const s = r.manifest.store;
  const held =
    s.backend === 'embedded'
      ? s.file
        ? `${s.entities} entities, ${s.alarms} alarms`
        : 'an empty store'
      : s.backend === 'postgresql'
        ? 'a pg_dump archive'
        : 'a mongodump archive';
  return `${r.file}: Canopsis ${r.manifest.version}, etc/ and ${held}, ${(r.bytes / 1024 ** 2).toFixed(1)} MiB in ${r.seconds.toFixed(1)} s`;
}
