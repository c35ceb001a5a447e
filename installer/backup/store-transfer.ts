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

/** The store of `prefix` (not created when it is an embedded one that does not exist yet). */
async function openSource(prefix: string): Promise<Store | undefined> {
  const cfg = await readRuntimeConfig(prefix);
  if (cfg.store.backend === 'postgresql') throw new Error(`the store of ${prefix} is PostgreSQL already`);
  if (cfg.store.backend === 'embedded' && !(await stat(cfg.store.file).catch(() => undefined))) return undefined;
  return openStore(cfg);
}

/** Copies every collection of the store of `prefix` into the empty PostgreSQL store at `url`, and counts both sides. */
export async function transferToPostgresql(prefix: string, url: string): Promise<TransferReport> {
  const { PgStore } = await import('../../runtime/store/postgresql.js');
  const target = await PgStore.connect(url);
  try {
    const occupied = await occupiedCollections(target);
    if (occupied.length) return { ok: false, occupied };
    const source = await openSource(prefix);
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
