import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { switchSymlink, writeAtomic } from '../apply/apply.js';
import { assertRootTree } from '../apply/dirs.js';
import { exists, filesUnder } from '../apply/fs.js';
import { lockLent, runBorrowing, withPrefixLock } from '../apply/lock.js';
import { checkReleaseId, RELEASE_ID, releaseDir } from '../apply/release-id.js';
import { readStateFile } from '../apply/state-file.js';
import { InstallerError } from '../errors.js';
import { failpoint } from '../failpoint.js';
import { execa } from '../host/exec.js';
import type { Layout } from '../layout.js';
import { restartFor } from '../services/index.js';
import { BUNDLE_WORK_PREFIX, compareVersions } from './format.js';
import { MIGRATIONS_DONE, releaseOutput } from './release-output.js';
import { restartAndProbe, stopPipeline } from './services.js';

/*
 * An update as a transaction. Before it changes anything, the updater copies
 * what the update may touch (etc/, bin/, the manifest and the migration
 * record) and then writes a journal naming the old and the new release: a
 * journal on disk always has a complete snapshot behind it. The update ends
 * by deleting the journal. A run that finds a journal (its updater was
 * killed, or its health check failed) rolls back: the new release undoes its
 * store migrations, the snapshot goes back byte for byte, `current` points at
 * the old release, and what was running runs the old code again. Every step
 * of the rollback can run twice, so a rollback killed half-way is finished by
 * the next run.
 */

const side = z.object({
  version: z.string().regex(/^\d+\.\d+\.\d+/),
  release: z.string().regex(RELEASE_ID, { error: 'expected a release id <version>+<8 hex digits>' }),
});
const journalSchema = z.object({
  op: z.literal('update'),
  from: side,
  to: side,
  /** Whether the stack ran when the update began (a rollback restarts it). */
  running: z.boolean(),
  started: z.string(),
});
export type Journal = z.infer<typeof journalSchema>;

/** The installer of an installed release (the id checked: it becomes a path root runs code from). */
export const releaseCli = (layout: Layout, id: string) =>
  path.join(layout.releases, checkReleaseId(id, 'release'), 'dist', 'installer', 'cli.js');

/** The first release whose installer runs under a lent lock and has `migrate`. */
export const LENDING = '0.3.0';

const SNAPSHOT_DIRS = ['etc', 'bin'];
const SNAPSHOT_FILES = ['manifest.json', 'migrations.json'];

const txnDir = (l: Layout) => path.join(l.pkgmgr, 'transaction');
const journalFile = (l: Layout) => path.join(txnDir(l), 'journal.json');

/**
 * The journal of an update in progress, or undefined when none is. One that
 * is not ours (unreadable, or naming a release outside releases/) stops the
 * run: rolling back to it would run whatever it names as root.
 */
export async function readJournal(layout: Layout): Promise<Journal | undefined> {
  const file = journalFile(layout);
  const hint = `; refused (nothing was rolled back). If no update of yours was interrupted, move ${txnDir(layout)} away and re-run`;
  const journal = await readStateFile(file, journalSchema, 'an update journal', hint);
  if (!journal) return undefined;
  for (const s of [journal.from, journal.to]) await releaseDir(layout, s.release, file);
  // A rollback copies the snapshot back over etc/ and bin/, which root then runs: all of it must be root's.
  await assertRootTree(
    txnDir(layout),
    `the update snapshot must be root's alone to be rolled back (one left by a release before 0.4.0, whose var/lib the service user could write, is not trusted)${hint}`,
  );
  return journal;
}

