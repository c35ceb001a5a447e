import { type Batches, type Pruned, pruneBefore } from '../store/prune.js';
import type { Store } from '../store/types.js';
import { EVENT_LOG } from './builtin.js';

/*
 * event_log retention: entries go by their `timestamp` (the time of the
 * event they are about, unix seconds), indexed by the database dispatcher
 * and here. Run by axe's retention job (runtime/engines/axe.ts), once per
 * engine type, not in every process.
 */

export async function pruneEventLog(store: Store, before: number, batches?: Batches): Promise<Pruned> {
  const log = store.collection<Record<string, unknown>>(EVENT_LOG);
  await log.ensureIndex(['timestamp']);
  return pruneBefore(log, 'timestamp', before, batches);
}
