import type { Store } from '../store/types.js';
import {
  DEFAULT_REASON,
  DEFAULT_TYPES,
  type Exception,
  PBEHAVIOR_EXCEPTIONS,
  PBEHAVIOR_REASONS,
  PBEHAVIOR_TYPES,
  PBEHAVIORS,
  type PBehavior,
  type PbhType,
  type Reason,
} from './model.js';
import type { Identified, Models } from './resolve.js';

/*
 * The pbehavior documents as the engine and the API read them: Canopsis'
 * default types and reason are put in place once (they are data an
 * operator may edit, as in Canopsis), then everything is loaded at once —
 * pbehaviors are few, entities many.
 */

export interface Loaded extends Models {
  pbehaviors: Array<Identified<PBehavior>>;
}

/** The default types and reason, each written only when absent. */
export async function ensureDefaults(store: Store): Promise<void> {
  const types = store.collection<PbhType>(PBEHAVIOR_TYPES);
  for (const t of DEFAULT_TYPES) await types.modify(t.id, (cur) => (cur ? undefined : t.doc));
  await store.collection<Reason>(PBEHAVIOR_REASONS).modify(DEFAULT_REASON.id, (cur) => (cur ? undefined : DEFAULT_REASON.doc));
}

export async function loadPbehaviors(store: Store): Promise<Loaded> {
  await ensureDefaults(store);
  const byKey = <T extends object>(docs: Array<T & { key: string }>) => new Map(docs.map(({ key, ...d }) => [key, d as unknown as T]));
  const [pbehaviors, types, reasons, exceptions] = await Promise.all([
    store.collection<PBehavior>(PBEHAVIORS).find({ enabled: true }),
    store.collection<PbhType>(PBEHAVIOR_TYPES).find(),
    store.collection<Reason>(PBEHAVIOR_REASONS).find(),
    store.collection<Exception>(PBEHAVIOR_EXCEPTIONS).find(),
  ]);
  return { pbehaviors, types: byKey<PbhType>(types), reasons: byKey<Reason>(reasons), exceptions: byKey<Exception>(exceptions) };
}