/** Snapshot, then the journal (written last, atomically: it is the commit point of begin). */
export async function begin(layout: Layout, journal: Journal): Promise<void> {
  const dir = txnDir(layout);
  await rm(dir, { recursive: true, force: true });
  await mkdir(path.join(dir, 'pkgmgr'), { recursive: true });
  // cp -a keeps owners and modes (secrets are 0640 root:<service group>).
  for (const d of SNAPSHOT_DIRS)
    if (await exists(path.join(layout.prefix, d))) await execa('cp', ['-a', path.join(layout.prefix, d), path.join(dir, d)]);
  for (const f of SNAPSHOT_FILES)
    if (await exists(path.join(layout.pkgmgr, f))) await execa('cp', ['-a', path.join(layout.pkgmgr, f), path.join(dir, 'pkgmgr', f)]);
  failpoint('snapshot');
  // On disk before the journal that vouches for it (a power cut must not leave a journal over empty copies).
  await execa('sync', ['-f', dir]);
  await writeAtomic(journalFile(layout), `${JSON.stringify(journal, null, 2)}\n`, 0o644);
  await syncDir(dir);
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** The update is done: without its journal, the snapshot is garbage. */
export async function commit(layout: Layout): Promise<void> {
  await rm(journalFile(layout), { force: true });
  await rm(txnDir(layout), { recursive: true, force: true });
}

/** Same bytes, mode, owner and mtime (a rollback leaves the tree exactly as it was). */
const same = async (a: string, b: string) => {
  const [x, y] = await Promise.all([readFile(a).catch(() => undefined), readFile(b).catch(() => undefined)]);
  if (x === undefined || y === undefined || !x.equals(y)) return false;
  const [sa, sb] = await Promise.all([stat(a), stat(b)]);
  return sa.mode === sb.mode && sa.uid === sb.uid && sa.gid === sb.gid && sa.mtimeMs === sb.mtimeMs;
};

/** Puts `from` back over `to` file by file (each a copy and a rename); returns what differed. */
async function restore(from: string, to: string, rel: string): Promise<string[]> {
  const changed: string[] = [];
  const want = await filesUnder(from);
  for (const f of want) {
    const src = path.join(from, f);
    const dst = path.join(to, f);
    if (await same(src, dst)) continue;
    const tmp = `${dst}.rollback`;
    await mkdir(path.dirname(dst), { recursive: true });
    await execa('cp', ['-a', src, tmp]);
    await rename(tmp, dst);
    changed.push(path.join(rel, f));
  }
  const keep = new Set(want);
  for (const f of await filesUnder(to)) {
    if (keep.has(f)) continue;
    await rm(path.join(to, f), { force: true });
    changed.push(path.join(rel, f));
  }
  return changed;
}

/** What a rollback does beyond files: the services and the store (in-process tests pass their own). */
export interface RollbackEffects {
  stopPipeline(): Promise<void>;
  restartAndProbe(services: readonly string[]): Promise<string | undefined>;
  /** `migrate ARGS --json` of a release that has it; the ids it reports. */
  migrate(release: { version: string; release: string }, args: string[]): Promise<string[]>;
}

export const realRollbackEffects = (layout: Layout): RollbackEffects => ({
  stopPipeline: () => stopPipeline(layout),
  restartAndProbe: (services) => restartAndProbe(layout, services),
  migrate: (release, args) => migrate(layout, release, args),
});

/** Runs `migrate` of a release (one that has it) under this run's lock; returns the ids it reports. */
async function migrate(layout: Layout, release: { version: string; release: string }, args: string[]): Promise<string[]> {
  const cli = releaseCli(layout, release.release);
  if (compareVersions(release.version, LENDING) < 0 || !(await exists(cli))) return [];
  const r = await runBorrowing(layout, cli, ['migrate', ...args, '--json']);
  if (r.exitCode !== 0) {
    throw new InstallerError(
      `cannot put the data of ${layout.prefix} back in the shape of the release it rolls back to (${r.all?.trim()}); the update journal stays in ${txnDir(layout)}: run build-install again once the store answers`,
    );
  }
  const out = releaseOutput(MIGRATIONS_DONE, r.stdout, `the installer of ${release.release} (migrate ${args.join(' ')})`);
  return out.undone ?? out.redone ?? [];
}

/** What a rollback did, in the words both a failed update and a recovery use. */
export function rolledBack(journal: Journal, r: RollbackResult): string {
  const undone = r.undone.length ? `, migrations undone: ${r.undone.join(', ')}` : '';
  const state = journal.running ? (r.problem ? `, which does not come up either: ${r.problem}` : ', running again') : '';
  return `rolled back to ${journal.from.version} (${journal.from.release})${undone}${state}`;
}

export interface RollbackResult {
  /** Files of the prefix the rollback changed back (relative). */
  changed: string[];
  /** Migrations the new release undid. */
  undone: string[];
  /** Why the old version does not come up again either, when it ran before and does not now. */
  problem?: string;
}

/**
 * Rolls an interrupted or failed update back to journal.from and, when the
 * stack ran, restarts what runs the old code or reads a restored file. The
 * journal stays: the caller commits the rollback.
 */
export async function rollback(
  layout: Layout,
  journal: Journal,
  opts: { restartAll?: boolean } = {},
  fx: RollbackEffects = realRollbackEffects(layout),
): Promise<RollbackResult> {
  const dir = txnDir(layout);
  // Nothing of the new version may write while the data goes back.
  if (journal.running) await fx.stopPipeline();
  // Only the new release knows its migrations; it is complete if it exists (it is renamed in whole).
  const undone = await fx.migrate(journal.to, ['--down-to', journal.from.version]);
  const changed: string[] = [];
  for (const d of SNAPSHOT_DIRS)
    if (await exists(path.join(dir, d))) changed.push(...(await restore(path.join(dir, d), path.join(layout.prefix, d), d)));
  for (const f of SNAPSHOT_FILES) {
    const snap = path.join(dir, 'pkgmgr', f);
    const live = path.join(layout.pkgmgr, f);
    if (await exists(snap)) {
      if (!(await same(snap, live))) {
        await execa('cp', ['-a', snap, `${live}.rollback`]);
        await rename(`${live}.rollback`, live);
      }
    } else {
      await rm(live, { force: true });
    }
  }
  failpoint('rollback-restored');
  // A failed downgrade: the newer release puts its data shape back.
  if (compareVersions(journal.from.version, journal.to.version) > 0) await fx.migrate(journal.from, ['--redo-after', journal.to.version]);
  await switchSymlink(layout.current, path.join('releases', journal.from.release));
  // A new release that never went live is of no use; one that did stays for a later try.
  await rm(path.join(layout.releases, `.${journal.to.release}.partial`), { recursive: true, force: true });
  // A rollback resumed after a kill cannot know what the first attempt already put back: every service restarts.
  const reread = opts.restartAll ? (await filesUnder(layout.etc)).map((f) => path.join('etc', f)) : changed;
  const problem = journal.running ? await fx.restartAndProbe(restartFor(reread)) : undefined;
  return { changed, undone, problem };
}

/** Ends what a killed run left: a half-placed release goes, an update in progress is rolled back. Holds the lock. */
export async function recoverInterrupted(
  layout: Layout,
  log: (line: string) => void,
  fx: RollbackEffects = realRollbackEffects(layout),
): Promise<string | undefined> {
  await removePartials(layout);
  const journal = await readJournal(layout);
  if (!journal) {
    // A snapshot without its journal: the run died before the update began.
    await rm(txnDir(layout), { recursive: true, force: true });
    return undefined;
  }
  log(
    `an update from ${journal.from.version} to ${journal.to.version} begun ${journal.started} did not finish: rolling back to ${journal.from.version}`,
  );
  const r = await rollback(layout, journal, { restartAll: true }, fx);
  await commit(layout);
  const line = rolledBack(journal, r);
  log(line);
  return line;
}

/** Leftovers of an interrupted run: a half-placed release, a bundle being extracted (lifecycle.ts opens bundles in releases/). */
async function removePartials(layout: Layout): Promise<void> {
  for (const e of await readdir(layout.releases).catch(() => [] as string[])) {
    if (e.startsWith('.') && (e.endsWith('.partial') || e.startsWith(BUNDLE_WORK_PREFIX)))
      await rm(path.join(layout.releases, e), { recursive: true, force: true });
  }
}

/** For commands that do not otherwise lock early (a plain install): repairs under the lock, if there is anything to repair. */
export async function repairPrefix(layout: Layout, log: (line: string) => void): Promise<void> {
  // Under an updater (whose journal is there while it runs us): its to repair. Asked first: reading a journal checks its whole snapshot.
  if ((await lockLent(layout)) || !(await readJournal(layout))) return;
  await withPrefixLock(layout, () => recoverInterrupted(layout, log));
}
