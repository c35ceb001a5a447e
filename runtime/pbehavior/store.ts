import { type DurationWithUnit, durationSeconds } from '../durations.js';
import type { Store } from '../store/types.js';
import { bumpVersion } from '../store/versions.js';
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

/** What a scenario's or an idle rule's pbehavior operation names (action.go Parameters, idlerule.Parameters). */
export interface PbehaviorOperation {
  name?: string;
  reason?: string;
  type?: string;
  rrule?: string;
  tstart?: number;
  tstop?: number;
  start_on_trigger?: boolean;
  duration?: DurationWithUnit;
}

/** The parameters an operation on an alarm takes, a scenario's action or an idle rule's (output, state, ticket, duration, the pbehavior's). */
export interface OperationParameters extends PbehaviorOperation {
  output?: string;
  state?: number;
  ticket?: string;
}

export class PbehaviorOperationFailed extends Error {}

/** types.ActionPbehaviorColor */
const ACTION_PBEHAVIOR_COLOR = '#808080';

/**
 * A pbehavior on one entity, as engine-pbehavior's
 * rpc_server_message_processor.go makes it for an operation: from now for
 * its duration (start_on_trigger), or from tstart to tstop. Stored under
 * `key`, so that doing the same operation again puts the same pbehavior,
 * not a second one; every engine reloads the pbehaviors.
 */
export async function putOperationPbehavior(
  store: Store,
  key: string,
  op: PbehaviorOperation,
  o: { entity: string; author: string; name: string; now: number },
): Promise<void> {
  await ensureDefaults(store);
  if (!(await store.collection(PBEHAVIOR_TYPES).get(op.type ?? '')))
    throw new PbehaviorOperationFailed(`pbehavior type "${op.type}" does not exist`);
  if (!(await store.collection(PBEHAVIOR_REASONS).get(op.reason ?? '')))
    throw new PbehaviorOperationFailed(`pbehavior reason "${op.reason}" does not exist`);
  const [tstart, tstop] = op.start_on_trigger
    ? [o.now, o.now + (op.duration ? durationSeconds(op.duration) : 3600)]
    : [op.tstart ?? o.now, op.tstop];
  const pbh: PBehavior = {
    author: o.author,
    name: op.name || o.name,
    enabled: true,
    tstart,
    ...(tstop !== undefined ? { tstop } : {}),
    rrule: op.rrule ?? '',
    exdates: [],
    exceptions: [],
    type: op.type!,
    reason: op.reason!,
    entity_pattern: [[{ field: '_id', cond: { type: 'eq', value: o.entity } }]],
    color: ACTION_PBEHAVIOR_COLOR,
    comments: [],
    created: o.now,
    updated: o.now,
  };
  await store.collection<PBehavior>(PBEHAVIORS).put(key, pbh);
  await bumpVersion(store, PBEHAVIORS);
}
