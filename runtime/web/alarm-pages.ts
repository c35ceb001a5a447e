import type { StoredAlarm } from '../alarm/model.js';
import { ALARMS } from '../engines/axe.js';
import { ENTITIES, type Entity } from '../engines/che.js';
import type { Filter, FindOptions, Scalar, Store, Stored } from '../store/types.js';
import { Stamped } from './stamped.js';

/*
 * The pages of GET /api/v4/alarms, with what each costs beyond its own rows
 * remembered while the alarms are unchanged (stamped.ts): the count of the
 * whole filtered set, the rows of the pages read, and where each of them
 * ended, so that a page not read yet starts from the nearest end (keyset)
 * instead of walking every row before it (OFFSET). Entities are remembered
 * the same way, under the entities' own stamp. Every answer is the one a
 * fresh find, count and OFFSET would give now.
 */

/** Sort fields every alarm has, always of one type: a keyset over them leaves no alarm out. */
const KEYSET_FIELDS = new Set([
  'key',
  't',
  'd',
  'v.creation_date',
  'v.last_update_date',
  'v.last_event_date',
  'v.state.val',
  'v.status.val',
]);
/** Bounds on what is remembered: filters counted, page ends, rows of pages, entities. */
const MAX_FILTERS = 64;
const MAX_ENDS = 4096;
const MAX_ROWS = 10_000;
const MAX_ENTITIES = 10_000;

export interface PageRequest {
  sort: NonNullable<FindOptions['sort']>;
  skip: number;
  limit: number;
}

/** The value at a dotted path of a document (`key` is the store's key). */
function valueAt(doc: Stored<StoredAlarm>, path: string): unknown {
  let v: unknown = doc;
  for (const part of path.split('.')) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[part] : undefined;
  return v;
}

const scalar = (v: unknown): v is string | number => typeof v === 'string' || typeof v === 'number';

export class AlarmPages {
  private readonly alarms: Stamped;
  private readonly counts;
  /** Per filter and order: the sort values of the last row of each page read, by the rows up to it. */
  private readonly ends;
  private readonly rows;
  private readonly known: Stamped;
  /** An entity by id, or null for an id with none (an alarm whose entity che has not written). */
  private readonly entities;

  constructor(private readonly store: Store) {
    this.alarms = new Stamped(() => store.collection(ALARMS));
    this.counts = this.alarms.map<number>(MAX_FILTERS);
    this.ends = this.alarms.map<Map<number, Scalar[]>>(MAX_FILTERS);
    this.rows = this.alarms.map<Array<Stored<StoredAlarm>>>(MAX_ROWS, (rows) => rows.length + 1);
    this.known = new Stamped(() => store.collection(ENTITIES));
    this.entities = this.known.map<Entity | null>(MAX_ENTITIES);
  }

  /** What find(filter, page) and count(filter) on the alarms answer now. The rows are shared: read them, never change them. */
  async page(filter: Filter, page: PageRequest): Promise<{ data: Array<Stored<StoredAlarm>>; total: number }> {
    const c = this.store.collection<StoredAlarm>(ALARMS);
    const stamp = await this.alarms.read();
    if (stamp === undefined) {
      const [data, total] = await Promise.all([c.find(filter, { ...page, shared: true }), c.count(filter)]);
      return { data, total };
    }
    const fkey = JSON.stringify(filter);
    const okey = `${fkey} ${JSON.stringify(page.sort)}`;
    const pkey = `${okey} ${page.skip} ${page.limit}`;
    const count = this.counts.get(fkey);
    const rows = this.rows.get(pkey);
    const [data, total] = await Promise.all([rows ?? c.find(filter, this.fromNearestEnd(okey, page)), count ?? c.count(filter)]);
    if (!this.alarms.holds(stamp)) return { data, total };
    if (count === undefined) this.counts.set(fkey, total);
    if (rows === undefined) {
      this.rows.set(pkey, data);
      this.remember(okey, page, data);
    }
    return { data, total };
  }

  /** The page as a keyset read from the nearest end of a page read before it, when there is one. */
  private fromNearestEnd(okey: string, page: PageRequest): FindOptions {
    const ends = this.ends.get(okey);
    let from: number | undefined;
    for (const n of ends?.keys() ?? []) if (n <= page.skip && (from === undefined || n > from)) from = n;
    return from === undefined
      ? { ...page, shared: true }
      : { sort: page.sort, after: ends!.get(from)!, skip: page.skip - from, limit: page.limit, shared: true };
  }

  private remember(okey: string, page: PageRequest, data: Array<Stored<StoredAlarm>>): void {
    const last = data.at(-1);
    if (!last || page.sort.at(-1)?.[0] !== 'key' || !page.sort.every(([f]) => KEYSET_FIELDS.has(f))) return;
    const values = page.sort.map(([f]) => valueAt(last, f));
    if (!values.every(scalar)) return;
    const known = this.ends.get(okey);
    const ends = known && known.size < MAX_ENDS ? known : new Map<number, Scalar[]>();
    if (ends !== known) this.ends.set(okey, ends);
    ends.set(page.skip + data.length, values);
  }

  /** The entities of these ids, by id, as the store holds them now (shared, as the rows are). */
  async entitiesOf(ids: string[]): Promise<Map<string, Entity>> {
    const stamp = await this.known.read();
    const out = new Map<string, Entity>();
    const missing: string[] = [];
    for (const id of new Set(ids)) {
      const e = this.entities.get(id);
      if (e === undefined) missing.push(id);
      else if (e !== null) out.set(id, e);
    }
    if (missing.length === 0) return out;
    const found = await this.store.collection<Entity>(ENTITIES).find({ key: { $in: missing } }, { shared: true });
    const keep = this.known.holds(stamp);
    for (const e of found) out.set(e.key, e);
    if (keep) for (const id of missing) this.entities.set(id, out.get(id) ?? null);
    return out;
  }
}
