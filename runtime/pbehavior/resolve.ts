import { createRequire } from 'node:module';
import type { Exception, PBehavior, PbehaviorInfo, PbhType, Reason } from './model.js';
import { type MatchableEntity, matches } from './pattern.js';

/*
 * Which pbehavior is in force on an entity at a time, as Canopsis v4
 * computes it (release-22.10, lib/canopsis/pbehavior/type_computer.go and
 * type_resolver.go): a pbehavior's exdates (its own and its exceptions')
 * come first and give their own type; then its RRULE spans (each as long as
 * tstop - tstart, starting at tstart) give its type; an `active` pbehavior
 * makes its entities inactive outside its spans. Among the pbehaviors in
 * force, the highest type priority wins, then the newest, then the
 * greatest id; the default active type means none. Spans are [start, end),
 * in UTC. Pure: the caller passes the documents and the time.
 */

// rrule is CommonJS without named exports Node can see: require it, typed by its declarations. On first
// use: a process whose pbehaviors have no RRULE, or that has none, does not load it.
const require = createRequire(import.meta.url);
let rrule: typeof import('rrule') | undefined;
function rrulestr(...args: Parameters<typeof import('rrule')['rrulestr']>) {
  rrule ??= require('rrule') as typeof import('rrule');
  return rrule.rrulestr(...args);
}

export interface Models {
  types: Map<string, PbhType>;
  reasons: Map<string, Reason>;
  exceptions: Map<string, Exception>;
}

export type Identified<T> = T & { key: string };

/** ResolveDefaultTypes: the active and inactive types of lowest priority. */
export function defaultTypes(types: Map<string, PbhType>): { active?: string; inactive?: string } {
  const pick = (kind: string) =>
    [...types.entries()].filter(([, t]) => t.type === kind).sort(([, a], [, b]) => a.priority - b.priority)[0]?.[0];
  return { active: pick('active'), inactive: pick('inactive') };
}

/** Why an RRULE cannot be used, or undefined. */
export function checkRrule(rule: string, tstart: number): string | undefined {
  if (rule === '') return undefined;
  try {
    rrulestr(rule, { dtstart: new Date(tstart * 1000) });
    return undefined;
  } catch (e) {
    return `rrule "${rule}" is not an RFC 5545 recurrence rule: ${(e as Error).message}`;
  }
}

/** Whether t is inside one of the pbehavior's spans. */
export function inSpan(p: PBehavior, t: number): boolean {
  if (t < p.tstart) return false;
  if (!p.rrule) return p.tstop === undefined || t < p.tstop;
  if (p.tstop === undefined) return false;
  const duration = p.tstop - p.tstart;
  const rule = rrulestr(p.rrule, { dtstart: new Date(p.tstart * 1000) });
  const last = rule.before(new Date(t * 1000), true);
  return last !== null && t < last.getTime() / 1000 + duration;
}

/** The type id the pbehavior gives at t, or undefined when it says nothing then. */
export function typeAt(p: PBehavior, t: number, m: Models): string | undefined {
  if (!p.enabled) return undefined;
  const exdates = [...p.exdates, ...p.exceptions.flatMap((id) => m.exceptions.get(id)?.exdates ?? [])];
  const ex = exdates.find((x) => x.begin <= t && t < x.end);
  if (ex) return ex.type;
  if (inSpan(p, t)) return p.type;
  // An active pbehavior: its entities are inactive between its spans (type_computer.go, "default inactive interval").
  if (m.types.get(p.type)?.type === 'active' && t >= p.tstart) return defaultTypes(m.types).inactive;
  return undefined;
}

/** The pbehavior in force on the entity at t, or undefined for none (the default active type). */
export function resolve(
  pbehaviors: Array<Identified<PBehavior>>,
  entity: MatchableEntity,
  t: number,
  m: Models,
): PbehaviorInfo | undefined {
  const found: Array<{ p: Identified<PBehavior>; typeId: string; type: PbhType }> = [];
  for (const p of pbehaviors) {
    if (!p.enabled || !matches(p.entity_pattern, entity)) continue;
    const typeId = typeAt(p, t, m);
    const type = typeId === undefined ? undefined : m.types.get(typeId);
    if (typeId !== undefined && type) found.push({ p, typeId, type });
  }
  found.sort(
    (a, b) => b.type.priority - a.type.priority || b.p.created - a.p.created || (b.p.key > a.p.key ? 1 : b.p.key < a.p.key ? -1 : 0),
  );
  const top = found[0];
  if (!top || top.typeId === defaultTypes(m.types).active) return undefined;
  return {
    timestamp: t,
    id: top.p.key,
    name: top.p.name,
    reason: top.p.reason,
    reason_name: m.reasons.get(top.p.reason)?.name ?? '',
    type: top.typeId,
    type_name: top.type.name,
    canonical_type: top.type.type,
  };
}

/** Whether two infos name the same pbehavior and type (PbehaviorInfo.Same). */
export const samePbehavior = (a: PbehaviorInfo | undefined, b: PbehaviorInfo | undefined) =>
  (a?.id ?? '') === (b?.id ?? '') && (a?.type ?? '') === (b?.type ?? '');
