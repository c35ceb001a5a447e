import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { readRuntimeConfig } from '../runtime/config/runtime.js';
import type { PgStore } from '../runtime/store/postgresql.js';
import type { Store } from '../runtime/store/types.js';
import { writeAtomic } from './apply/apply.js';
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
import { execa } from './host/exec.js';
import { type Layout, layoutOf } from './layout.js';
import { PIPELINE, restartFor } from './services/index.js';
import { parseIni, setIniValue } from './settings/ini-text.js';
import { parseSetOption } from './settings/load.js';
import { ROLES } from './settings/schema.js';

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
 *
 * With store.postgresql_mode = local (the store role runs PostgreSQL on this
 * host), that server only exists once it is the backend, so the order turns
 * (migrateToLocal): refusals; the pipeline stopped; store.backend =
 * postgresql rendered by the release's installer (initdb, the generated
 * [store] postgresql_url); the postgresql service started and waited for;
 * the embedded store file copied (named to the copy: runtime.conf names the
 * target by then) and counted; what ran before started again and probed.
 * On any failure after the switch: the postgresql service stopped,
 * canopsis.ini put back as it was and rendered again by the installer
 * (runtime.conf on the embedded store again), what was copied removed; the
 * data directory and the generated URL stay for the next run.
 */

export interface MigrateOptions {
  to: 'postgresql';
  log: (line: string) => void;
  /** --set section.key=value: [store] settings applied with the switch (store.postgresql_mode=local, store.postgresql_port=...). */
  sets?: string[];
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

/** canopsis.ini as it is, and the [store] mode and roles it gives with `sets` applied (the way --set applies them). */
async function plannedSettings(layout: Layout, sets: string[]): Promise<{ text: string; mode: string; roles: string[] }> {
  const text = await readFile(layout.settingsFile, 'utf8');
  let planned = text;
  for (const option of sets) {
    const s = parseSetOption(option);
    if (s.section !== 'store' || s.key === 'backend' || s.key.endsWith('_url'))
      throw new UsageError(
        `--set ${option}: migrate-store takes [store] settings of canopsis.ini only (store.postgresql_mode, store.postgresql_port, ...); store.backend is what it sets, and a URL is set with ./build-install install --set first`,
      );
    planned = setIniValue(planned, s.section, s.key, s.value);
  }
  const ini = parseIni(planned);
  const mode = ini.get('store')?.postgresql_mode || 'local';
  const roles = (ini.get('canopsis')?.roles || ROLES.join(','))
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean);
  return { text, mode, roles };
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
    const sets = o.sets ?? [];
    const planned = await plannedSettings(layout, sets);
    if (planned.mode === 'local') return migrateToLocal(layout, installed.release, cfg.store, planned, sets, o);
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
          ...sets.flatMap((x) => ['--set', x]),
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

/** PREFIX/bin/service NAME ACTION (start waits until the service answers: for postgresql, the store of runtime.conf). */
const service = (layout: Layout, name: string, action: string) =>
  execa(path.join(layout.bin, 'service'), [name, action], { env: { CPS_PREFIX: layout.prefix }, reject: false, all: true });

/**
 * Back on the embedded store after a failed switch to the local PostgreSQL: the postgresql service
 * stopped (supervisord too when this run started it), canopsis.ini as it was and every file
 * rendered again from it by the release's installer. What went wrong on the way back, if anything.
 */
async function switchBack(layout: Layout, release: string, iniBefore: string, supervisordRan: boolean, log: (l: string) => void) {
  const problems: string[] = [];
  const sup = new Supervisor(layout.prefix);
  if (await sup.running()) {
    const stop = await service(layout, 'postgresql', 'stop');
    if (stop.exitCode !== 0) problems.push(`service postgresql stop: ${lastLines(String(stop.all ?? ''))}`);
  }
  log(`back on the embedded store: canopsis.ini as it was, rendered with the installer of ${release}`);
  if ((await readFile(layout.settingsFile, 'utf8').catch(() => undefined)) !== iniBefore) {
    // As a settings migration puts it back: written aside and renamed, its mode and owner kept.
    const st = await stat(layout.settingsFile);
    await writeAtomic(layout.settingsFile, iniBefore, st.mode & 0o777, { uid: st.uid, gid: st.gid });
  }
  const r = await runBorrowing(layout, releaseCli(layout, release), ['install', '--json']);
  if (r.exitCode !== 0) problems.push(`the installer of ${release} (exit ${r.exitCode}): ${lastLines(r.stderr)}`);
  else if ((await readRuntimeConfig(layout.prefix)).store.backend !== 'embedded')
    problems.push('runtime.conf does not name the embedded store');
  if (await sup.running()) {
    if (supervisordRan) {
      // The program of the postgresql service is gone from the files: supervisord forgets it.
      await sup.ctl('reread');
      await sup.ctl('update', 'postgresql');
    } else await sup.shutdown();
  }
  return problems.length ? problems.join('; ') : undefined;
}

/** migrate-store into this host's own PostgreSQL (store.postgresql_mode = local): see the comment at the top. */
async function migrateToLocal(
  layout: Layout,
  release: string,
  source: Awaited<ReturnType<typeof readRuntimeConfig>>['store'],
  planned: { text: string; roles: string[] },
  sets: string[],
  o: MigrateOptions,
): Promise<MigrateResult> {
  if (!planned.roles.includes('store'))
    throw new UsageError(
      `store.postgresql_mode = local runs PostgreSQL on the host with the store role, and the roles of ${layout.prefix} are ${planned.roles.join(',')}: copy into the store host's server instead (--set store.postgresql_mode=remote, [store] postgresql_url set to it); nothing changed`,
    );
  if (source.backend !== 'embedded')
    throw new UsageError(
      `${layout.prefix} keeps its store in ${source.backend}: migrate-store into this host's own PostgreSQL copies the embedded store only; nothing changed`,
    );
  if (await systemdRuns())
    throw new UsageError(
      'the stack runs under systemd (canopsis.target is active): stop it (systemctl stop canopsis.target), migrate the store, then start it again',
    );
  const sup = new Supervisor(layout.prefix);
  const running = await sup.running();
  if (running) {
    o.log(`stopping ${PIPELINE.join(', ')} while the store is copied`);
    await stopPipeline(layout);
  }
  let target: PgStore | undefined;
  let copied: TransferredCollection[] = [];
  let restarted: string[] = [];
  let where = '';
  let failure: unknown;
  try {
    o.log(`setting store.backend = postgresql (this host's own server) and rendering with the installer of ${release}`);
    const r = await runBorrowing(layout, releaseCli(layout, release), [
      'install',
      '--json',
      '--set',
      'store.backend=postgresql',
      ...sets.flatMap((x) => ['--set', x]),
    ]);
    if (r.exitCode !== 0)
      throw new ApplyError(`the installer of ${release} did not switch to PostgreSQL (exit ${r.exitCode}): ${lastLines(r.stderr)}`);
    const summary = releaseOutput(INSTALL_SUMMARY, r.stdout, `the installer of ${release} (install --json)`);
    const cfg = await readRuntimeConfig(layout.prefix);
    if (cfg.store.backend !== 'postgresql') throw new ApplyError(`the installer of ${release} left runtime.conf on ${cfg.store.backend}`);
    o.log('starting PostgreSQL (service postgresql start)');
    const start = await service(layout, 'postgresql', 'start');
    if (start.exitCode !== 0) throw new StartError(`this host's PostgreSQL does not come up: ${lastLines(String(start.all ?? ''))}`);
    const { PgStore } = await import('../runtime/store/postgresql.js');
    target = await PgStore.connect(cfg.store.url);
    where = target.where;
    const occupied = await occupiedCollections(target);
    if (occupied.length)
      throw new UsageError(
        `this host's PostgreSQL at ${where} already holds documents in ${occupied.map((c) => `${c.name} (${c.count})`).join(', ')}: migrate-store copies into an empty store only`,
      );
    o.log(`copying the embedded store into PostgreSQL at ${where}`);
    const report = await transferStore(layout, cfg.store.url, [release], source.file);
    if (!report.ok)
      throw new UsageError(
        `the PostgreSQL store at ${where} holds documents in ${report.occupied.map((c) => c.name).join(', ')}: nothing was copied`,
      );
    copied = report.collections;
    for (const c of copied) o.log(`  ${c.name}: ${c.source} documents, ${c.target} in PostgreSQL`);
    const wrong = await verify(target, copied);
    if (wrong.length) throw new InstallerError(`the copy does not match: ${wrong.join('; ')}`);
    // postgresql runs its new files already: started above.
    restarted = [...new Set([...PIPELINE, ...restartFor(summary.writes)])].filter((n) => n !== 'postgresql');
  } catch (e) {
    failure = e;
  }
  if (failure) {
    if (target)
      await emptyTarget(
        target,
        copied.map((c) => c.name),
        o.log,
      );
    await target?.close();
    const problem = await switchBack(layout, release, planned.text, running, o.log).catch((e: Error) => e.message);
    if (problem) {
      o.log(`warning: switching back failed: ${problem}`);
      if (failure instanceof Error)
        failure.message = `${failure.message}; switching back to the embedded store failed as well (${problem}): look at etc/canopsis.ini and etc/runtime.conf`;
    } else if (failure instanceof Error) failure.message = `${failure.message}; ${layout.prefix} stays on its embedded store`;
    const down = running ? await startAndProbe(layout, [...PIPELINE], o.log) : undefined;
    if (down) o.log(`warning: ${down}`);
    throw failure;
  }
  await target?.close();
  const problem = running ? await startAndProbe(layout, restarted, o.log) : undefined;
  if (problem) throw new StartError(`the store is now this host's PostgreSQL, but the stack does not come up: ${problem}`);
  if (!running) o.log('PostgreSQL runs under supervisord; start the rest with bin/hypcontrol start');
  return { from: source.backend, target: where, collections: copied, restarted: running ? restarted : [] };
}
