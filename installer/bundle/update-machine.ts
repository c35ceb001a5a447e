import { refusedBeforeWriting } from '../../runtime/contract/exit-codes.js';
import { InstallerError, lastLines, UpdateFailed, UsageError } from '../errors.js';
import type { PendingMigration } from '../migrations/run.js';
import { PIPELINE, restartFor } from '../services/index.js';
import { type Timing, timed } from '../timing.js';
import { compareVersions } from './format.js';
import { INSTALL_SUMMARY, MIGRATIONS_DONE, MIGRATIONS_PENDING, releaseOutput } from './release-output.js';
import { type Journal, LENDING, type RollbackResult, rolledBack } from './transaction.js';

/*
 * An update of an installed appliance as one explicit state machine:
 *
 *   place ─► plan ─► snapshot ─► [stop] ─► [down] ─► install ─► [restart] ─► commit ─► done
 *                        │                   │          │           │
 *                        └─ journal written ─┴──────────┴───────────┴─► rollback ─► UpdateFailed
 *
 * place puts the new release beside the others (whole, by a rename); plan
 * asks it what it will migrate, refuses what cannot be undone, backs up
 * before store migrations; snapshot copies etc/, bin/ and the records and
 * writes the journal, the commit point of the start: from here a failure,
 * or a kill found by the next run, rolls back. stop halts what would write
 * while data changes shape; down has a newer release undo its migrations
 * for an older one; install runs the new release's installer (files,
 * `current`, migrations); restart restarts what reads a written file and
 * probes with an event (the same release again with nothing written:
 * nothing restarts); commit drops the journal.
 *
 * Every effect goes through UpdateEffects: the real ones run release
 * installers and services (lifecycle.ts), in-process tests use a temp tree.
 */

export interface ReleaseRef {
  version: string;
  release: string;
}

export interface RunResult {
  exitCode?: number;
  stdout: string;
  stderr: string;
  all?: string;
}

export interface UpdateEffects {
  /** The new release, placed whole beside the others. */
  place(): Promise<void>;
  /** `command` with the installer of `release` on this prefix, under this run's lock. */
  runRelease(release: ReleaseRef, command: string[]): Promise<RunResult>;
  /** Whether the stack runs now (refused when systemd runs it). */
  running(): Promise<boolean>;
  backup(todo: PendingMigration[]): Promise<void>;
  /** Snapshot, then the journal. */
  begin(journal: Journal): Promise<void>;
  commit(): Promise<void>;
  rollback(journal: Journal): Promise<RollbackResult>;
  stopPipeline(): Promise<void>;
  restartAndProbe(services: readonly string[]): Promise<string | undefined>;
  /** After the commit: old releases pruned, the postupdate hook. */
  finish(): Promise<void>;
  failpoint(name: string): void;
  log(line: string): void;
  now(): Date;
}

export interface UpdatePlan {
  from: ReleaseRef;
  to: ReleaseRef;
  allowIrreversible: boolean;
  /** Arguments for the new release's `install` (--set, --conffile-policy, ...). */
  passthrough: string[];
}

export type UpdateState = 'place' | 'plan' | 'snapshot' | 'stop' | 'down' | 'install' | 'restart' | 'commit' | 'rollback' | 'done';

/** What the states learn on the way. */
interface Run {
  todo: PendingMigration[];
  running: boolean;
  journal?: Journal;
  downgrade: boolean;
  /** The pipeline was stopped for the migrations. */
  stopped: boolean;
  written: string[];
  /** Why the update rolls back. */
  why?: string;
  /** The steps of the release installer's own run, as it reported them. */
  installTimings?: Timing[];
}

type Step = (p: UpdatePlan, fx: UpdateEffects, run: Run) => Promise<UpdateState>;

const tail = (r: RunResult) => `(exit ${r.exitCode}): ${lastLines(r.stderr)}`;

/** A release's answer read through its schema; an unreadable one is a failure of that step. */
function answer<T>(read: () => T, run: Run): T | undefined {
  try {
    return read();
  } catch (e) {
    run.why = (e as Error).message;
    return undefined;
  }
}

