import { type AlarmPattern, checkAlarmPattern } from '../alarm/pattern.js';
import type { EntityPattern } from '../pbehavior/model.js';
import { checkPattern, checkPbehaviorPattern } from '../pbehavior/pattern.js';
import type { Filter, FindOptions } from '../store/types.js';

/*
 * Query parameters -> store queries, as Canopsis v4 reads them
 * (capensis/canopsis release-22.10: lib/api/pagination/pagination.go,
 * lib/api/alarm/models.go ListRequest, lib/api/alarm/mongo_query.go,
 * lib/api/entity/models.go ListRequest). A bad value is an Invalid with
 * Canopsis' {errors: {field: message}} body; nothing is silently ignored:
 * a parameter we cannot honour is refused and says so.
 */

export class Invalid extends Error {
  constructor(readonly errors: Record<string, string>) {
    super(
      Object.entries(errors)
        .map(([k, v]) => `${k}: ${v}`)
        .join('; '),
    );
  }
}

export type Query = Record<string, string | string[] | undefined>;

const one = (q: Query, name: string): string | undefined => {
  const v = q[name];
  return Array.isArray(v) ? v[v.length - 1] : v;
};
/** `name[]` (the usual form) or `name`, as a list. */
const many = (q: Query, name: string): string[] => {
  const v = q[`${name}[]`] ?? q[name];
  return v === undefined ? [] : (Array.isArray(v) ? v : [v]).filter((x) => x !== '');
};
const title = (s: string) => s.replace(/(^|_)([a-z])/g, (_m, _u, c: string) => c.toUpperCase());

export interface Page {
  page: number;
  limit: number;
}

/** page and limit: numeric, > 0 (pagination.Query), defaults 1 and 10. */
export function pageOf(q: Query, maxLimit = 10_000): Page {
  const errors: Record<string, string> = {};
  const num = (name: string, d: number, max: number) => {
    const v = one(q, name);
    if (v === undefined || v === '') return d;
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) errors[name] = `${title(name)} must be numeric.`;
    else if (n <= 0) errors[name] = `${title(name)} should be greater than 0.`;
    else if (n > max) errors[name] = `${title(name)} should be ${max} or less.`;
    return n;
  };
  const page = num('page', 1, 1_000_000);
  const limit = num('limit', 10, maxLimit);
  if (Object.keys(errors).length) throw new Invalid(errors);
  return { page, limit };
}

/** GET /api/v4/alarms?opened: true only open, false only resolved, absent open and recently resolved. */
export type Opened = 'open' | 'resolved' | 'open-and-recent';

export interface AlarmsQuery extends Page {
  filter: Filter;
  options: Required<Pick<FindOptions, 'sort' | 'skip' | 'limit'>>;
  opened: Opened;
  withSteps: boolean;
  /** Canopsis' alarm_pattern, entity_pattern and pbehavior_pattern, when given: applied to what the filter finds. */
  patterns?: Patterns;
}

export interface Patterns {
  alarm?: AlarmPattern;
  entity?: EntityPattern;
  pbehavior?: EntityPattern;
}

/** mongo_query.go handlePatterns: each a JSON pattern, "XPattern is invalid." when it is not one. */
const PATTERN_PARAMS = [
  { param: 'alarm_pattern', key: 'alarm', title: 'AlarmPattern', check: checkAlarmPattern },
  { param: 'entity_pattern', key: 'entity', title: 'EntityPattern', check: checkPattern },
  { param: 'pbehavior_pattern', key: 'pbehavior', title: 'PbehaviorPattern', check: checkPbehaviorPattern },
] as const;

/** What an alarm in no pbehavior reads as, per field (pattern/pbehavior_info.go getPbehaviorInfoStringField). */
const PBH_MISSING: Record<string, string> = {
  'pbehavior_info.canonical_type': 'active',
  'pbehavior_info.id': '',
  'pbehavior_info.type': '',
  'pbehavior_info.reason': '',
};

/**
 * A pbehavior pattern as store filters to OR, when each group is one eq or
 * is_one_of condition (what the console sends); undefined for any other,
 * which is then matched after the query. An alarm in no pbehavior has no
 * v.pbehavior_info: the value it reads as is matched by `null`.
 */
