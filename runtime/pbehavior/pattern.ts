import { entityId } from '../event/canopsis-event.js';
import type { Event } from '../tasks/types.js';
import type { EntityPattern, FieldCondition } from './model.js';

/*
 * Entity patterns as Canopsis v4 matches them (release-22.10,
 * lib/canopsis/pattern/entity.go and conditions.go): groups OR-ed,
 * conditions in a group AND-ed, an empty pattern matches everything.
 * Fields: _id, name, type, category, component, connector, infos.<name>;
 * the string conditions and exist. A pattern naming anything else is
 * refused when it is saved (checkPattern), never silently ignored.
 */

export interface MatchableEntity {
  _id: string;
  name: string;
  type: string;
  category?: string | null;
  component?: string;
  connector?: string;
  infos?: Record<string, { value?: unknown }>;
}

const FIELDS = new Set(['_id', 'name', 'type', 'category', 'component', 'connector']);
const STRING_CONDS = [
  'eq',
  'neq',
  'is_one_of',
  'is_not_one_of',
  'contain',
  'not_contain',
  'begin_with',
  'not_begin_with',
  'end_with',
  'not_end_with',
  'regexp',
] as const;
const CONDS = new Set<string>([...STRING_CONDS, 'exist']);

/** Why a pattern cannot be used, or undefined: the API answers it as a 400 on entity_pattern. */
export function checkPattern(p: unknown): string | undefined {
  if (!Array.isArray(p)) return 'entity_pattern must be an array of groups of conditions';
  for (const [g, group] of p.entries()) {
    if (!Array.isArray(group) || group.length === 0) return `entity_pattern.${g} must be a non-empty array of conditions`;
    for (const [i, c] of (group as unknown[]).entries()) {
      const where = `entity_pattern.${g}.${i}`;
      const fc = c as Partial<FieldCondition> | null;
      if (!fc || typeof fc !== 'object' || typeof fc.field !== 'string') return `${where}.field is missing`;
      if (!FIELDS.has(fc.field) && !/^infos\.[^.]+$/.test(fc.field)) return `${where}.field "${fc.field}" is not an entity field`;
      const type = fc.cond?.type;
      if (typeof type !== 'string' || !CONDS.has(type)) return `${where}.cond.type must be one of ${[...CONDS].join(', ')}`;
      const v = fc.cond?.value;
      if (type === 'exist' && typeof v !== 'boolean') return `${where}.cond.value must be true or false`;
      if ((type === 'is_one_of' || type === 'is_not_one_of') && !(Array.isArray(v) && v.every((x) => typeof x === 'string')))
        return `${where}.cond.value must be an array of strings`;
      if (type !== 'exist' && type !== 'is_one_of' && type !== 'is_not_one_of' && typeof v !== 'string')
        return `${where}.cond.value must be a string`;
      if (type === 'regexp') {
        try {
          new RegExp(v as string);
        } catch (e) {
          return `${where}.cond.value is not a regular expression: ${(e as Error).message}`;
        }
      }
    }
  }
  return undefined;
}

function fieldValue(e: MatchableEntity, field: string): unknown {
  if (field.startsWith('infos.')) return e.infos?.[field.slice('infos.'.length)]?.value;
  return (e as unknown as Record<string, unknown>)[field];
}

function holds(c: FieldCondition, e: MatchableEntity): boolean {
  const actual = fieldValue(e, c.field);
  const v = c.cond.value;
  if (c.cond.type === 'exist') return (actual !== undefined && actual !== null && actual !== '') === v;
  const s = typeof actual === 'string' ? actual : actual === undefined || actual === null ? '' : String(actual);
  switch (c.cond.type) {
    case 'eq':
      return s === v;
    case 'neq':
      return s !== v;
    case 'is_one_of':
      return (v as string[]).includes(s);
    case 'is_not_one_of':
      return !(v as string[]).includes(s);
    case 'contain':
      return s.includes(v as string);
    case 'not_contain':
      return !s.includes(v as string);
    case 'begin_with':
      return s.startsWith(v as string);
    case 'not_begin_with':
      return !s.startsWith(v as string);
    case 'end_with':
      return s.endsWith(v as string);
    case 'not_end_with':
      return !s.endsWith(v as string);
    case 'regexp':
      return new RegExp(v as string).test(s);
    default:
      return false;
  }
}

export function matches(p: EntityPattern, e: MatchableEntity): boolean {
  if (p.length === 0) return true;
  return p.some((group) => group.every((c) => holds(c, e)));
}

/** The entity of an event as a pattern sees it (che writes the same from it). */
export function entityOfEvent(e: Event): MatchableEntity {
  const connector = `${String(e.connector)}/${String(e.connector_name)}`;
  const type = String(e.source_type);
  return {
    _id: entityId(e),
    name: type === 'resource' ? String(e.resource) : type === 'connector' ? String(e.connector_name) : String(e.component),
    type,
    connector,
    ...(type === 'resource' ? { component: String(e.component) } : {}),
  };
}
