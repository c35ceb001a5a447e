import { lstat, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { type ApplyResult, applyPlan, nextManifest, type Owners, ownerOf, switchSymlink, writeAtomic } from './apply/apply.js';
import { ensureDir, type ManagedDir, repairOwnership } from './apply/dirs.js';
import { exists } from './apply/fs.js';
import { lockLent, lockPrefix } from './apply/lock.js';
import { readManifest } from './apply/manifest.js';
import { applyPolicy, type ConffilePolicy, type PlannedFile, plan, readDisk, targetsToRead } from './apply/plan.js';
import { describeRelease, installRelease, pruneReleases, type ReleaseSource, releaseBytesNeeded } from './apply/release.js';
import { checkRuntime } from './apply/runtime.js';
import { PreflightError } from './errors.js';
import { failpoint } from './failpoint.js';
import { aptInstall } from './host/apt.js';
import { gatherFacts, type HostFacts } from './host/facts.js';
import { ensureServiceAccount, lookupIds } from './host/users.js';
import type { Layout } from './layout.js';
import { MIGRATIONS, recordApplied } from './migrations/index.js';
import { storeRunner } from './migrations/store-jobs.js';
import { missingBinaries } from './preflight/binaries.js';
import { runChecks } from './preflight/checks.js';
import { migrationsFile, type Prepared, prepare } from './prepare.js';
import { directoriesOf, enabledServices } from './services/index.js';
import type { SetOverride } from './settings/load.js';
import { hasRole } from './settings/roles.js';
import { type Timing, timed } from './timing.js';
import { type ValidationReport, validateTree } from './validate/index.js';
import { readVerdicts, type Verdicts, writeVerdicts } from './validate/verdicts.js';

/*
 * The install as a list of steps over one state object: settings -> plan ->
 * apply. Everything that can refuse (settings, dependencies, preflight,
 * validation) runs before the first write to the prefix.
 */

export interface InstallOptions {
  prefix: string;
  sets: SetOverride[];
  skipChecks: ReadonlySet<string>;
  installDeps: boolean;
  /** Stop after planning (./build-install plan). */
  dryRun: boolean;
  conffilePolicy?: ConffilePolicy;
  /** Asked per conflicting conffile with --conffile-policy ask. */
  ask?: (target: string) => Promise<'keep' | 'replace'>;
}

export interface InstallState {
  opts: InstallOptions;
  facts?: HostFacts;
  prepared?: Prepared;
  release?: ReleaseSource;
  depsInstalled: string[];
  warnings: string[];
  validation?: ValidationReport;
  planned?: PlannedFile[];
  accounts: string[];
  result?: ApplyResult;
  /** Everything written: files, directories, release, link, manifest. */
  writes: string[];
  /** Entries under var/ whose owner was wrong and was given back to the service user. */
  repaired: string[];
  /** What the run did on its own that the operator should hear of (not a problem). */
  notes: string[];
  /** Whether an updater lent its lock to this run (it then prunes releases itself). */
  lent?: boolean;
  /** Releases the prefix lock; the runner calls it whatever happens. */
  unlock?: () => Promise<void>;
  /** What the validators accepted on an earlier run (var/lib/pkgmgr/validated.json). */
  verdicts?: Verdicts;
  /** Where the run spent its time, step by step. */
  timings: Timing[];
}

export interface Step {
  title: string;
  /** What the step did, in a few words; `parts` takes the time of what it is made of. */
  run: (s: InstallState, parts: Timing[]) => Promise<string | undefined>;
  /** Skipped in dry runs (plan). */
  writes?: boolean;
}

const need = <T>(v: T | undefined, what: string): T => {
  if (v === undefined) throw new Error(`internal: ${what} not ready`);
  return v;
};

/** Directories of the tree with their owner and mode: the platform's and each enabled service's. */
export const directories = (p: Prepared): ManagedDir[] => directoriesOf(p.ctx);

/** The service directories that are not inside another one: where an ownership repair starts. */
const topServiceDirs = (dirs: ManagedDir[]) =>
  dirs
    .filter((d) => d.owner === 'service')
    .map((d) => d.dir)
    .filter((d, _, all) => !all.some((o) => o !== d && d.startsWith(`${o}${path.sep}`)));

async function prepareWithDeps(s: InstallState): Promise<void> {
  s.facts = await gatherFacts();
  s.prepared = await prepare(s.opts.prefix, s.facts, s.opts.sets);
}

export function installSteps(): Step[] {
  return [
    {
      title: 'Read settings',
      run: async (s) => {
        await prepareWithDeps(s);
        const p = s.prepared!;
        return `${p.layout.settingsFile}: ${p.settings.engines.length} engines, init ${p.settings.canopsis.init}, store ${p.settings.store.backend}`;
      },
    },
    {
      title: 'Install missing Debian packages',
      run: async (s) => {
        const missing = missingBinaries(need(s.prepared, 'settings'));
        const packages = missing.flatMap((m) => m.packages);
        const f = s.facts!;
        if (packages.length === 0) return 'none missing';
        if (!s.opts.installDeps || s.opts.dryRun || !f.root || !f.debian || !f.binaries.aptGet || s.opts.skipChecks.has('binaries')) {
          return `not installing ${packages.join(' ')}`;
        }
        s.depsInstalled = await aptInstall(packages, () => undefined);
        // New binaries change what is rendered (paths) and what preflight sees.
        await prepareWithDeps(s);
        return `installed ${s.depsInstalled.join(' ') || 'nothing'}`;
      },
    },
    {
      title: 'Preflight checks',
      run: async (s) => {
        const p = need(s.prepared, 'settings');
        s.release = await describeRelease();
        for (const skipped of s.opts.skipChecks) s.warnings.push(`preflight check "${skipped}" skipped at the operator's request`);
        const treeBytes = await releaseBytesNeeded(s.release, p.layout.releases);
        const failures = await runChecks({ prepared: p, treeBytes }, s.opts.skipChecks);
        if (failures.length) throw new PreflightError(failures);
        return 'host ready';
      },
    },
    {
      title: 'Validate rendered files with their programs',
      run: async (s, parts) => {
        const p = need(s.prepared, 'settings');
        s.verdicts = await readVerdicts(p.layout, (w) => s.warnings.push(w));
        s.validation = await validateTree(p, { release: need(s.release, 'release').id, verdicts: s.verdicts });
        parts.push(...s.validation.timings);
        for (const sk of s.validation.skipped) s.warnings.push(`${sk.program} not run: ${sk.reason}`);
        const { checked, unchanged } = s.validation;
        return [
          checked.length ? checked.map((c) => c.program).join(', ') : '',
          unchanged.length ? `unchanged since validated: ${unchanged.map((c) => c.program).join(', ')}` : '',
        ]
          .filter(Boolean)
          .join('; ');
      },
    },
    {
      title: 'Plan',
      run: async (s) => {
        const p = need(s.prepared, 'settings');
        const manifest = await readManifest(p.layout.manifest);
        const disk = await readDisk(p.layout.prefix, targetsToRead(p.files, manifest));
        // Owners are known once the service account exists (not yet on a first install, where every file is new anyway).
        const owners = await ownersOf(p).catch(() => undefined);
        s.planned = await applyPolicy(
          plan(p.files, disk, manifest, (f) => owners && ownerOf(f, owners)),
          s.opts.conffilePolicy ?? 'keep',
          s.opts.ask,
        );
        const n = s.planned.filter((f) => f.write).length;
        return `${n} file${n === 1 ? '' : 's'} to write`;
      },
    },
    {
      title: 'Lock the prefix',
      writes: true,
      run: async (s) => {
        const l = need(s.prepared, 'settings').layout;
        if (!(await exists(l.pkgmgr))) s.writes.push(l.pkgmgr);
        // An updater running this installer holds the lock for it, and repairs its own run.
        if (await lockLent(l)) {
          s.lent = true;
          return 'held by the updater';
        }
        s.unlock = await lockPrefix(l);
      },
    },
    {
      title: 'Service account',
      writes: true,
      run: async (s) => {
        const p = need(s.prepared, 'settings');
        if (!p.facts.root) return `services will run as ${p.facts.user} (not root)`;
        const { created } = await ensureServiceAccount(p.settings.canopsis.user, p.settings.canopsis.group, p.layout.varLib);
        s.accounts = created;
        return created.length ? `created ${created.join(', ')}` : `${p.settings.canopsis.user}:${p.settings.canopsis.group} exists`;
      },
    },
    {
      title: 'Install files',
      writes: true,
      run: async (s, parts) => {
        const p = need(s.prepared, 'settings');
        const r = need(s.release, 'release');
        const owners = await ownersOf(p);
        const ids = owners && { root: owners.files, service: owners.service };
        const dirs = directories(p);
        await timed(parts, 'directories and their owners', async () => {
          for (const d of dirs) if (await ensureDir(p.layout.prefix, d, ids)) s.writes.push(d.dir);
          if (owners) {
            // Whatever root created under var/ (by an older release, or by hand) goes back to the service user.
            for (const d of topServiceDirs(dirs)) s.repaired.push(...(await repairOwnership(d, owners.service)));
            if (s.repaired.length)
              s.warnings.push(
                `gave ${s.repaired.length} entr${s.repaired.length === 1 ? 'y' : 'ies'} under var/ back to ${owners.service.name}: ${s.repaired.slice(0, 5).join(', ')}${s.repaired.length > 5 ? ', ...' : ''}`,
              );
          }
        });
        const releaseDir = path.join(p.layout.releases, r.id);
        const placed = await timed(parts, `release ${r.id}`, () => installRelease(r, p.layout.releases));
        if (placed) s.writes.push(releaseDir);
        // Before anything names it: its Node runs here and its native modules load with that Node.
        // A release `current` already names is live and was checked when it went live.
        if (placed || (await currentRelease(p.layout)) !== r.id)
          await timed(parts, 'its embedded Node and native modules', () => checkRuntime(releaseDir));
        await timed(parts, 'rendered files', async () => {
          s.result = await applyPlan(p.layout.prefix, need(s.planned, 'plan'), owners);
          s.writes.push(...s.result.written, ...s.result.dist, ...s.result.removed);
        });
        failpoint('files-written');
        for (const svc of enabledServices(p.settings)) {
          if (!svc.initialize) continue;
          const note = await timed(parts, `${svc.name} initialised`, () => svc.initialize!(p.ctx, owners?.service));
          if (note) s.notes.push(note);
        }
        // The release goes live last: every file that names it exists by now.
        if (await switchSymlink(p.layout.current, path.join('releases', r.id))) s.writes.push(p.layout.current);
        failpoint('current-switched');
        await writeManifestIfChanged(s, p.layout, owners);
        // What the validators accepted, for the next run to skip what did not change (a cache, not part of the tree).
        if (s.validation) await writeVerdicts(p.layout, s.verdicts ?? {}, { ...s.verdicts, ...s.validation.accepted });
        if (p.migrations.length) {
          await timed(parts, 'migrations', async () => {
            // Settings migrations went in with canopsis.ini; the store ones run now (as the service user), then all are recorded.
            const store = p.migrations.filter((m) => m.store).map((m) => m.id);
            // The store is the site's: the hosts whose engines read it reshape it; the others only record.
            if (store.length && !hasRole(p.settings, 'engines'))
              s.notes.push(`no engines role on this host: store migrations ${store.join(', ')} are left to the engines hosts`);
            else if (store.length) {
              const empty =
                (await noStoreYet(p)) ||
                (await (await storeRunner(p.layout, MIGRATIONS, r.id))({ op: 'up', ids: store, skipWhenEmpty: true })).empty;
              if (empty) s.notes.push(`the store is empty: migrations ${store.join(', ')} recorded as applied, nothing to reshape`);
              failpoint('store-migrated');
            }
            await recordApplied(migrationsFile(p.layout), p.migrationState, p.migrations);
            s.writes.push(migrationsFile(p.layout));
          });
        }
        // Under an updater, pruning waits for its commit: the release it would roll back to must stay.
        if (!s.lent) await pruneReleases(p.layout.releases, [r.id]);
        return `${s.writes.length} written`;
      },
    },
  ];
}

/**
 * An embedded store that does not exist yet (a first install) holds nothing
 * to reshape: said without starting the service user's child to open it.
 * Only looked at (lstat), never opened: the directory is the service
 * user's, who could only make this skip a migration of its own data, as the
 * child's answer could (docs/installer.md).
 */
async function noStoreYet(p: Prepared): Promise<boolean> {
  if (!p.ctx.store.embedded) return false;
  const file = p.ctx.store.embeddedFile;
  const absent = (f: string) =>
    lstat(f).then(
      () => false,
      (e: NodeJS.ErrnoException) => e.code === 'ENOENT',
    );
  return (await absent(file)) && (await absent(`${file}-wal`));
}

/** The release id `current` names, if it names one. */
async function currentRelease(l: Layout): Promise<string | undefined> {
  const target = await readlink(l.current).catch(() => undefined);
  return target && path.dirname(target) === 'releases' ? path.basename(target) : undefined;
}

async function ownersOf(p: Prepared): Promise<Owners | undefined> {
  if (!p.facts.root) return undefined;
  const service = await lookupIds(p.settings.canopsis.user, p.settings.canopsis.group);
  if (!service) throw new Error(`service account ${p.settings.canopsis.user} missing`);
  return { files: { name: 'root', uid: 0, gid: 0 }, service };
}

async function writeManifestIfChanged(s: InstallState, l: Layout, owners: Owners | undefined): Promise<void> {
  const p = s.prepared!;
  const m = nextManifest(need(s.planned, 'plan'), s.release!.version, s.release!.id, owners, p.facts.user);
  const text = `${JSON.stringify(m, null, 2)}\n`;
  const before = await readFile(l.manifest, 'utf8').catch(() => undefined);
  if (before === text) return;
  await writeAtomic(l.manifest, text, 0o644);
  s.writes.push(l.manifest);
}

export function newState(opts: InstallOptions): InstallState {
  return { opts, depsInstalled: [], warnings: [], accounts: [], writes: [], repaired: [], notes: [], timings: [] };
}
