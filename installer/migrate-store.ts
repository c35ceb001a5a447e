import { readFile } from 'node:fs/promises';
import { readRuntimeConfig } from '../runtime/config/runtime.js';
import type { PgStore } from '../runtime/store/postgresql.js';
import type { Store } from '../runtime/store/types.js';
import { runBorrowing, withPrefixLock } from './apply/lock.js';
import { readManifest } from './apply/manifest.js';
import { startAndProbe, systemdRuns } from './backup/restore.js';
import { transferStore } from './backup/store-copy.js';
import { occupiedCollections, type TransferredCollection } from './backup/store-transfer.js';
import { INSTALL_SUMMARY, releaseOutput } from './bundle/release-output.js';
import { stopPipeline } from './bundle/services.js';
import { recoverInterrupted, releaseCli } from './bundle/transaction.js';
import { Supervisor } from './control/supervisor.js';
import { ApplyError, InstallerError, lastLines, StartError, UsageError } from './errors.js';
import { type Layout, layoutOf } from './layout.js';
import { PIPELINE, restartFor } from './services/index.js';
import { parseIni } from './settings/ini-text.js';

/*
 * ./build-install migrate-store --to postgresql, under the prefix lock:
 * 1. refusals first, with nothing stopped: the prefix on PostgreSQL
 *    already, no [store] postgresql_url in etc/canopsis-secrets.ini, a
 *    store.postgresql_mode of local (this host's own server is only set up
 *    once it is the backend), a target that does not answer or already holds
 *    documents (named);
 * 2. what opens the store stopped (the engines and the webserver), as
 *    restore does;
 * 3. every collection copied by the service user (backup/store-transfer.ts),
 *    then counted again on the target by this process: each count must be
 *    the source's;
 * 4. store.backend = postgresql set the way --set sets it (the line edited,
 *    comments kept) by the installed release's installer, which renders
 *    every file from it (install, without --start);
 * 5. what was running started again, and proven with a probe event.
 * Until step 4 succeeds the prefix stays on its store, unchanged; what the
 * copy wrote into PostgreSQL is removed again, so that a second run can go.
 */

export interface MigrateOptions {
  to: 'postgresql';
  log: (line: string) => void;
}

export interface MigrateResult {
  from: string;
  /** host:port/database of the new store (never its credentials). */
  target: string;
  collections: TransferredCollection[];
  restarted: string[];
}

/** The PostgreSQL URL of the secrets file: root's, which the service user may read but not write. */
async function targetUrl(layout: Layout): Promise<string> {
  const text = await readFile(layout.secretsFile, 'utf8').catch(() => '');
  const url = parseIni(text).get('store')?.postgresql_url;
  if (!url)
    throw new UsageError(
      `no [store] postgresql_url in ${layout.secretsFile}: set the server to copy into first (./build-install --set store.postgresql_url=postgresql://USER:PASSWORD@HOST:5432/DATABASE --set store.postgresql_mode=remote)`,
    );
  return url;
}

/** Refuses store.postgresql_mode = local: that server is set up by the install that makes PostgreSQL the backend, so nothing would answer yet. */
async function refuseLocalMode(layout: Layout): Promise<void> {
  const text = await readFile(layout.settingsFile, 'utf8').catch(() => '');
  const mode = parseIni(text).get('store')?.postgresql_mode || 'local';
  if (mode === 'local')
    throw new UsageError(
      `${layout.settingsFile}: store.postgresql_mode is local (the default): the appliance's own PostgreSQL is only set up once it is the backend, so there is no server to copy into yet. Copy into a running server: set store.postgresql_mode = remote and [store] postgresql_url to it, then run migrate-store again`,
    );
}

/** Deletes the documents of `names` in the target (they were copied by a run that did not switch). */
async function emptyTarget(target: Store, names: string[], log: (l: string) => void): Promise<void> {
  try {
    for (const name of names) await target.collection(name).delete({});
  } catch (e) {
    log(`warning: the copy left in PostgreSQL could not be removed (${(e as Error).message}): empty those collections before trying again`);
  }
}

/** Counts each copied collection on the target, from this process: the copy's own report is the service user's word. */
async function verify(target: Store, copied: TransferredCollection[]): Promise<string[]> {
  const wrong: string[] = [];
  for (const c of copied) {
    const n = await target.collection(c.name).count();
    if (n !== c.source || c.target !== c.source) wrong.push(`${c.name}: ${c.source} in the store, ${n} in PostgreSQL`);
  }
  return wrong;
}