const STEPS: Record<Exclude<UpdateState, 'done'>, Step> = {
  place: async (_p, fx) => {
    await fx.place();
    return 'plan';
  },

  plan: async (p, fx, run) => {
    // The new release says what it will migrate here; data it cannot put back is refused before anything changes.
    if (compareVersions(p.to.version, LENDING) >= 0) {
      const asked = await fx.runRelease(p.to, ['migrate', '--json']);
      if (asked.exitCode !== 0)
        throw new InstallerError(`the installer of ${p.to.release} cannot list its migrations: ${(asked.all ?? asked.stderr).trim()}`);
      const { pending } = releaseOutput(MIGRATIONS_PENDING, asked.stdout, `the installer of ${p.to.release} (migrate --json)`);
      run.todo = pending.map((x) => ({ ...x, settings: !!x.settings }));
    }
    const oneWay = run.todo.filter((x) => !x.reversible);
    if (oneWay.length && !p.allowIrreversible) {
      throw new UsageError(
        `${p.to.version} reshapes stored data in a way a failed update cannot undo (${oneWay.map((x) => `${x.id}: ${x.description}`).join('; ')}); back up the store, then run again with --allow-irreversible`,
      );
    }
    if (run.todo.length) fx.log(`migrations to run: ${run.todo.map((x) => x.id).join(', ')}`);
    run.running = await fx.running();
    await fx.backup(run.todo);
    return 'snapshot';
  },

  snapshot: async (p, fx, run) => {
    run.journal = { op: 'update', from: p.from, to: p.to, running: run.running, started: fx.now().toISOString() };
    await fx.begin(run.journal);
    fx.failpoint('journal');
    // Only a release from LENDING on can undo its migrations for an older one.
    run.downgrade = compareVersions(p.to.version, p.from.version) < 0 && compareVersions(p.from.version, LENDING) >= 0;
    run.stopped = run.running && (run.downgrade || run.todo.some((x) => x.store));
    return run.stopped ? 'stop' : run.downgrade ? 'down' : 'install';
  },

  stop: async (_p, fx, run) => {
    // Engines of either version must not write while documents change shape.
    fx.log(`stopping ${PIPELINE.join(', ')} while stored data is migrated`);
    await fx.stopPipeline();
    return run.downgrade ? 'down' : 'install';
  },

  down: async (p, fx, run) => {
    const down = await fx.runRelease(p.from, ['migrate', '--down-to', p.to.version, '--json']);
    if (down.exitCode !== 0) {
      run.why = `undoing the migrations newer than ${p.to.version} failed: ${(down.all ?? down.stderr).trim()}`;
      return 'rollback';
    }
    const done = answer(() => releaseOutput(MIGRATIONS_DONE, down.stdout, `the installer of ${p.from.release} (migrate --down-to)`), run);
    if (!done) return 'rollback';
    if (done.undone?.length) fx.log(`migrations undone for ${p.to.version}: ${done.undone.join(', ')}`);
    return 'install';
  },

  install: async (p, fx, run) => {
    const r = await fx.runRelease(p.to, ['install', ...p.passthrough, '--json']);
    // Settings, preflight and validation refuse before the installer writes anything.
    if (refusedBeforeWriting(r.exitCode) && !run.downgrade) {
      await fx.commit();
      const problem = run.stopped ? await fx.restartAndProbe(PIPELINE) : undefined;
      throw new InstallerError(
        `the installer of ${p.to.version} refused ${tail(r)}; nothing was changed${run.stopped ? (problem ? `, and ${problem}` : '; the engines and the webserver run again') : ''}`,
      );
    }
    if (r.exitCode !== 0) {
      run.why = `its installer failed ${tail(r)}`;
      return 'rollback';
    }
    // Written files decide what restarts: an answer that cannot be read is a failed install.
    const summary = answer(() => releaseOutput(INSTALL_SUMMARY, r.stdout, `the installer of ${p.to.release} (install --json)`), run);
    if (!summary) return 'rollback';
    run.written = summary.writes;
    run.installTimings = summary.timings;
    fx.log(
      `${p.to.release}: ${summary.writes.length} files written${summary.dist.length ? `; your edits kept, new versions in ${summary.dist.join(', ')}` : ''}`,
    );
    return run.running ? 'restart' : 'commit';
  },

  restart: async (p, fx, run) => {
    // What was stopped for the migrations starts again whatever was written.
    const services = restartFor(run.written, p.to.release === p.from.release && !run.stopped ? 'same' : 'new');
    if (services.length === 0) {
      // The same release again and not a file written: every process already runs this code with these files.
      fx.log(`nothing to restart: ${p.to.release} runs already and no file changed`);
      return 'commit';
    }
    fx.log(`restarting ${services.join(', ')}`);
    const problem = await fx.restartAndProbe(services);
    if (!problem) return 'commit';
    run.why = `health check: ${problem}`;
    return 'rollback';
  },

  commit: async (_p, fx) => {
    fx.failpoint('healthy');
    await fx.commit();
    await fx.finish();
    return 'done';
  },

  rollback: async (p, fx, run) => {
    const journal = run.journal!;
    fx.log(`${run.why}; rolling back to ${p.from.version}`);
    const r = await fx.rollback(journal);
    await fx.commit();
    throw new UpdateFailed(`update to ${p.to.version} failed (${run.why}); ${rolledBack(journal, r)}`);
  },
};

const TITLES: Record<Exclude<UpdateState, 'done'>, string> = {
  place: 'Place the release',
  plan: 'Ask it what it migrates, back up',
  snapshot: 'Snapshot and journal',
  stop: 'Stop the engines and the webserver',
  down: 'Undo newer migrations',
  install: 'Run its installer',
  restart: 'Restart and probe',
  commit: 'Commit, prune, postupdate',
  rollback: 'Roll back',
};

/**
 * Runs the update to its end: done, or a typed error (refused, or rolled
 * back). Each state's time goes into `timings` (the installer's own steps
 * under its run), also when one throws.
 */
export async function runUpdate(p: UpdatePlan, fx: UpdateEffects, timings: Timing[] = []): Promise<void> {
  const run: Run = { todo: [], running: false, downgrade: false, stopped: false, written: [] };
  let state: UpdateState = 'place';
  while (state !== 'done') {
    const now: Exclude<UpdateState, 'done'> = state;
    state = await timed(timings, TITLES[now], async (parts) => {
      const next = await STEPS[now](p, fx, run);
      if (now === 'install') parts.push(...(run.installTimings ?? []));
      return next;
    });
  }
}
