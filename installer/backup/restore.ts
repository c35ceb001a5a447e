import { constants } from 'node:fs';
import { lstat, open, readdir, readFile, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { readRuntimeConfig } from '../../runtime/config/runtime.js';
import { writeAtomic } from '../apply/apply.js';
import { ensureDir } from '../apply/dirs.js';
import { filesUnder } from '../apply/fs.js';
import { runBorrowing, withPrefixLock } from '../apply/lock.js';
import { manifestSchema, readManifest } from '../apply/manifest.js';
import { compareVersions } from '../bundle/format.js';
import { INSTALL_SUMMARY, releaseOutput } from '../bundle/release-output.js';
import { restartAndProbe, stopPipeline } from '../bundle/services.js';
import { recoverInterrupted, releaseCli } from '../bundle/transaction.js';
import { Supervisor } from '../control/supervisor.js';
import { ApplyError, BackupRefused, lastLines, StartError, UsageError } from '../errors.js';
import { lookupIds } from '../host/users.js';
import { type Layout, layoutOf } from '../layout.js';
import { readMigrationState } from '../migrations/index.js';
import { serviceAccount } from '../migrations/store-jobs.js';
import { migrationsFile } from '../prepare.js';
import { PIPELINE, restartFor } from '../services/index.js';
import { type BackupLimits, type OpenedBackup, openBackup } from './archive.js';
import { defaultBackupDir, removeLeftovers } from './backup.js';
import type { BackupManifest } from './format.js';
import { mongoTool, restoreMongo } from './mongo.js';
import { checkPgRestore, restorePostgresql } from './postgresql.js';
import { copyStore } from './store-copy.js';

/*
 * ./build-install restore FILE, under the prefix lock:
 * 1. the archive checked and extracted (archive.ts), a backup from a newer
 *    version than the installed one refused;
 * 2. what opens the store stopped (the engines and the webserver; the
 *    broker queues meanwhile, a local mongod keeps running);
 * 3. the store put back by the service user (or mongorestore --drop);
 * 4. etc/, the installer's manifest and the migration record of the backup
 *    put back, then the installed release's own installer run on them: it
 *    renders every file for this prefix with the right owner and mode, and
 *    runs the migrations from the backup's version to the installed one;
 * 5. the stack started (or restarted) and proven with a probe event.
 */

export interface RestoreOptions {
  file: string;
  /** --yes: the operator confirmed that the store and etc/ are replaced. */
  confirmed: boolean;
  log: (line: string) => void;
  limits?: Partial<BackupLimits>;
}

export interface RestoreResult {
  /** The backup: its version, when and where it was made. */
  backup: { version: string; created: string; prefix: string };
  installed: string;
  /** Migrations run on the restored data (from the backup's version to the installed one). */
  migrated: string[];
  /** etc/ files the restore changed. */
  etcChanged: string[];
  entities?: number;
  alarms?: number;
  restarted: string[];
}

/** Whether systemd (PID 1) runs this appliance's units now (they would restart what restore stops). */
export async function systemdRuns(): Promise<boolean> {
  const pid1 = await readFile('/proc/1/comm', 'utf8').catch(() => '');
  if (pid1.trim() !== 'systemd') return false;
  return (await execa('systemctl', ['is-active', '--quiet', 'canopsis.target'], { reject: false })).exitCode === 0;
}

/** The installer's manifest inside the backup, checked like the live one is when read back. */
async function backupInstallManifest(o: OpenedBackup, file: string): Promise<string> {
  const text = await readFile(path.join(o.dir, 'pkgmgr', 'manifest.json'), 'utf8').catch(() => undefined);
  if (text === undefined) throw new BackupRefused(`${file}: pkgmgr/manifest.json missing; refused`);
  let parsed: ReturnType<typeof manifestSchema.safeParse>;
  try {
    parsed = manifestSchema.safeParse(JSON.parse(text));
  } catch (e) {
    throw new BackupRefused(`${file}: pkgmgr/manifest.json is not JSON (${(e as Error).message}); refused`);
  }
  if (!parsed.success)
    throw new BackupRefused(
      `${file}: pkgmgr/manifest.json is not an installer manifest (${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}); refused`,
    );
  if (parsed.data.version !== o.manifest.version)
    throw new BackupRefused(
      `${file}: pkgmgr/manifest.json is of version ${parsed.data.version}, the backup of ${o.manifest.version}; refused`,
    );
  return text;
}

/** The refusals that need nothing but the manifest: run before anything is extracted. */
export function acceptBackup(file: string, m: BackupManifest, installedVersion: string): void {
  if (m.store.file ? !m.files[m.store.file] : m.store.backend !== 'embedded') {
    throw new BackupRefused(
      `${file}: its manifest names ${m.store.file ? `the store copy ${m.store.file} without listing that file` : `a ${m.store.backend} store without its dump`}; refused`,
    );
  }
  if (compareVersions(m.version, installedVersion) > 0) {
    throw new BackupRefused(
      `${file} is a backup of Canopsis ${m.version}, newer than the installed ${installedVersion}: its data may have a shape this version cannot read; install ${m.version} or later first, then restore`,
    );
  }
}

/** The store back where this prefix keeps it, as the service user. */
async function putStoreBack(layout: Layout, o: OpenedBackup, release: string): Promise<{ entities?: number; alarms?: number }> {
  const cfg = await readRuntimeConfig(layout.prefix);
  const m = o.manifest;
  if (cfg.store.backend === 'postgresql') {
    await restorePostgresql(cfg.store.url, path.join(o.dir, m.store.file!));
    return {};
  }
  if (cfg.store.backend === 'mongodb') {
    await restoreMongo(cfg.store.url, path.join(o.dir, m.store.file!), path.dirname(o.dir));
    return {};
  }
  // restoreBackup refused a backup of another backend before this.
  if (cfg.store.backend !== 'embedded') throw new UsageError(`restoring into a ${cfg.store.backend} store is not supported`);
  // A store directory deleted with the store: made again as the installer makes it (the service user's, 0750).
  const dir = path.dirname(cfg.store.file);
  if (!path.relative(layout.prefix, dir).startsWith('..') && process.getuid?.() === 0) {
    const account = await serviceAccount(layout);
    const ids = await lookupIds(account.user, account.group);
    if (ids) await ensureDir(layout.prefix, { dir, owner: 'service', mode: 0o750 }, { root: { uid: 0, gid: 0 }, service: ids });
  }
  if (!m.store.file) {
    await copyStore(layout, 'clear', undefined, [release]);
    return { entities: 0, alarms: 0 };
  }
  const fh = await open(path.join(o.dir, m.store.file), constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const r = await copyStore(layout, 'restore', fh.fd, [release]);
    return { entities: r.entities, alarms: r.alarms };
  } finally {
    await fh.close();
  }
}

/**
 * etc/ made exactly the backup's: each file written atomically with its
 * mode, root's (and the service group's where it was); files the backup
 * does not have are removed. Returns what changed.
 */
async function putEtcBack(layout: Layout, o: OpenedBackup): Promise<string[]> {
  const account = process.getuid?.() === 0 ? await serviceAccount(layout) : undefined;
  const ids = account && (await lookupIds(account.user, account.group));
  const changed: string[] = [];
  const wanted = new Set<string>();
  for (const [rel, e] of Object.entries(o.manifest.files)) {
    if (!rel.startsWith('etc/')) continue;
    wanted.add(rel);
    const target = path.join(layout.prefix, rel);
    const content = await readFile(path.join(o.dir, rel));
    const owner = process.getuid?.() === 0 ? { uid: 0, gid: e.group === 'service' && ids ? ids.gid : 0 } : undefined;
    const st = await lstat(target).catch(() => undefined);
    const same =
      st?.isFile() &&
      (st.mode & 0o777) === e.mode &&
      (!owner || (st.uid === owner.uid && st.gid === owner.gid)) &&
      (await readFile(target)).equals(content);
    if (same) continue;
    await writeAtomic(target, content, e.mode, owner);
    changed.push(rel);
  }
  for (const rel of await filesUnder(layout.etc)) {
    const name = path.posix.join('etc', ...rel.split(path.sep));
    if (wanted.has(name)) continue;
    await rm(path.join(layout.etc, rel), { force: true });
    changed.push(name);
  }
  await removeEmptyDirs(layout.etc);
  return changed;
}

async function removeEmptyDirs(dir: string, top = true): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true })) if (e.isDirectory()) await removeEmptyDirs(path.join(dir, e.name), false);
  if (!top && (await readdir(dir)).length === 0) await rmdir(dir).catch(() => undefined);
}

