import type { Filter, FindOptions } from '../store/types.js';

/*
 * GET /api/v4/alarms parameters -> a store query, as Canopsis v4 pages
 * them: page (from 1), limit, opened, entity, state, tstart/tstop on the
 * opening time, sort_by/sort.
 */

export interface AlarmsQuery {
  filter: Filter;
  options: FindOptions;
  page: number;
  limit: number;
}

export class BadQuery extends Error {}

const SORTABLE = new Set(['opened_at', 'last_update', 'state.val', 'status.val', 'entity', 'events_count']);

export function alarmsQuery(q: Record<string, string | undefined>): AlarmsQuery {
  const int = (name: string, d: number, min: number, max: number) => {
    const v = q[name];
    if (v === undefined || v === '') return d;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new BadQuery(`${name}: expected an integer ${min}..${max}, found "${v}"`);
    return n;
  };
  const page = int('page', 1, 1, 1_000_000);
  const limit = int('limit', 10, 1, 10_000);
  const filter: Filter = {};
  if (q.opened !== undefined && q.opened !== '') {
    if (q.opened !== 'true' && q.opened !== 'false') throw new BadQuery(`opened: expected true or false, found "${q.opened}"`);
    filter.resolved = q.opened === 'true' ? null : { $ne: null };
  }
  if (q.entity) filter.entity = q.entity;
  if (q.state !== undefined && q.state !== '') filter['state.val'] = int('state', 0, 0, 3);
  const tstart = q.tstart ? int('tstart', 0, 0, Number.MAX_SAFE_INTEGER) : undefined;
  const tstop = q.tstop ? int('tstop', 0, 0, Number.MAX_SAFE_INTEGER) : undefined;
  if (tstart !== undefined || tstop !== undefined) {
    filter.opened_at = { ...(tstart !== undefined ? { $gte: tstart } : {}), ...(tstop !== undefined ? { $lte: tstop } : {}) };
  }
  const sortBy = q.sort_by || 'opened_at';
  if (!SORTABLE.has(sortBy)) throw new BadQuery(`sort_by: expected one of ${[...SORTABLE].join(', ')}, found "${sortBy}"`);
  const dir = (q.sort || 'desc').toLowerCase();
  if (dir !== 'asc' && dir !== 'desc') throw new BadQuery(`sort: expected asc or desc, found "${q.sort}"`);
  return { filter, options: { sort: [[sortBy, dir === 'asc' ? 1 : -1]], skip: (page - 1) * limit, limit }, page, limit };
}

/**
 * The first query parameter given more than once (?limit=1&limit=2), or
 * undefined. Every route reads one value per name; the querystring parser
 * makes an array of a repeated one, which no handler expects.
 */
export function repeatedParameter(query: unknown): string | undefined {
  if (query === null || typeof query !== 'object') return undefined;
  return Object.entries(query).find(([, v]) => Array.isArray(v))?.[0];
}
