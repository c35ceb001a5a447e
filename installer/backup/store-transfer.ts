import { stat } from 'node:fs/promises';
import { openStore, readRuntimeConfig } from '../../runtime/config/runtime.js';
import type { Store } from '../../runtime/store/types.js';

/*
 * The whole store of a prefix copied into a PostgreSQL store, collection by
 * collection, done by the service user (a child of the installed release,
 * see store-copy.ts): it opens the embedded store's file, which root never
 * does. The copy goes only into a store that holds no document, and what it
 * wrote is removed again when it fails part way: the target is then as it
 * was, and the copy can simply be run again.
 */

export interface TransferredCollection {
  name: string;
  /** Documents in the source collection (the engines are stopped: it does not change). */
  source: number;
  /** Documents in the target collection once copied. */
  target: number;
}

export type TransferReport =
  | { ok: true; collections: TransferredCollection[] }
  /** The target holds documents already: nothing was copied. */
  | { ok: false; occupied: Array<{ name: string; count: number }> };

/** Documents read and written per round. */
const PAGE = 500;

/** Collections of the target that hold documents, with how many. */
export async function occupiedCollections(target: Store): Promise<Array<{ name: string; count: number }>> {
  const out: Array<{ name: string; count: number }> = [];
  for (const name of await target.collections()) {
    const count = await target.collection(name).count();
    if (count > 0) out.push({ name, count });
  }
  return out;
}

/** Every document of one collection, in key order, a page at a time. */
async function copyCollection(source: Store, target: Store, name: string): Promise<void> {
  const from = source.collection<Record<string, unknown>>(name);
  const to = target.collection<Record<string, unknown>>(name);
  let after: string | undefined;
  for (;;) {
    const page = await from.find({}, { sort: [['key', 1]], limit: PAGE, ...(after === undefined ? {} : { after: [after] }) });
    if (page.length === 0) return;
    await Promise.all(page.map((d) => to.put(d.key, d)));
    after = page.at(-1)!.key;
  }
}

/**
 * The store of `prefix` (not created when it is an embedded one that does not exist yet), or the
 * embedded store file `file` when given: migrate-store to the host's own PostgreSQL renders that
 * one as the backend first (it is set up by the install), so runtime.conf names the target then.
 */
async function openSource(prefix: string, file?: string): Promise<Store | undefined> {
  if (file !== undefined) {
    if (!(await stat(file).catch(() => undefined))) return undefined;
    const { SqliteStore } = await import('../../runtime/store/sqlite.js');
    return new SqliteStore(file);
  }
  const cfg = await readRuntimeConfig(prefix);
  if (cfg.store.backend === 'postgresql') throw new Error(`the store of ${prefix} is PostgreSQL already`);
  if (cfg.store.backend === 'embedded' && !(await stat(cfg.store.file).catch(() => undefined))) return undefined;
  return openStore(cfg);
}

/**
 * Copies every collection of the store of `prefix` (or of the embedded store file `sourceFile`)
 * into the empty PostgreSQL store at `url`, and counts both sides.
 */
export async function transferToPostgresql(prefix: string, url: string, sourceFile?: string): Promise<TransferReport> {
  const { PgStore } = await import('../../runtime/store/postgresql.js');
  const target = await PgStore.connect(url);
  try {
    const occupied = await occupiedCollections(target);
    if (occupied.length) return { ok: false, occupied };
    const source = await openSource(prefix, sourceFile);
    const names = (await source?.collections()) ?? [];
    try {
      const collections: TransferredCollection[] = [];
      for (const name of names) {
        await copyCollection(source!, target, name);
        collections.push({ name, source: await source!.collection(name).count(), target: await target.collection(name).count() });
      }
      return { ok: true, collections };
    } catch (e) {
      // What was copied goes again (the target held nothing before): a second run starts from an empty store.
      for (const name of names)
        await target
          .collection(name)
          .delete({})
          .catch(() => undefined);
      throw e;
    } finally {
      await source?.close();
    }
  } finally {
    await target.close();
  }
}
