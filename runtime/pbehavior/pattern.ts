import { entityId } from '../event/canopsis-event.js';
import { checkGroups, type FieldDef, groupsMatch, kindOfFieldType, type PatternCondition } from '../pattern/conditions.js';
import type { Event } from '../tasks/types.js';
import type { EntityPattern, PbehaviorInfo } from './model.js';

/*
 * Entity patterns as Canopsis v4 matches them (release-22.10,
 * lib/canopsis/pattern/entity.go and conditions.go): groups OR-ed,
 * conditions in a group AND-ed, an empty pattern matches everything.
 * Fields: _id, name, type, category, component, connector, infos.<name>.
 * A pattern naming anything else is refused when it is saved
 * (checkPattern), never silently ignored.
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

const STRING_FIELDS = new Set(['_id', 'name', 'type', 'category', 'component', 'connector']);

/** entity.go: the entity's own fields are strings; an info is read as its field_type says, or tested for existence. */
function entityField(c: PatternCondition): FieldDef<MatchableEntity> | undefined {
  if (STRING_FIELDS.has(c.field)) return { kinds: ['string'], get: (e) => (e as unknown as Record<string, unknown>)[c.field] };
  const info = /^infos\.([^.]+)$/.exec(c.field)?.[1];
  if (info === undefined) return undefined;
  const kind = kindOfFieldType(c.field_type);
  if (c.field_type && !kind) return undefined;
  return { kinds: kind ? [kind] : ['string', 'ref'], get: (e) => e.infos?.[info]?.value };
}

/** Why a pattern cannot be used, or undefined: the API answers it as a 400 on entity_pattern. */
export const checkPattern = (p: unknown, name = 'entity_pattern'): string | undefined =>
  checkGroups(p, name, entityField, 'an entity field');

export const matches = (p: EntityPattern, e: MatchableEntity, now = Date.now() / 1000): boolean => groupsMatch(p, e, now, entityField);

/*
 * Patterns on the pbehavior an alarm is in (pattern/pbehavior_info.go):
 * its id, type, canonical type and reason; an alarm in no pbehavior is of
 * the canonical type "active".
 */
const PBH_FIELDS: Record<string, (i: PbehaviorInfo | undefined) => string> = {
  'pbehavior_info.id': (i) => i?.id ?? '',
  'pbehavior_info.type': (i) => i?.type ?? '',
  'pbehavior_info.canonical_type': (i) => i?.canonical_type ?? 'active',
  'pbehavior_info.reason': (i) => i?.reason ?? '',
};
const pbhField = (c: PatternCondition): FieldDef<PbehaviorInfo | undefined> | undefined => {
  const get = PBH_FIELDS[c.field];
  return get ? { kinds: ['string'], get } : undefined;
};

export const checkPbehaviorPattern = (p: unknown, name = 'pbehavior_pattern'): string | undefined =>
  checkGroups(p, name, pbhField, 'a pbehavior_info field');

export const pbehaviorMatches = (p: EntityPattern, info: PbehaviorInfo | undefined): boolean => groupsMatch(p, info, 0, pbhField);

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
