import { DURATION_UNITS, type DurationWithUnit, durationSeconds } from '../durations.js';

/*
 * One condition of a Canopsis pattern, `{type, value}`, applied to a value
 * of a known kind (capensis/canopsis release-22.10,
 * lib/canopsis/pattern/conditions.go: MatchString, MatchInt, MatchRef,
 * MatchTime, MatchDuration, MatchStringArray, MatchBool). Each kind takes
 * its own condition types; a condition a kind cannot take is an error the
 * API reports when the pattern is saved, never a silent "no match".
 */

export type Kind = 'string' | 'int' | 'bool' | 'ref' | 'time' | 'duration' | 'string_array';

export interface Cond {
  type: string;
  value?: unknown;
}

const STRING_CONDS = new Set([
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
  'exist',
]);

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string');
const isDuration = (v: unknown): v is DurationWithUnit => {
  const d = v as DurationWithUnit | null;
  return !!d && typeof d === 'object' && Number.isSafeInteger(d.value) && typeof d.unit === 'string' && d.unit in DURATION_UNITS;
};
const isInterval = (v: unknown): v is { from: number; to: number } => {
  const i = v as { from?: unknown; to?: unknown } | null;
  return !!i && typeof i === 'object' && Number.isSafeInteger(i.from) && Number.isSafeInteger(i.to);
};

/** The condition types each kind takes, as conditions.go's Match* functions do. */
const CONDITIONS_OF: Record<Kind, string[]> = {
  string: [...STRING_CONDS],
  int: ['eq', 'neq', 'gt', 'lt'],
  bool: ['eq', 'neq'],
  ref: ['exist'],
  time: ['relative_time', 'absolute_time'],
  duration: ['gt', 'lt'],
  string_array: ['has_every', 'has_one_of', 'has_not', 'is_empty'],
};

/** Why `c` cannot be applied to a value of `kind`, or undefined. */
export function condError(kind: Kind, c: Cond): string | undefined {
  const t = c.type;
  const v = c.value;
  if (!CONDITIONS_OF[kind].includes(t)) return `cond.type must be one of ${CONDITIONS_OF[kind].join(', ')}`;
  if (t === 'exist' || t === 'is_empty') return typeof v === 'boolean' ? undefined : 'cond.value must be true or false';
  switch (kind) {
    case 'string':
      if (t === 'is_one_of' || t === 'is_not_one_of') return isStrings(v) ? undefined : 'cond.value must be a non-empty array of strings';
      if (typeof v !== 'string') return 'cond.value must be a string';
      if (t === 'regexp') {
        try {
          new RegExp(v);
        } catch (e) {
          return `cond.value is not a regular expression: ${(e as Error).message}`;
        }
      }
      return undefined;
    case 'int':
      return Number.isSafeInteger(v) ? undefined : 'cond.value must be an integer';
    case 'bool':
      return typeof v === 'boolean' ? undefined : 'cond.value must be true or false';
    case 'time':
      if (t === 'relative_time') return isDuration(v) ? undefined : 'cond.value must be a duration {value, unit}';
      return isInterval(v) ? undefined : 'cond.value must be {from, to} in unix seconds';
    case 'duration':
      return isDuration(v) ? undefined : 'cond.value must be a duration {value, unit}';
    case 'string_array':
      return isStrings(v) ? undefined : 'cond.value must be a non-empty array of strings';
    default:
      return undefined;
  }
}

function stringHolds(c: Cond, s: string): boolean {
  const v = c.value;
  switch (c.type) {
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
    case 'exist':
      return (s !== '') === v;
    default:
      return false;
  }
}

/**
 * Whether `actual` meets a condition already checked by condError. Missing
 * values are what Go's zero values are: '' for a string, 0 for a number,
 * the zero time (never in a window), an empty array.
 */
