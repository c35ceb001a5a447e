import { cp, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { readManifest, sha256 } from '../apply/manifest.js';
import { InstallerError, UsageError } from '../errors.js';
import { layoutOf, type Layout } from '../layout.js';
import { Supervisor } from '../control/supervisor.js';
import { compareVersions } from './format.js';
import { MIGRATIONS, pending, readMigrationState } from '../migrations/index.js';
import { migrationsFile } from '../prepare.js';
import { openBundle } from './open.js';

/*
 * Install or update from a bundle, status, remove and purge. The bundle's own
 * installer renders the tree (its templates, its migrations); this module
 * checks the bundle, places the release, runs the control hooks, and on an
 * update of a running stack checks health and goes back to the old release
 * when the new one does not come up.
 */

export class UpdateFailed extends InstallerError {
  override readonly exitCode = 9;
}

const exists = (p: string) => stat(p).then(() => true, () => false);

/** Runs a control hook of a release directory (packaging/hooks/<name>). */
async function hook(release: string, name: string, layout: Layout, env: Record<string, string>, log: (l: string) => void): Promise<void> {
  const file = path.join(release, 'packaging', 'hooks', name);
  if (!(await exists(file))) return;
  const r = await execa(file, [], { env: { CPS_PREFIX: layout.prefix, ...env }, reject: false, all: true });
  if (r.all?.trim()) log(`hook ${name}: ${r.all.trim()}`);
  if (r.exitCode !== 0) throw new InstallerError(`control hook ${name} failed (exit ${r.exitCode}); nothing further was done`);
}

/** Runs the installer of a release on the prefix. */
async function releaseInstaller(layout: Layout, release: string, args: string[]) {
  return execa(process.execPath, [path.join(layout.releases, release, 'dist', 'installer', 'cli.js'), 'install', '--prefix', layout.prefix, ...args], { reject: false, all: true });
}

/**
 * The services an update must restart: the engines and the webserver run the
 * release's code; the broker, MongoDB and collectd only when their rendered
 * configuration changed (the broker keeps queueing events meanwhile).
 */
export function servicesToRestart(written: string[]): string[] {
  const touched = (re: RegExp) => written.some((w) => re.test(w));
  return [
    touched(/etc\/rabbitmq\/|supervisord\.d\/rabbitmq-server\.conf/) ? 'rabbitmq-server' : '',
    touched(/etc\/mongodb\.conf|supervisord\.d\/mongodb\.conf/) ? 'mongodb' : '',
    touched(/etc\/collectd\.conf|supervisord\.d\/collectd\.conf/) ? 'collectd' : '',
    'amqp2engines',
    'webserver',
  ].filter(Boolean);
}

async function healthy(layout: Layout, services: string[]): Promise<string | undefined> {
  const env = { CPS_PREFIX: layout.prefix };
  for (const service of services) {
    const r = await execa(path.join(layout.bin, 'service'), [service, 'restart'], { env, reject: false, all: true });
    if (r.exitCode !== 0) return `service ${service} restart: ${r.all?.trim().split('\n').slice(-3).join(' | ')}`;
  }
  const probe = await execa(path.join(layout.bin, 'send-event'), ['--connector', 'build-install', '--connector-name', 'update-probe', '--component', 'canopsis', '--state', '0', '--api'], { env, reject: false, all: true });
  return probe.exitCode === 0 ? undefined : `probe event through the API: ${probe.all}`;
}

export interface BundleRunOptions {
  prefix: string;
  bundle: string;
  allowDowngrade: boolean;
  passthrough: string[];
  update: boolean;
  log: (line: string) => void;
}

export async function installFromBundle(o: BundleRunOptions): Promise<{ version: string; release: string; from?: string; rolledBack?: string }> {
  const layout = layoutOf(o.prefix);
  const installed = await readManifest(layout.manifest);
  if (o.update && !installed) throw new UsageError(`nothing installed in ${layout.prefix} to update; use install --bundle`);
  const opened = await openBundle(o.bundle, os.tmpdir());
  try {
    const m = opened.manifest;
    if (installed && compareVersions(m.version, installed.version) < 0 && !o.allowDowngrade) {
      throw new UsageError(`${o.bundle} is version ${m.version}, older than the installed ${installed.version}: downgrade refused without --allow-downgrade`);
    }
    const env = { CPS_OLD_VERSION: installed?.version ?? '', CPS_NEW_VERSION: m.version };
    const updating = installed !== undefined;
    await hook(path.join(opened.dir, 'release'), updating ? 'preupdate' : 'preinst', layout, env, o.log);
    // The release goes in whole or not at all.
    const dest = path.join(layout.releases, m.release);
    if (!(await exists(path.join(dest, 'package.json')))) {
      await mkdir(layout.releases, { recursive: true });
      const partial = path.join(layout.releases, `.${m.release}.partial`);
      await rm(partial, { recursive: true, force: true });
      await cp(path.join(opened.dir, 'release'), partial, { recursive: true, verbatimSymlinks: true });
      await rename(partial, dest);
    }
    const settingsBefore = await readFile(layout.settingsFile, 'utf8').catch(() => undefined);
    const running = await new Supervisor(layout.prefix).running();
    const r = await releaseInstaller(layout, m.release, [...o.passthrough, '--json']);
    if (r.exitCode !== 0) throw new InstallerError(`the installer of ${m.release} failed (exit ${r.exitCode}): ${r.stderr.trim()}; the old release stays active`);
    const summary = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as { writes?: string[]; dist?: string[] };
    o.log(`${m.release}: ${summary.writes?.length ?? 0} files written${summary.dist?.length ? `; your edits kept, new versions in ${summary.dist.join(', ')}` : ''}`);
    if (updating && running) {
      const services = servicesToRestart(summary.writes ?? []);
      o.log(`restarting ${services.join(', ')}`);
      const problem = await healthy(layout, services);
      if (problem) {
        // Back to what ran before: its settings, its rendered files, its release, restarted.
        if (settingsBefore !== undefined) await writeFile(layout.settingsFile, settingsBefore);
        const back = await releaseInstaller(layout, installed!.release, []);
        const restarted = await healthy(layout, services);
        throw new UpdateFailed(
          `update to ${m.version} failed its health check (${problem}); rolled back to ${installed!.version} (${installed!.release})${back.exitCode === 0 && !restarted ? ', running again' : `, which also failed: ${restarted ?? back.all}`}`,
        );
      }
    }
    await hook(dest, updating ? 'postupdate' : 'postinst', layout, env, o.log);
    return { version: m.version, release: m.release, from: installed?.version };
  } finally {
    await opened.cleanup();
  }
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
}

export async function status(prefix: string): Promise<Status> {
  const layout = layoutOf(prefix);
  const m = await readManifest(layout.manifest);
  if (!m) return { prefix: layout.prefix, installed: false, running: false, modifiedConffiles: [], pendingDist: [], pendingMigrations: [] };
  const todo = pending(MIGRATIONS, await readMigrationState(migrationsFile(layout))).map((x) => `${x.id}: ${x.description}`);
  const modified: string[] = [];
  const waiting: string[] = [];
  for (const [target, e] of Object.entries(m.files)) {
    if (e.kind !== 'conffile') continue;
    const text = await readFile(path.join(layout.prefix, target)).catch(() => undefined);
    if (text && sha256(text) !== e.sha256) modified.push(target);
    if (await exists(path.join(layout.prefix, `${target}.dist`))) waiting.push(`${target}.dist`);
  }
  return { prefix: layout.prefix, installed: true, version: m.version, release: m.release, running: await new Supervisor(layout.prefix).running(), modifiedConffiles: modified, pendingDist: waiting, pendingMigrations: todo };
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
  await stopAll(layout, log);
  await hook(layout.current, 'prerm', layout, {}, log);
  const removed = [layout.bin, path.join(layout.prefix, 'lib')];
  for (const p of removed) await rm(p, { recursive: true, force: true });
  return removed;
}

/** purge: everything of ours under the prefix, after a confirmation. */
export async function purge(prefix: string, confirmed: boolean, log: (l: string) => void): Promise<void> {
  const layout = layoutOf(prefix);
  if (!confirmed) throw new UsageError(`purge deletes ${layout.prefix} entirely (settings, credentials, data): add --yes to confirm`);
  await stopAll(layout, log);
  if (await exists(layout.current)) await hook(layout.current, 'purge', layout, {}, log);
  await rm(layout.prefix, { recursive: true, force: true });
}
