import { readFile, stat } from 'node:fs/promises';
import { writeAtomic } from '../apply/apply.js';
import type { Layout } from '../layout.js';
import { MIGRATIONS, type Migration, migrationsFile, newerThan, pending, readMigrationState, reversible } from './index.js';
import { type StoreRunner, storeRunner } from './store-jobs.js';

/*
 * The migrations of this release against a prefix: what is pending (an
 * updater asks the new release before it changes anything), and the undo to
 * an older version (a rolled-back update, a downgrade). The updater runs
 * these through the release's own installer, since only that release knows
 * its migrations.
 */

export interface PendingMigration {
  id: string;
  description: string;
  settings: boolean;
  store: boolean;
  reversible: boolean;
}

export async function pendingMigrations(layout: Layout, list: Migration[] = MIGRATIONS): Promise<PendingMigration[]> {
  return pending(list, await readMigrationState(migrationsFile(layout))).map((m) => ({
    id: m.id,
    description: m.description,
    settings: !!m.settings,
    store: !!m.store,
    reversible: reversible(m),
  }));
}

/**
 * Undoes every migration newer than `version`, newest first, whether or not
 * it is recorded: a run killed between a store migration and its record
 * still gets undone (the undos are idempotent). Returns the recorded ids it undid.
 */
export async function migrateDownTo(
  layout: Layout,
  version: string,
  list: Migration[] = MIGRATIONS,
  runner?: StoreRunner,
): Promise<string[]> {
  // A settings-only migration without an undo (an engine added to the chain) stays as it is, and recorded.
  const todo = newerThan(list, version).filter((m) => m.down);
  if (todo.length === 0) return [];
  const text = await readFile(layout.settingsFile, 'utf8').catch(() => undefined);
  if (text !== undefined) {
    const next = todo.reduce((t, m) => (m.down?.settings ? m.down.settings(t) : t), text);
    if (next !== text) {
      const st = await stat(layout.settingsFile);
      await writeAtomic(layout.settingsFile, next, st.mode & 0o777, { uid: st.uid, gid: st.gid });
    }
  }
  const down = todo.filter((m) => m.down?.store).map((m) => m.id);
  if (down.length) await (runner ?? (await storeRunner(layout, list)))({ op: 'down', ids: down });
  const file = migrationsFile(layout);
  const state = await readMigrationState(file);
  const undone = new Set(todo.map((m) => m.id));
  const recorded = Object.keys(state.applied).filter((id) => undone.has(id));
  if (recorded.length) {
    const applied = Object.fromEntries(Object.entries(state.applied).filter(([id]) => !undone.has(id)));
    await writeAtomic(file, `${JSON.stringify({ applied }, null, 2)}\n`, 0o644);
  }
  // What the operator is told was undone: what had been recorded as done (the rest was at most half-run).
  return todo.map((m) => m.id).filter((id) => recorded.includes(id));
}

/**
 * Runs again the store part of every migration newer than `version`, oldest
 * first: a failed downgrade puts the data back in this release's shape (its
 * settings come back with the snapshot). Store migrations are idempotent.
 */
export async function redoStoreAfter(
  layout: Layout,
  version: string,
  list: Migration[] = MIGRATIONS,
  runner?: StoreRunner,
): Promise<string[]> {
  const todo = newerThan(list, version)
    .reverse()
    .filter((m) => m.store);
  if (todo.length === 0) return [];
  await (runner ?? (await storeRunner(layout, list)))({ op: 'up', ids: todo.map((m) => m.id) });
  return todo.map((m) => m.id);
}