export function condHolds(kind: Kind, c: Cond, actual: unknown, now: number): boolean {
  const v = c.value;
  switch (kind) {
    case 'string':
      return stringHolds(c, typeof actual === 'string' ? actual : actual === undefined || actual === null ? '' : String(actual));
    case 'int':
    case 'duration': {
      const n = typeof actual === 'number' ? actual : 0;
      const w = kind === 'duration' ? durationSeconds(v as DurationWithUnit) : (v as number);
      if (c.type === 'eq') return n === w;
      if (c.type === 'neq') return n !== w;
      if (c.type === 'gt') return n > w;
      return n < w;
    }
    case 'bool':
      return c.type === 'eq' ? actual === v : actual !== v;
    case 'ref':
      return (actual !== undefined && actual !== null) === v;
    case 'time': {
      if (typeof actual !== 'number') return false;
      if (c.type === 'relative_time') return actual > now - durationSeconds(v as DurationWithUnit);
      const i = v as { from: number; to: number };
      return actual > i.from && actual < i.to;
    }
    case 'string_array': {
      const a = Array.isArray(actual) ? (actual as unknown[]).map(String) : [];
      if (c.type === 'is_empty') return (a.length === 0) === v;
      const want = v as string[];
      if (c.type === 'has_every') return want.every((x) => a.includes(x));
      if (c.type === 'has_one_of') return want.some((x) => a.includes(x));
      return !want.some((x) => a.includes(x));
    }
    default:
      return false;
  }
}

/** A field a pattern may name: the kinds it is read as (the first whose conditions fit wins) and how to read it. */
export interface FieldDef<T> {
  kinds: Kind[];
  get: (doc: T, now: number) => unknown;
}

export interface PatternCondition {
  field: string;
  field_type?: 'string' | 'int' | 'bool' | 'string_array';
  cond: Cond;
}

const FIELD_TYPES = new Set<string>(['string', 'int', 'bool', 'string_array']);
/** The kind a condition's field_type names (an info's), or undefined for none or an unknown one. */
export const kindOfFieldType = (t: string | undefined): Kind | undefined =>
  t !== undefined && FIELD_TYPES.has(t) ? (t as Kind) : undefined;

/** The kind a field is read as for this condition, or why none fits. */
function kindFor<T>(def: FieldDef<T>, c: Cond): { kind: Kind } | { error: string } {
  let first: string | undefined;
  for (const kind of def.kinds) {
    const error = condError(kind, c);
    if (!error) return { kind };
    first ??= error;
  }
  return { error: first ?? 'no condition applies' };
}

/**
 * Checks a pattern (groups OR-ed, conditions in a group AND-ed) against the
 * fields `fieldOf` knows; answers why it cannot be used, with where.
 */
export function checkGroups<T>(
  p: unknown,
  name: string,
  fieldOf: (c: PatternCondition) => FieldDef<T> | undefined,
  what: string,
): string | undefined {
  if (!Array.isArray(p)) return `${name} must be an array of groups of conditions`;
  for (const [g, group] of p.entries()) {
    if (!Array.isArray(group) || group.length === 0) return `${name}.${g} must be a non-empty array of conditions`;
    for (const [i, c] of (group as unknown[]).entries()) {
      const where = `${name}.${g}.${i}`;
      const fc = c as Partial<PatternCondition> | null;
      if (!fc || typeof fc !== 'object' || typeof fc.field !== 'string') return `${where}.field is missing`;
      if (!fc.cond || typeof fc.cond !== 'object' || typeof fc.cond.type !== 'string') return `${where}.cond.type is missing`;
      const def = fieldOf(fc as PatternCondition);
      if (!def) return `${where}.field "${fc.field}" is not ${what}`;
      const k = kindFor(def, fc.cond);
      if ('error' in k) return `${where}.${k.error}`;
    }
  }
  return undefined;
}

/** Whether a checked pattern matches; an empty pattern matches everything. */
export function groupsMatch<T>(
  p: PatternCondition[][],
  doc: T,
  now: number,
  fieldOf: (c: PatternCondition) => FieldDef<T> | undefined,
): boolean {
  if (p.length === 0) return true;
  return p.some((group) =>
    group.every((c) => {
      const def = fieldOf(c);
      if (!def) return false;
      const k = kindFor(def, c.cond);
      return 'kind' in k && condHolds(k.kind, c.cond, def.get(doc, now), now);
    }),
  );
}
