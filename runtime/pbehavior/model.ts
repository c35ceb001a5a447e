/*
 * Periodic behaviours (pbehaviors) as Canopsis v4 keeps them
 * (capensis/canopsis release-22.10, lib/canopsis/pbehavior/pbehavior.go,
 * reason.go, exception.go; the default types and reason of
 * database/fixtures/pbehavior.yml): a type (active, inactive, maintenance,
 * pause) over the time spans of a start, a stop and an RRULE, with
 * exdates, matched to entities by a pattern. Documents are stored under
 * their id (the store key); the API adds `_id`.
 */

export type CanonicalType = 'active' | 'inactive' | 'maintenance' | 'pause';
export const CANONICAL_TYPES: CanonicalType[] = ['active', 'inactive', 'maintenance', 'pause'];

export interface PbhType {
  name: string;
  description: string;
  type: CanonicalType;
  /** The higher wins when several pbehaviors are in force (type_resolver.go). Unique. */
  priority: number;
  icon_name: string;
  color?: string;
}

export interface Reason {
  name: string;
  description: string;
  created: number;
}

/** A time span [begin, end) in which the pbehavior has another type (type_computer.go: exdates come first). */
export interface Exdate {
  begin: number;
  end: number;
  /** A type id. */
  type: string;
}

export interface Exception {
  name: string;
  description: string;
  exdates: Exdate[];
  created: number;
}

/** One condition of an entity pattern (lib/canopsis/pattern): `{field, cond: {type, value}}`. */
export interface FieldCondition {
  field: string;
  field_type?: 'string' | 'int' | 'bool' | 'string_array';
  cond: { type: string; value?: unknown };
}
/** Groups OR-ed, the conditions of a group AND-ed. */
export type EntityPattern = FieldCondition[][];

export interface PBehavior {
  author: string;
  name: string;
  enabled: boolean;
  /** Unix seconds. */
  tstart: number;
  /** Absent: no end (then the rrule must be absent too, or the span is open). */
  tstop?: number;
  /** RFC 5545 recurrence rule without DTSTART ("FREQ=WEEKLY;BYDAY=MO"); '' for a single span. */
  rrule: string;
  exdates: Exdate[];
  /** Exception ids: their exdates apply too. */
  exceptions: string[];
  /** A type id. */
  type: string;
  /** A reason id. */
  reason: string;
  entity_pattern: EntityPattern;
  color: string;
  comments: Array<{ _id: string; author: string; ts: number; message: string }>;
  created: number;
  updated: number;
}

/** What an alarm and an entity carry about the pbehavior in force (types.PbehaviorInfo). */
export interface PbehaviorInfo {
  timestamp: number;
  id: string;
  name: string;
  reason: string;
  reason_name: string;
  type: string;
  type_name: string;
  canonical_type: CanonicalType;
}

export const PBEHAVIORS = 'pbehaviors';
export const PBEHAVIOR_TYPES = 'pbehavior_types';
export const PBEHAVIOR_REASONS = 'pbehavior_reasons';
export const PBEHAVIOR_EXCEPTIONS = 'pbehavior_exceptions';

/** database/fixtures/pbehavior.yml: the four default types (priorities by their order there) and the default reason. */
export const DEFAULT_TYPES: Array<{ id: string; doc: PbhType }> = [
  {
    id: 'default-inactive',
    doc: { name: 'Default inactive', description: 'Default inactive', type: 'inactive', priority: 0, icon_name: 'brightness_3' },
  },
  { id: 'default-active', doc: { name: 'Default active', description: 'Default active', type: 'active', priority: 1, icon_name: '' } },
  {
    id: 'default-maintenance',
    doc: { name: 'Default maintenance', description: 'Default maintenance', type: 'maintenance', priority: 2, icon_name: 'build' },
  },
  { id: 'default-pause', doc: { name: 'Default pause', description: 'Default pause', type: 'pause', priority: 3, icon_name: 'pause' } },
];
export const DEFAULT_REASON = { id: 'default-reason', doc: { name: 'Default', description: 'Default', created: 0 } as Reason };
