import { cp, mkdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { exists } from '../apply/fs.js';
import { lockPrefix, runBorrowing, withPrefixLock } from '../apply/lock.js';
import { type Manifest, readManifest, sha256 } from '../apply/manifest.js';
import { pruneReleases } from '../apply/release.js';
import { nodeFor } from '../apply/runtime.js';
import type { LastBackup } from '../backup/backup.js';
import { Supervisor } from '../control/supervisor.js';
import { InstallerError, UsageError } from '../errors.js';
import { failpoint } from '../failpoint.js';
import { execa } from '../host/exec.js';
import { type Layout, layoutOf } from '../layout.js';
import type { PendingMigration } from '../migrations/run.js';
import { SECRET_SETS_ENV, SECRET_SETS_SINCE, splitSecretSets } from '../settings/secret-sets.js';
import { type Timing, timed } from '../timing.js';
import { type BundleManifest, compareVersions } from './format.js';
import { openBundle, readBundleHead } from './open.js';
import { placedFrom, placedReleases, recordPlaced } from './placed.js';
import { INSTALL_SUMMARY } from './release-output.js';
import { restartAndProbe, stopPipeline } from './services.js';
import { readPublicKeyFile, readTrustedKeys } from './signature.js';
import { begin, commit, type Journal, LENDING, readJournal, recoverInterrupted, releaseCli, rollback } from './transaction.js';
import { runUpdate, type UpdateEffects } from './update-machine.js';

/*
 * Install or update from a bundle, status, remove and purge. The bundle's own
 * installer renders the tree (its templates, its migrations); this module
 * checks the bundle, places the release, runs the control hooks, and on an
 * update of a running stack checks health and goes back to the old release
 * when the new one does not come up.
 */

/** Runs a control hook of a release directory (packaging/hooks/<name>). */
async function hook(release: string, name: string, layout: Layout, env: Record<string, string>, log: (l: string) => void): Promise<void> {
  const file = path.join(release, 'packaging', 'hooks', name);
  if (!(await exists(file))) return;
  const r = await execa(file, [], { env: { CPS_PREFIX: layout.prefix, ...env }, reject: false, all: true });
  if (r.all?.trim()) log(`hook ${name}: ${r.all.trim()}`);
  if (r.exitCode !== 0) throw new InstallerError(`control hook ${name} failed (exit ${r.exitCode}); nothing further was done`);
}

/** The prefix lock of this run, which a release installer borrows. */
interface RunLock {
  release: () => Promise<void>;
  take: () => Promise<void>;
}

/**
 * Runs the installer of a release on the prefix under this updater's lock.
 * An installer older than lock lending takes the lock itself: this run lets
 * go of it meanwhile (another run could slip in then; it would find the
 * journal and roll this update back, which is safe).
 */
async function releaseInstaller(layout: Layout, lock: RunLock, release: { id: string; version: string }, command: string[]) {
  const cli = releaseCli(layout, release.id);
  // Credentials set with --set go through the environment (readable by root alone), never in a command line.
  if (compareVersions(release.version, SECRET_SETS_SINCE) >= 0) {
    const [args, secret] = splitSecretSets(command);
    return runBorrowing(layout, cli, args, secret.length ? { [SECRET_SETS_ENV]: JSON.stringify(secret) } : {});
  }
  if (compareVersions(release.version, LENDING) >= 0) return runBorrowing(layout, cli, command);
  await lock.release();
  try {
    return await execa(await nodeFor(path.join(layout.releases, release.id)), [cli, ...command, '--prefix', layout.prefix], {
      reject: false,
      all: true,
    });
  } finally {
    await lock.take();
  }
}

/** Whether systemd (PID 1) runs this appliance's units now. */
async function systemdRuns(): Promise<boolean> {
  const pid1 = await readFile('/proc/1/comm', 'utf8').catch(() => '');
  if (pid1.trim() !== 'systemd') return false;
  return (await execa('systemctl', ['is-active', '--quiet', 'canopsis.target'], { reject: false })).exitCode === 0;
}

/**
 * The release goes in whole or not at all: put beside its place, then
 * renamed. `move` takes `from` away (a bundle extracted in releases/: a
 * rename, where copying 290 MB took 10 s); otherwise it is copied.
 */
export async function placeRelease(layout: Layout, from: string, release: string, how: 'copy' | 'move' = 'copy'): Promise<boolean> {
  const dest = path.join(layout.releases, release);
  if (await exists(path.join(dest, 'package.json'))) return false;
  await mkdir(layout.releases, { recursive: true });
  const partial = path.join(layout.releases, `.${release}.partial`);
  await rm(partial, { recursive: true, force: true });
  const moved =
    how === 'move' &&
    (await rename(from, partial).then(
      () => true,
      (e: NodeJS.ErrnoException) => {
        if (e.code === 'EXDEV') return false;
        throw e;
      },
    ));
  if (!moved) await cp(from, partial, { recursive: true, verbatimSymlinks: true });
  failpoint('release-copied');
  await rm(dest, { recursive: true, force: true });
  await rename(partial, dest);
  failpoint('release-placed');
  return true;
}

export interface BundleRunOptions {
  prefix: string;
  bundle: string;
  allowDowngrade: boolean;
  /** Accept store migrations that cannot be undone (a failed update then keeps the reshaped data). */
  allowIrreversible: boolean;
  passthrough: string[];
  update: boolean;
  /** Public key files trusted for this run, beside PREFIX/etc/trusted-keys/. */
  trustedKeys: string[];
  /** Accept a bundle whose signature is missing or not trusted (what is skipped is said). */
  allowUnsigned: boolean;
  /** No backup before store migrations (what is skipped is said). */
  skipBackup?: boolean;
  log: (line: string) => void;
}

/** A checked bundle: its manifest, and the release directory its hooks and installer are taken from. */
interface Source {
  manifest: BundleManifest;
  /** sha256 of the manifest (the record of where a placed release came from). */
  digest: string;
  /** The extracted release, or releases/<id> when it was placed from this very bundle before. */
  release: string;
  cleanup: () => Promise<void>;
}

/**
 * Root runs the code of the bundle it opens: its signer must be trusted, or
 * the operator said to skip that. A bundle whose release was placed from it
 * before (same signed manifest, placed.ts) is not extracted again.
 */
async function openTrusted(o: BundleRunOptions, layout: Layout): Promise<Source> {
  const trustedKeys = [
    ...(await readTrustedKeys(path.join(layout.etc, 'trusted-keys'))),
    ...(await Promise.all(o.trustedKeys.map(readPublicKeyFile))),
  ];
  const options = { trustedKeys, allowUnsigned: o.allowUnsigned };
  const said = (s: { skipped?: string; fingerprint?: string }) =>
    s.skipped
      ? o.log(`warning: the bundle's signature was not checked (--allow-unsigned): ${s.skipped}`)
      : o.log(`${o.bundle}: signed by ${s.fingerprint}, a trusted key`);
  const placed = await placedReleases(layout);
  const head =
    Object.keys(placed).length > 0
      ? await readBundleHead(o.bundle, options, (m, digest) => placed[m.release]?.manifest === digest)
      : undefined;
  if (head && (await placedFrom(layout, head.manifest.release, head.digest, o.bundle))) {
    said(head);
    const release = path.join(layout.releases, head.manifest.release);
    o.log(`${head.manifest.release} is in place, placed from this same bundle file: not extracted again`);
    return { manifest: head.manifest, digest: head.digest, release, cleanup: async () => undefined };
  }
  // Extracted beside the releases, on their filesystem, so that placing it is a rename; a killed run's leftover is swept by recoverInterrupted.
  const opened = await openBundle(o.bundle, layout.releases, options);
  said(opened);
  return { manifest: opened.manifest, digest: opened.digest, release: path.join(opened.dir, 'release'), cleanup: opened.cleanup };
}

/** Places the release of a checked bundle, and records which bundle it came from once it did. */
async function place(layout: Layout, src: Source, bundle: string): Promise<void> {
  if (await placeRelease(layout, src.release, src.manifest.release, 'move'))
    await recordPlaced(layout, src.manifest.release, src.digest, bundle);
}

export interface BundleRunResult {
  version: string;
  release: string;
  /** The version updated from. */
  from?: string;
  /** Where the run spent its time, step by step. */
  timings: Timing[];
}

export async function installFromBundle(o: BundleRunOptions): Promise<BundleRunResult> {
  const timings: Timing[] = [{ step: 'Load the installer', ms: performance.now() }];
  const layout = layoutOf(o.prefix);
  let unlock: (() => Promise<void>) | undefined = await lockPrefix(layout);
  const lock: RunLock = {
    release: async () => {
      await unlock?.();
      unlock = undefined;
    },
    take: async () => {
      unlock = await lockPrefix(layout);
    },
  };
  try {
    await timed(timings, 'Finish an interrupted update', () => recoverInterrupted(layout, o.log));
    return { ...(await runBundle(o, layout, lock, timings)), timings };
  } finally {
    await unlock?.();
  }
}

async function runBundle(
  o: BundleRunOptions,
  layout: Layout,
  lock: RunLock,
  timings: Timing[],
): Promise<{ version: string; release: string; from?: string }> {
  const installed = await readManifest(layout.manifest);
  if (o.update && !installed) throw new UsageError(`nothing installed in ${layout.prefix} to update; use install --bundle`);
  const opened = await timed(timings, 'Check the bundle', () => openTrusted(o, layout));
  try {
    const m = opened.manifest;
    if (installed && compareVersions(m.version, installed.version) < 0 && !o.allowDowngrade) {
      throw new UsageError(
        `${o.bundle} is version ${m.version}, older than the installed ${installed.version}: downgrade refused without --allow-downgrade`,
      );
    }
    const env = { CPS_OLD_VERSION: installed?.version ?? '', CPS_NEW_VERSION: m.version };
    await hook(opened.release, installed ? 'preupdate' : 'preinst', layout, env, o.log);
    if (!installed) {
      await timed(timings, 'Place the release', () => place(layout, opened, o.bundle));
      const r = await timed(timings, 'Run its installer', async (parts) => {
        const ran = await releaseInstaller(layout, lock, { id: m.release, version: m.version }, ['install', ...o.passthrough, '--json']);
        if (ran.exitCode === 0) parts.push(...(installTimings(ran.stdout) ?? []));
        return ran;
      });
      if (r.exitCode !== 0) throw new InstallerError(`the installer of ${m.release} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
      await hook(path.join(layout.releases, m.release), 'postinst', layout, env, o.log);
      return { version: m.version, release: m.release };
    }
    const plan = {
      from: { version: installed.version, release: installed.release },
      to: { version: m.version, release: m.release },
      allowIrreversible: o.allowIrreversible,
      passthrough: o.passthrough,
    };
    await runUpdate(plan, updateEffects(o, layout, lock, opened, installed, env), timings);
    return { version: m.version, release: m.release, from: installed.version };
  } finally {
    await opened.cleanup();
  }
}

/** The real effects of an update: release installers under this run's lock, supervisord, the probe, the files of the prefix. */
function updateEffects(
  o: BundleRunOptions,
  layout: Layout,
  lock: RunLock,
  src: Source,
  installed: Manifest,
  env: Record<string, string>,
): UpdateEffects {
  const m = src.manifest;
  return {
    place: () => place(layout, src, o.bundle),
    runRelease: (release, command) => releaseInstaller(layout, lock, { id: release.release, version: release.version }, command),
    running: async () => {
      const running = await new Supervisor(layout.prefix).running();
      if (await systemdRuns()) {
        // Stopping, restarting and health-checking go through supervisord; units started by systemd would keep old code writing.
        throw new UsageError(
          'the stack runs under systemd (canopsis.target is active): stop it (systemctl stop canopsis.target), update, then start it again',
        );
      }
      return running;
    },
    backup: (todo) => backupBeforeMigrations(o, layout, todo, m.release),
    begin: (journal) => begin(layout, journal),
    commit: () => commit(layout),
    rollback: (journal) => rollback(layout, journal),
    stopPipeline: () => stopPipeline(layout),
    restartAndProbe: (services) => restartAndProbe(layout, services),
    finish: async () => {
      // Never the release this update came from: a later rollback may need it.
      await pruneReleases(layout.releases, [m.release, installed.release]);
      await hook(path.join(layout.releases, m.release), 'postupdate', layout, env, o.log);
    },
    failpoint,
    log: o.log,
    now: () => new Date(),
  };
}

/**
 * Store migrations reshape the data in place: a backup of the store and
 * etc/ comes first (online, before anything is stopped or journaled), unless
 * the operator said --skip-backup, which is then said back with what it skips.
 */
export async function backupBeforeMigrations(
  o: BundleRunOptions,
  layout: Layout,
  todo: PendingMigration[],
  newRelease: string,
): Promise<void> {
  const store = todo.filter((x) => x.store).map((x) => x.id);
  if (o.skipBackup) {
    o.log(
      store.length
        ? `warning: --skip-backup: no backup of the store and etc/ before the store migrations ${store.join(', ')}; if they fail in a way the rollback cannot undo, that data is lost`
        : '--skip-backup: nothing skipped (this update has no store migration, so no backup was due)',
    );
    return;
  }
  if (!store.length) return;
  o.log(`backing up the store and etc/ before the store migrations ${store.join(', ')} (--skip-backup to skip)`);
  const { createBackup, describeBackup } = await import('../backup/backup.js');
  // The copy is made by the installed release, or by the new one when the installed one predates backups.
  const r = await createBackup(layout, { log: o.log, releases: [newRelease] });
  o.log(`backup: ${describeBackup(r)}${r.deleted.length ? `; ${r.deleted.length} older removed` : ''}`);
}

export interface Status {
  prefix: string;
  installed: boolean;
  version?: string;
  release?: string;
  running: boolean;
  modifiedConffiles: string[];
  pendingDist: string[];
  /** Migrations of this installer not yet run on the prefix (they run on the next install or update). */
  pendingMigrations: string[];
  /** An update whose run was killed: the next install, update or remove rolls it back. */
  interrupted?: Journal;
  /** The last backup of this prefix, its age in seconds, and whether its archive is still there. */
  lastBackup?: LastBackup & { present: boolean; ageSeconds: number };
}

export async function status(prefix: string): Promise<Status> {
  const layout = layoutOf(prefix);
  const m = await readManifest(layout.manifest);
  if (!m) return { prefix: layout.prefix, installed: false, running: false, modifiedConffiles: [], pendingDist: [], pendingMigrations: [] };
  const [{ pendingMigrations }, { lastBackup }] = await Promise.all([import('../migrations/run.js'), import('../backup/backup.js')]);
  const todo = (await pendingMigrations(layout)).map((x) => `${x.id}: ${x.description}`);
  const modified: string[] = [];
  const waiting: string[] = [];
  for (const [target, e] of Object.entries(m.files)) {
    if (e.kind !== 'conffile') continue;
    const text = await readFile(path.join(layout.prefix, target)).catch(() => undefined);
    if (text && sha256(text) !== e.sha256) modified.push(target);
    if (await exists(path.join(layout.prefix, `${target}.dist`))) waiting.push(`${target}.dist`);
  }
  const last = await lastBackup(layout);
  return {
    prefix: layout.prefix,
    installed: true,
    version: m.version,
    release: m.release,
    running: await new Supervisor(layout.prefix).running(),
    modifiedConffiles: modified,
    pendingDist: waiting,
    pendingMigrations: todo,
    interrupted: await readJournal(layout),
    ...(last ? { lastBackup: { ...last, ageSeconds: Math.max(0, Math.round((Date.now() - Date.parse(last.created)) / 1000)) } } : {}),
  };
}

async function stopAll(layout: Layout, log: (l: string) => void): Promise<void> {
  if (!(await new Supervisor(layout.prefix).running())) return;
  const r = await execa(path.join(layout.bin, 'hypcontrol'), ['stop'], { env: { CPS_PREFIX: layout.prefix }, reject: false, all: true });
  log(r.all ?? '');
  await new Supervisor(layout.prefix).shutdown();
}

/** remove: services stopped, program files gone; etc/ and var/ (settings, data, the manifest) stay. */
export async function remove(prefix: string, log: (l: string) => void): Promise<string[]> {
  const layout = layoutOf(prefix);
  if (!(await readManifest(layout.manifest))) throw new UsageError(`nothing installed in ${layout.prefix}`);
  return withPrefixLock(layout, async () => {
    // What stays (etc/, var/) must be the settings and data of one version.
    await recoverInterrupted(layout, log);
    await stopAll(layout, log);
    await hook(layout.current, 'prerm', layout, {}, log);
    const removed = [layout.bin, path.join(layout.prefix, 'lib')];
    for (const p of removed) await rm(p, { recursive: true, force: true });
    return removed;
  });
}

/** purge: everything of ours under the prefix, after a confirmation. */
export async function purge(prefix: string, confirmed: boolean, log: (l: string) => void): Promise<void> {
  const layout = layoutOf(prefix);
  if (!confirmed) throw new UsageError(`purge deletes ${layout.prefix} entirely (settings, credentials, data): add --yes to confirm`);
  await stopAll(layout, log);
  if (await exists(layout.current)) await hook(layout.current, 'purge', layout, {}, log);
  // GNU rm walks by descriptor and never follows a link swapped in while it runs (var/ holds the service user's
  // directories, and a process of it may outlive the stop); Node's recursive rm resolves each path again.
  const r = await execa('rm', ['-rf', '--one-file-system', '--', layout.prefix], { reject: false, all: true });
  if (r.exitCode !== 0) throw new InstallerError(`rm -rf ${layout.prefix} failed: ${r.all?.trim()}`);
}

/** The step times a release installer reported in its --json answer, if it did (diagnostics: none is fine). */
function installTimings(stdout: string): Timing[] | undefined {
  try {
    return INSTALL_SUMMARY.parse(JSON.parse(stdout.trim().split('\n').at(-1) ?? '')).timings;
  } catch {
    return undefined;
  }
}
