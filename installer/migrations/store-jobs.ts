import { access, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { RuntimeConfig } from '../../runtime/config/runtime.js';
import { nodeFor } from '../apply/runtime.js';
import { InstallerError, lastLines } from '../errors.js';
import { execa } from '../host/exec.js';
import { lookupIds } from '../host/users.js';
import type { Layout } from '../layout.js';
import { parseIni } from '../settings/ini-text.js';
import { sectionDefaults } from '../settings/schema.js';
import { SOURCE_ROOT } from '../source-root.js';
import type { Migration } from './index.js';

/*
 * Store work of the installer (migrations up and down) as a job handed to a
 * runner. As root the runner is a child process of the release, running as
 * the service user: root never opens the store, so nothing it could create
 * there (the SQLite file, its -wal and -shm) ends up root's and unwritable
 * by the engines. Tests and non-root installs run the same job in-process.
 */

export interface StoreJob {
  op: 'up' | 'down';
  /** Migration ids, in the order to run them. */
  ids: string[];
  /** Run nothing when the store holds no entity and no alarm (a first install): there is nothing to reshape. */
  skipWhenEmpty?: boolean;
}

export interface StoreJobResult {
  ran: string[];
  /** The store was empty and skipWhenEmpty held: nothing ran. */
  empty: boolean;
}

export type StoreRunner = (job: StoreJob) => Promise<StoreJobResult>;

const resultSchema = z.object({ ran: z.array(z.string()), empty: z.boolean() });

/** Whether the store holds nothing a migration could reshape; a missing SQLite file is not created to find out. */
/** The store's code, loaded by the process that opens the store (the service user's child as root), not by every installer run. */
async function storeCode() {
  const [{ openStore, readRuntimeConfig }, { ALARMS }, { ENTITIES }] = await Promise.all([
    import('../../runtime/config/runtime.js'),
    import('../../runtime/engines/axe.js'),
    import('../../runtime/engines/che.js'),
  ]);
  return { openStore, readRuntimeConfig, ALARMS, ENTITIES };
}

async function storeEmpty(cfg: RuntimeConfig): Promise<boolean> {
  const { openStore, ALARMS, ENTITIES } = await storeCode();
  if (cfg.store.backend === 'embedded') {
    const st = await stat(cfg.store.file).catch(() => undefined);
    if (!st || st.size === 0) return true;
  }
  const store = await openStore(cfg);
  try {
    for (const name of [ENTITIES, ALARMS]) if ((await store.collection(name).count()) > 0) return false;
    return true;
  } finally {
    await store.close();
  }
}

/** Runs a job here, with `list` the migrations it may name. */
export function inProcess(prefix: string, list: Migration[]): StoreRunner {
  return async (job) => {
    const todo = job.ids.map((id) => {
      const m = list.find((x) => x.id === id);
      if (!m) throw new InstallerError(`unknown migration ${id} (this release knows ${list.map((x) => x.id).join(', ')})`);
      return m;
    });
    const { openStore, readRuntimeConfig } = await storeCode();
    const cfg = await readRuntimeConfig(prefix);
    if (job.skipWhenEmpty && (await storeEmpty(cfg))) return { ran: [], empty: true };
    const steps = todo.map((m) => ({ id: m.id, fn: job.op === 'up' ? m.store : m.down?.store })).filter((s) => s.fn);
    if (steps.length === 0) return { ran: [], empty: false };
    const store = await openStore(cfg);
    try {
      for (const s of steps) await s.fn!(store);
    } finally {
      await store.close();
    }
    return { ran: steps.map((s) => s.id), empty: false };
  };
}

/** The service account named in canopsis.ini (root-owned), with the defaults a root install uses. */
export async function serviceAccount(layout: Layout): Promise<{ user: string; group: string }> {
  const text = await readFile(layout.settingsFile, 'utf8').catch(() => '');
  const d = sectionDefaults({ root: true, user: 'root', group: 'root' }).canopsis;
  const c = parseIni(text).get('canopsis') ?? {};
  return { user: c.user || d.user!, group: c.group || d.group! };
}

const TASK = path.join('dist', 'installer', 'migrations', 'store-task.js');

/**
 * The store-task script of the code running now, as the service user can
 * reach it: this release when it runs from the prefix, else the same
 * release installed there (a checkout may sit where the service user cannot
 * read, such as /root).
 */
export async function taskScript(layout: Layout, releaseId?: string): Promise<string> {
  const here = path.relative(layout.releases, SOURCE_ROOT);
  if (!here.startsWith('..') && !path.isAbsolute(here)) return path.join(SOURCE_ROOT, TASK);
  const { describeRelease } = await import('../apply/release.js');
  const id = releaseId ?? (await describeRelease()).id;
  const script = path.join(layout.releases, id, TASK);
  try {
    await access(script);
  } catch {
    throw new InstallerError(
      `the store work must run from an installed release, and ${id} is not in ${layout.releases}: run ./build-install install first`,
    );
  }
  return script;
}

/** Runs a job in a child process of the release as the service user. */
export function asServiceUser(layout: Layout, script: string, ids: { uid: number; gid: number; name: string }): StoreRunner {
  return async (job) => {
    // The release's own Node (script is <release>/dist/installer/migrations/store-task.js): the installer's may sit where the service user cannot reach.
    const r = await execa(await nodeFor(path.resolve(script, '..', '..', '..', '..')), [script, JSON.stringify(job)], {
      env: { CPS_PREFIX: layout.prefix, HOME: layout.prefix },
      extendEnv: false,
      uid: ids.uid,
      gid: ids.gid,
      cwd: layout.prefix,
      reject: false,
      all: true,
    });
    if (r.exitCode !== 0) throw new InstallerError(`store work as ${ids.name} failed (exit ${r.exitCode}): ${lastLines(r.all)}`);
    let answer: unknown;
    try {
      answer = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? 'null');
    } catch {
      answer = undefined;
    }
    const parsed = resultSchema.safeParse(answer);
    // Only ids it was given are believed (the child runs as a user other processes of the same user can reach).
    if (!parsed.success || parsed.data.ran.some((id) => !job.ids.includes(id)))
      throw new InstallerError(`store work as ${ids.name} answered something unexpected: ${r.stdout.slice(0, 200)}`);
    return parsed.data;
  };
}

/** The runner an installer command uses on `layout`: the service user's child as root, in-process otherwise. */
export async function storeRunner(layout: Layout, list: Migration[], releaseId?: string): Promise<StoreRunner> {
  if (process.getuid?.() !== 0) return inProcess(layout.prefix, list);
  const account = await serviceAccount(layout);
  if (account.user === 'root') return inProcess(layout.prefix, list);
  const ids = await lookupIds(account.user, account.group);
  if (!ids) throw new InstallerError(`service account ${account.user}:${account.group} missing: run ./build-install install to create it`);
  return asServiceUser(layout, await taskScript(layout, releaseId), ids);
}