function pbehaviorFilter(p: EntityPattern): Filter[] | undefined {
  const out: Filter[] = [];
  for (const group of p) {
    const c = group[0];
    if (group.length !== 1 || !c || !(c.field in PBH_MISSING)) return undefined;
    const values = c.cond.type === 'eq' ? [c.cond.value] : c.cond.type === 'is_one_of' ? (c.cond.value as unknown[]) : undefined;
    if (!values?.every((v): v is string => typeof v === 'string')) return undefined;
    const field = `v.${c.field}`;
    if (values.includes(PBH_MISSING[c.field]!)) out.push({ [field]: null });
    out.push({ [field]: { $in: values } });
  }
  return out;
}

function patternsOf(q: Query, errors: Record<string, string>): Patterns | undefined {
  const out: Patterns = {};
  for (const { param, key, title: name, check } of PATTERN_PARAMS) {
    const raw = one(q, param);
    if (raw === undefined || raw === '') continue;
    let p: unknown;
    try {
      p = JSON.parse(raw);
    } catch {
      p = undefined;
    }
    if (p === undefined || check(p, param) !== undefined) errors[param] = `${name} is invalid.`;
    else out[key] = p as AlarmPattern;
  }
  return Object.keys(out).length ? out : undefined;
}

const TIME_FIELDS = ['t', 'v.creation_date', 'v.resolved', 'v.last_update_date', 'v.last_event_date'];
/** mongo_query.go defaultSearchByFields / availableSearchByFields (22.10 adds v.display_name and v.output to the latter). */
const SEARCH_BY = ['v.connector', 'v.connector_name', 'v.component', 'v.resource'];
const SEARCH_BY_AVAILABLE = new Set([...SEARCH_BY, 'v.display_name', 'v.output']);
/** mongo_query.go fieldsAliases: short names a client may sort by. */
const ALIASES: Record<string, string> = {
  uid: '_id',
  connector: 'v.connector',
  connector_name: 'v.connector_name',
  component: 'v.component',
  resource: 'v.resource',
  entity_id: 'd',
  state: 'v.state.val',
  status: 'v.status.val',
  output: 'v.output',
  opened: 't',
  resolved: 'v.resolved',
  ticket: 'v.ticket.val',
};
const SORT_FIELD = /^(t|d|_id|v(\.[a-z_]+)+)$/;

const storeField = (f: string) => (f === '_id' ? 'key' : f);

function sortField(raw: string, errors: Record<string, string>, key: string): string | undefined {
  const f = ALIASES[raw] ?? raw;
  if (!SORT_FIELD.test(f)) {
    errors[key] = `${title(key)} must be t, d, _id, a v.* field or one of ${Object.keys(ALIASES).join(', ')}.`;
    return undefined;
  }
  return storeField(f);
}

const bool = (q: Query, name: string, errors: Record<string, string>): boolean | undefined => {
  const v = one(q, name);
  if (v === undefined || v === '') return undefined;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  errors[name] = `${title(name)} must be true or false.`;
  return undefined;
};

/** Seconds a resolved alarm still shows when `opened` is absent. */
export const RECENTLY_RESOLVED = 3600;

