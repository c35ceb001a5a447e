import { chown, mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { applyPlan, nextManifest, switchSymlink, writeAtomic, type ApplyResult, type Owners } from './apply/apply.js';
import { readManifest } from './apply/manifest.js';
import { applyPolicy, plan, readDisk, targetsToRead, type ConffilePolicy, type PlannedFile } from './apply/plan.js';
import { describeRelease, installRelease, pruneReleases, type ReleaseSource } from './apply/release.js';
import { PreflightError } from './errors.js';
import { lockLent, lockPrefix } from './apply/lock.js';
import { exists } from './apply/fs.js';
import { failpoint } from './failpoint.js';
import { aptInstall } from './host/apt.js';
import { gatherFacts, type HostFacts } from './host/facts.js';
import { ensureServiceAccount, lookupIds } from './host/users.js';
import type { Layout } from './layout.js';
import { missingBinaries } from './preflight/binaries.js';
import { runChecks } from './preflight/checks.js';
import { migrationsFile, prepare, type Prepared } from './prepare.js';
import { migrateStore, recordApplied } from './migrations/index.js';
import { openStore, readRuntimeConfig } from '../runtime/config/runtime.js';
import type { SetOverride } from './settings/load.js';
import { validateTree, type ValidationReport } from './validate/index.js';

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
  /** Whether an updater lent its lock to this run (it then prunes releases itself). */
  lent?: boolean;
  /** Releases the prefix lock; the runner calls it whatever happens. */
  unlock?: () => Promise<void>;
}

export interface Step {
  title: string;
  run: (s: InstallState) => Promise<string | void>;
  /** Skipped in dry runs (plan). */
  writes?: boolean;
}

const need = <T>(v: T | undefined, what: string): T => {
  if (v === undefined) throw new Error(`internal: ${what} not ready`);
  return v;
};

/** Directories of the tree, and whether the service user owns them. */
export function directories(p: Prepared): Array<{ dir: string; service: boolean }> {
  const l = p.layout;
  const out = [
    { dir: l.bin, service: false },
    { dir: path.join(l.etc, 'supervisord.d'), service: false },
    { dir: path.join(l.etc, 'engines'), service: false },
    { dir: l.releases, service: false },
    { dir: l.plugins, service: false },
    { dir: l.pkgmgr, service: false },
    { dir: l.var, service: true },
    { dir: l.log, service: true },
    { dir: l.engineLog, service: true },
    { dir: l.varLib, service: true },
    { dir: l.run, service: true },
  ];
  if (p.ctx.rabbitmq.local) {
    out.push({ dir: p.ctx.rabbitmq.logDir, service: true }, { dir: p.ctx.rabbitmq.home, service: true });
  }
  if (p.ctx.store.mongodbLocal) out.push({ dir: p.ctx.store.dbpathAbs, service: true });
  if (p.settings.collectd.enabled) out.push({ dir: p.ctx.collectd.baseDir, service: true });
  if (p.ctx.store.embedded) out.push({ dir: path.dirname(p.ctx.store.embeddedFile), service: true });
  return out;
}

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
        const failures = await runChecks({ prepared: p, treeBytes: s.release.bytes }, s.opts.skipChecks);
        if (failures.length) throw new PreflightError(failures);
        return 'host ready';
      },
    },
    {
      title: 'Validate rendered files with their programs',
      run: async (s) => {
        s.validation = await validateTree(need(s.prepared, 'settings'));
        for (const sk of s.validation.skipped) s.warnings.push(`${sk.program} not run: ${sk.reason}`);
        return s.validation.checked.map((c) => c.program).join(', ');
      },
    },
    {
      title: 'Plan',
      run: async (s) => {
        const p = need(s.prepared, 'settings');
        const manifest = await readManifest(p.layout.manifest);
        const disk = await readDisk(p.layout.prefix, targetsToRead(p.files, manifest));
        s.planned = await applyPolicy(plan(p.files, disk, manifest), s.opts.conffilePolicy ?? 'keep', s.opts.ask);
        const n = s.planned.filter((f) => f.write).length;
        return `${n} file${n === 1 ? '' : 's'} to write`;
      },
    },
    {
      title: 'Lock the prefix',
      writes: true,
      run: async (s) => {
        const l = need(s.prepared, 'settings').layout;
        if (!(await exists(l.pkgmgr))) {
          await mkdir(l.pkgmgr, { recursive: true });
          s.writes.push(l.pkgmgr);
        }
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
      run: async (s) => {
        const p = need(s.prepared, 'settings');
        const r = need(s.release, 'release');
        const owners = await ownersOf(p);
        for (const d of directories(p)) {
          const st = await stat(d.dir).catch(() => undefined);
          if (!st) await mkdir(d.dir, { recursive: true });
          const want = owners && (d.service ? owners.service : owners.files);
          const chowned = want && (!st || st.uid !== want.uid || st.gid !== want.gid);
          if (chowned) await chown(d.dir, want.uid, want.gid);
          if (!st || chowned) s.writes.push(d.dir);
        }
        if (await installRelease(r, p.layout.releases)) s.writes.push(path.join(p.layout.releases, r.id));
        s.result = await applyPlan(p.layout.prefix, need(s.planned, 'plan'), owners);
        s.writes.push(...s.result.written, ...s.result.dist, ...s.result.removed);
        failpoint('files-written');
        // The release goes live last: every file that names it exists by now.
        if (await switchSymlink(p.layout.current, path.join('releases', r.id))) s.writes.push(p.layout.current);
        failpoint('current-switched');
        await writeManifestIfChanged(s, p.layout, owners);
        if (p.migrations.length) {
          // Settings migrations went in with canopsis.ini; the store ones run now, then all are recorded.
          if (p.migrations.some((m) => m.store)) {
            const store = await openStore(await readRuntimeConfig(p.layout.prefix));
            try {
              await migrateStore(store, p.migrations);
            } finally {
              await store.close();
            }
            failpoint('store-migrated');
          }
          await recordApplied(migrationsFile(p.layout), p.migrationState, p.migrations);
          s.writes.push(migrationsFile(p.layout));
        }
        // Under an updater, pruning waits for its commit: the release it would roll back to must stay.
        if (!s.lent) await pruneReleases(p.layout.releases, [r.id]);
        return `${s.writes.length} written`;
      },
    },
  ];
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
  return { opts, depsInstalled: [], warnings: [], accounts: [], writes: [] };
}
