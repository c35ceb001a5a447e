import type { Collection } from './types.js';

/*
 * Deleting what is past its retention in bounded batches: a backlog of a
 * million old documents is removed a batch at a time, oldest first, with
 * the event loop (and other writers of the store) served between batches,
 * and a bound on batches per call so that one call never runs for long.
 */

export interface Batches {
  /** Documents per delete. */
  size: number;
  /** Deletes per call; what is left is reported as `more`. */
  max: number;
}

export const PRUNE_BATCHES: Batches = { size: 500, max: 20 };

export interface Pruned {
  deleted: number;
  /** Some are left: the caller comes back for them. */
  more: boolean;
}

export const NOTHING_PRUNED: Pruned = { deleted: 0, more: false };

/** Deletes documents whose numeric `field` is below `before` (documents without it stay). `field` must be indexed. */
export async function pruneBefore(c: Collection<object>, field: string, before: number, batches: Batches = PRUNE_BATCHES): Promise<Pruned> {
  let deleted = 0;
  for (let i = 0; i < batches.max; i++) {
    if (i > 0) await new Promise((r) => setImmediate(r));
    const n = await c.delete({ [field]: { $lt: before } }, { sort: [[field, 1]], limit: batches.size });
    deleted += n;
    if (n < batches.size) return { deleted, more: false };
  }
  return { deleted, more: true };
}