/** Starts what is stopped (or restarts `services` of a running supervisord) and sends the probe event; the problem, if any. */
export async function startAndProbe(layout: Layout, services: string[], log: (l: string) => void): Promise<string | undefined> {
  if (await new Supervisor(layout.prefix).running()) {
    log(`restarting ${services.join(', ')}`);
    return restartAndProbe(layout, services);
  }
  log('starting the stack (hypcontrol start)');
  const r = await execa(path.join(layout.bin, 'hypcontrol'), ['start'], { env: { CPS_PREFIX: layout.prefix }, reject: false, all: true });
  if (r.exitCode !== 0)
    return `hypcontrol start: ${r.exitCode} service(s) failed: ${String(r.all ?? '')
      .trim()
      .split('\n')
      .slice(-5)
      .join(' | ')}`;
  return restartAndProbe(layout, []);
}

export async function restoreBackup(prefix: string, o: RestoreOptions): Promise<RestoreResult> {
  const layout = layoutOf(prefix);
  const file = path.resolve(o.file);
  return withPrefixLock(layout, async () => {
    // etc/ and the store must go back over the files of one version, not a half-done update.
    await recoverInterrupted(layout, o.log);
    const installed = await readManifest(layout.manifest);
    if (!installed)
      throw new UsageError(
        `nothing installed in ${layout.prefix}: install the same or a newer version first (./build-install install), then restore`,
      );
    const work = defaultBackupDir(layout);
    const root = process.getuid?.() === 0 ? { uid: 0, gid: 0 } : undefined;
    await ensureDir(layout.prefix, { dir: work, owner: 'root', mode: 0o700 }, root && { root, service: root });
    await removeLeftovers(work);
    const opened = await openBackup(file, work, (m) => acceptBackup(file, m, installed.version), o.limits);
    try {
      const m = opened.manifest;
      const installManifest = await backupInstallManifest(opened, file);
      const cfg = await readRuntimeConfig(layout.prefix);
      if (cfg.store.backend !== m.store.backend) {
        throw new UsageError(
          `${file} holds a ${m.store.backend} store and ${layout.prefix} uses ${cfg.store.backend}: set the same backend first (./build-install --set store.backend=${m.store.backend}), then restore`,
        );
      }
      if (m.store.backend === 'mongodb') await mongoTool('mongorestore', 'cannot restore the store');
      if (m.store.backend === 'postgresql') await checkPgRestore();
      const what = `${file}: Canopsis ${m.version} backed up ${m.created} from ${m.prefix}`;
      if (!o.confirmed)
        throw new UsageError(
          `${what}; restoring replaces the store and etc/ of ${layout.prefix} (the services are stopped meanwhile): add --yes to go ahead`,
        );
      if (await systemdRuns())
        throw new UsageError(
          'the stack runs under systemd (canopsis.target is active): stop it (systemctl stop canopsis.target), restore, then start it again',
        );
      o.log(`${what}; verified (${Object.keys(m.files).length} files)`);
      if (await new Supervisor(layout.prefix).running()) {
        o.log(`stopping ${PIPELINE.join(', ')} while the store is put back`);
        await stopPipeline(layout);
      }
      const counts = await putStoreBack(layout, opened, installed.release);
      o.log(`store put back${counts.alarms !== undefined ? `: ${counts.entities} entities, ${counts.alarms} alarms` : ''}`);
      const etcChanged = await putEtcBack(layout, opened);
      await writeAtomic(layout.manifest, installManifest, 0o644);
      await writeAtomic(migrationsFile(layout), `${JSON.stringify({ applied: m.migrations.applied }, null, 2)}\n`, 0o644);
      o.log(
        `etc/ put back (${etcChanged.length} files changed), migration record of ${m.version}; running the installer of ${installed.release}`,
      );
      const r = await runBorrowing(layout, releaseCli(layout, installed.release), ['install', '--json']);
      if (r.exitCode !== 0) {
        throw new ApplyError(
          `the store and etc/ of the backup are back, but the installer of ${installed.release} failed on them (exit ${r.exitCode}): ${lastLines(r.stderr)}; fix that and run ./build-install install --start`,
        );
      }
      const summary = releaseOutput(INSTALL_SUMMARY, r.stdout, `the installer of ${installed.release} (install --json)`);
      const after = await readMigrationState(migrationsFile(layout));
      const migrated = Object.keys(after.applied).filter((id) => !(id in m.migrations.applied));
      if (migrated.length) o.log(`migrated from ${m.version} to ${installed.version}: ${migrated.join(', ')}`);
      const services = restartFor([...summary.writes, ...etcChanged]);
      const problem = await startAndProbe(layout, services, o.log);
      if (problem) throw new StartError(`the backup is restored, but the stack does not come up: ${problem}`);
      return {
        backup: { version: m.version, created: m.created, prefix: m.prefix },
        installed: installed.version,
        migrated,
        etcChanged,
        ...counts,
        restarted: services,
      };
    } finally {
      await opened.cleanup();
    }
  });
}