export function alarmsQuery(q: Query, now: number): AlarmsQuery {
  const { page, limit } = pageOf(q);
  const errors: Record<string, string> = {};
  const filter: Filter = {};
  const and: Filter[] = [];

  const openedFlag = bool(q, 'opened', errors);
  const opened: Opened = openedFlag === undefined ? 'open-and-recent' : openedFlag ? 'open' : 'resolved';
  // v.resolved is absent or a number, never null: `null` (IS NULL on SQLite, missing on MongoDB) uses the index.
  if (opened === 'open') filter['v.resolved'] = null;
  if (opened === 'resolved') filter['v.resolved'] = { $ne: null };
  if (opened === 'open-and-recent') and.push({ $or: [{ 'v.resolved': null }, { 'v.resolved': { $gte: now - RECENTLY_RESOLVED } }] });

  // Saved widget filters live in Canopsis' UI database; there are none here, so every id is unknown.
  if (many(q, 'filters').length) errors.filter = "Filter doesn't exist.";

  const timeField = one(q, 'time_field') ?? '';
  if (timeField && !TIME_FIELDS.includes(timeField)) errors.time_field = `TimeField must be one of [${TIME_FIELDS.join(' ')}] or empty.`;
  const tf = timeField || (opened === 'resolved' ? 'v.resolved' : 't');
  const bound = (name: string) => {
    const v = one(q, name);
    if (v === undefined || v === '') return undefined;
    if (!/^\d+$/.test(v)) {
      errors[name] = `${title(name)} must be a unix timestamp in seconds.`;
      return undefined;
    }
    return Number(v);
  };
  const tstart = bound('tstart');
  const tstop = bound('tstop');
  if (tstart !== undefined || tstop !== undefined) {
    filter[tf] = { ...(tstart !== undefined ? { $gte: tstart } : {}), ...(tstop !== undefined ? { $lte: tstop } : {}) };
  }

  // Our own filters, kept from earlier versions: one entity, one state.
  const entity = one(q, 'entity');
  if (entity) filter.d = entity;
  const state = one(q, 'state');
  if (state !== undefined && state !== '') {
    if (!/^[0-3]$/.test(state)) errors.state = 'State must be one of [0 1 2 3].';
    else filter['v.state.val'] = Number(state);
  }
  // No entity belongs to a category and no alarm carries tags here: a filter on either matches nothing.
  if (one(q, 'category')) filter.key = { $in: [] };
  if (one(q, 'tag')) filter.key = { $in: [] };

  const search = (one(q, 'search') ?? '').trim();
  if (search) {
    const by = many(q, 'active_columns').filter((c) => SEARCH_BY_AVAILABLE.has(c));
    const fields = [...(by.length ? by : SEARCH_BY), 'd'];
    and.push({ $or: fields.map((f) => ({ [f]: { $contains: search } })) });
  }

  const multi = many(q, 'multi_sort');
  const sortBy = one(q, 'sort_by') ?? '';
  const dir = (one(q, 'sort') ?? '').toLowerCase();
  if (dir && dir !== 'asc' && dir !== 'desc') errors.sort = 'Sort must be one of [asc desc] or empty.';
  let sort: FindOptions['sort'] = [];
  if (multi.length) {
    if (sortBy) errors.sort_by = "Can't be present both SortBy and MultiSort.";
    for (const m of multi) {
      const [f, d, ...extra] = m.split(',');
      if (!f || (d !== 'asc' && d !== 'desc') || extra.length) {
        errors.multi_sort = 'Invalid multi_sort value.';
        continue;
      }
      const field = sortField(f, errors, 'multi_sort');
      if (field) sort.push([field, d === 'asc' ? 1 : -1]);
    }
  } else {
    const field = sortField(sortBy || 't', errors, 'sort_by');
    if (field) sort = [[field, dir === 'asc' ? 1 : -1]];
  }
  // The id breaks ties, in the direction of the last term: one index on (..., t, key) then serves the page
  // as it is, in either direction, with no sort of the whole open set.
  if (!sort.some(([f]) => f === 'key')) sort.push(['key', sort.at(-1)?.[1] ?? 1]);

  const withSteps = bool(q, 'with_steps', errors) ?? false;
  const patterns = patternsOf(q, errors);
  if (Object.keys(errors).length) throw new Invalid(errors);
  // A pbehavior pattern the store can say itself (the console's "hide maintenance") pages in the store.
  const pbhFilter = patterns?.pbehavior ? pbehaviorFilter(patterns.pbehavior) : undefined;
  if (pbhFilter && patterns) {
    and.push({ $or: pbhFilter });
    delete patterns.pbehavior;
  }
  // Several $or conditions: (a or b) and (c or d) = the cross product, which the store's one $or can say.
  if (and.length) filter.$or = and.map((f) => f.$or!).reduce((acc, ors) => acc.flatMap((x) => ors.map((y) => ({ ...x, ...y }))));
  const remaining = patterns && Object.keys(patterns).length ? patterns : undefined;
  return {
    filter,
    options: { sort, skip: (page - 1) * limit, limit },
    page,
    limit,
    opened,
    withSteps,
    ...(remaining ? { patterns: remaining } : {}),
  };
}

/** Canopsis' PaginatedMeta; a page past the last is "page is out of range" (NewPaginatedMeta). */
export function pageMeta(p: Page, total: number) {
  const pageCount = Math.max(1, Math.ceil(total / p.limit));
  if (p.page > pageCount) throw new PageOutOfRange();
  return { page: p.page, page_count: pageCount, per_page: p.limit, total_count: total };
}

export class PageOutOfRange extends Error {
  constructor() {
    super('page is out of range');
  }
}

/**
 * The first query parameter given more than once (?limit=1&limit=2), or
 * undefined. Lists are named with [] (filters[]=a&filters[]=b) and may repeat;
 * any other parameter is read once, and a second value is a client's mistake.
 */
export function repeatedParameter(query: unknown): string | undefined {
  if (query === null || typeof query !== 'object') return undefined;
  return Object.entries(query).find(([k, v]) => Array.isArray(v) && !k.endsWith('[]'))?.[0];
}