export async function migrateStore(prefix: string, o: MigrateOptions): Promise<MigrateResult> {
  const layout = layoutOf(prefix);
  return withPrefixLock(layout, async () => {
    await recoverInterrupted(layout, o.log);
    const installed = await readManifest(layout.manifest);
    if (!installed) throw new UsageError(`nothing installed in ${layout.prefix}: install first (./build-install install)`);
    const cfg = await readRuntimeConfig(layout.prefix);
    if (cfg.store.backend === 'postgresql') throw new UsageError(`${layout.prefix} keeps its store in PostgreSQL already`);
    await refuseLocalMode(layout);
    const url = await targetUrl(layout);
    let target: PgStore;
    try {
      // Loaded here: only this command needs the driver.
      target = await (await import('../runtime/store/postgresql.js')).PgStore.connect(url);
    } catch (e) {
      throw new InstallerError(`the PostgreSQL store of [store] postgresql_url does not answer: ${(e as Error).message}; nothing changed`);
    }
    try {
      const occupied = await occupiedCollections(target);
      if (occupied.length)
        throw new UsageError(
          `the PostgreSQL store at ${target.where} already holds documents in ${occupied.map((c) => `${c.name} (${c.count})`).join(', ')}: migrate-store copies into an empty store only; nothing changed`,
        );
      if (await systemdRuns())
        throw new UsageError(
          'the stack runs under systemd (canopsis.target is active): stop it (systemctl stop canopsis.target), migrate the store, then start it again',
        );
      const running = await new Supervisor(layout.prefix).running();
      if (running) {
        o.log(`stopping ${PIPELINE.join(', ')} while the store is copied`);
        await stopPipeline(layout);
      }
      let restarted: string[] = [];
      let switched = false;
      let copied: TransferredCollection[] = [];
      let failure: unknown;
      try {
        o.log(`copying the ${cfg.store.backend} store into PostgreSQL at ${target.where}`);
        const report = await transferStore(layout, url, [installed.release]);
        if (!report.ok)
          throw new UsageError(
            `the PostgreSQL store at ${target.where} holds documents in ${report.occupied.map((c) => c.name).join(', ')}: nothing was copied`,
          );
        copied = report.collections;
        for (const c of copied) o.log(`  ${c.name}: ${c.source} documents, ${c.target} in PostgreSQL`);
        const wrong = await verify(target, copied);
        if (wrong.length) throw new InstallerError(`the copy does not match: ${wrong.join('; ')}`);
        o.log(`setting store.backend = postgresql and rendering with the installer of ${installed.release}`);
        const r = await runBorrowing(layout, releaseCli(layout, installed.release), [
          'install',
          '--json',
          '--set',
          'store.backend=postgresql',
        ]);
        switched = (await readRuntimeConfig(layout.prefix)).store.backend === 'postgresql';
        if (r.exitCode !== 0)
          throw new ApplyError(
            `the installer of ${installed.release} did not switch to PostgreSQL (exit ${r.exitCode}): ${lastLines(r.stderr)}`,
          );
        const summary = releaseOutput(INSTALL_SUMMARY, r.stdout, `the installer of ${installed.release} (install --json)`);
        restarted = [...new Set([...PIPELINE, ...restartFor(summary.writes)])];
      } catch (e) {
        failure = e;
        if (!switched) {
          await emptyTarget(
            target,
            copied.map((c) => c.name),
            o.log,
          );
          if (e instanceof InstallerError) e.message = `${e.message}; ${layout.prefix} stays on its ${cfg.store.backend} store`;
        }
      }
      // What ran before runs again, on whichever store the prefix is on now.
      const problem = running ? await startAndProbe(layout, restarted.length ? restarted : [...PIPELINE], o.log) : undefined;
      if (failure) {
        if (problem) o.log(`warning: ${problem}`);
        throw failure;
      }
      if (problem) throw new StartError(`the store is now PostgreSQL, but the stack does not come up: ${problem}`);
      return { from: cfg.store.backend, target: target.where, collections: copied, restarted: running ? restarted : [] };
    } finally {
      await target.close();
    }
  });
}
