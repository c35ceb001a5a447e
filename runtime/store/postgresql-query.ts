import { createHash } from 'node:crypto';
import { type Condition, checkAfter, checkField, type Filter, type FindOptions, type Scalar, StoreError } from './types.js';

/*
 * Filters and orders of the PostgreSQL store as SQL, with the embedded
 * store's comparison rules (SQLite's, through json_extract): a missing field
 * and a JSON null are both null, which no comparison matches and which sorts
 * first; numbers and booleans (as 1 and 0) compare as numbers, below every
 * string; strings compare byte by byte (UTF-8, SQLite's BINARY).
 *
 * Each field becomes one text "sort key" (SORT_KEY below, made in the
 * database by postgresql.ts): '0' for null or missing; '1' and 16 hex digits
 * of the number's IEEE bits, flipped so that text order is number order; '2'
 * and the string. Compared with COLLATE "C" (byte order, whatever the
 * database's own collation), one expression per field gives SQLite's order,
 * is what an expression index holds, and takes one parameter: the value's
 * sort key, computed here the same way. Null is a value of its own rather
 * than SQL's NULL so that `{open: null}` is an equality, which lets the
 * planner walk an index on (open, t, key) in t order; comparisons that
 * SQLite's NULL would fail get a `> '0'` instead.
 */

/** Bump the version when a function's result changes: an index built on the old one would be wrong. */
export const SORT_KEY = '_canopsis_key_v1';
export const SORT_NUMBER = '_canopsis_num_v1';
export const SEARCH_TEXT = '_canopsis_text_v1';
/** The sort key of null and of a missing field. */
const NULL_KEY = "'0'";

export const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** A name of ours in the collection's namespace: a leading _ (never a collection name), at most 63 bytes (PostgreSQL's limit). */
export function internalName(base: string): string {
  const name = `_${base}`;
  return name.length <= 63 ? name : `${name.slice(0, 50)}_${createHash('sha256').update(name).digest('hex').slice(0, 12)}`;
}

/** The SQL functions the queries use, in `schema` (immutable: they go into index expressions). */
export function functionsSql(schema: string): string[] {
  const s = ident(schema);
  const bits = (x: string) => `('x' || encode(float8send(${x}), 'hex'))::bit(64)::bigint`;
  return [
    // x + 0 makes -0 into 0: they are equal numbers.
    `CREATE FUNCTION ${s}.${SORT_NUMBER}(x float8) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT '1' || lpad(to_hex(CASE WHEN x >= 0 THEN ${bits('x + 0')} # (-9223372036854775808)::bigint ELSE ~${bits('x')} END), 16, '0') $$`,
    `CREATE FUNCTION ${s}.${SORT_KEY}(v jsonb) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT CASE coalesce(jsonb_typeof(v), 'null')
        WHEN 'null' THEN ${NULL_KEY}
        WHEN 'number' THEN ${s}.${SORT_NUMBER}(v::float8)
        WHEN 'boolean' THEN ${s}.${SORT_NUMBER}(CASE WHEN v::boolean THEN 1 ELSE 0 END)
        ELSE '2' || (v #>> '{}') END $$`,
    // What SQLite's lower(json_extract(...)) searches in: the string, a number's digits, 1 or 0 for a boolean.
    `CREATE FUNCTION ${s}.${SEARCH_TEXT}(v jsonb) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT CASE jsonb_typeof(v)
        WHEN 'boolean' THEN CASE WHEN v::boolean THEN '1' ELSE '0' END
        WHEN 'null' THEN NULL
        ELSE translate(v #>> '{}', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') END $$`,
  ];
}

/** The sort key of a number, as SORT_NUMBER makes it. */
function numberKey(x: number): string | null {
  if (Number.isNaN(x)) return null; // SQLite binds NaN as NULL
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x === 0 ? 0 : x);
  const bits = view.getBigUint64(0);
  const flipped = x >= 0 ? bits ^ (1n << 63n) : ~bits & 0xffff_ffff_ffff_ffffn;
  return `1${flipped.toString(16).padStart(16, '0')}`;
}

/** A value as the sort key of a field holding it; SQL's NULL for null, which then equals nothing, as in SQLite. */
export function sortKeyOf(v: Scalar): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean') return numberKey(v ? 1 : 0);
  if (typeof v === 'number') return numberKey(v);
  return `2${v}`;
}

/** A value compared with the key column: SQLite turns it into text (the column's affinity). */
const keyText = (v: Scalar): string | null => (v === null || v === undefined ? null : typeof v === 'boolean' ? (v ? '1' : '0') : String(v));

/** ASCII case folding, as SEARCH_TEXT does it (SQLite's lower()). */
const foldAscii = (s: string) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

const pathOf = (field: string) => `doc #> '{${field.split('.').join(',')}}'`;

/** The parameters of one statement, numbered as they are added. */
export class Params {
  readonly values: unknown[] = [];
  add(v: unknown): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
}

/** The SQL of the fields of one collection's documents, with the functions of `schema`. */
export class Fields {
  private readonly fn: string;

  constructor(schema: string) {
    this.fn = ident(schema);
  }

  /** What a field is compared and sorted by (the key column, or the sort key of the document's field). */
  column(field: string): string {
    if (field === 'key') return 'key';
    checkField(field);
    return `(${this.fn}.${SORT_KEY}(${pathOf(field)}) COLLATE "C")`;
  }

  /** The element of an index over `field` that the queries' column() can use. */
  indexElement(field: string): string {
    if (field === 'key') return 'key';
    checkField(field);
    return `(${this.fn}.${SORT_KEY}(${pathOf(field)})) COLLATE "C"`;
  }

  private encode(field: string, v: Scalar): string | null {
    return field === 'key' ? keyText(v) : sortKeyOf(v);
  }

  /** The conditions of `filter` ('' when there are none). */
  conditions(filter: Filter | undefined, p: Params): string {
    const parts: string[] = [];
    for (const [field, cond] of Object.entries(filter ?? {})) {
      if (cond === undefined) continue;
      if (field === '$or') {
        const alternatives = (cond as Filter[]).map((f) => this.conditions(f, p));
        parts.push(alternatives.length ? `(${alternatives.map((a) => `(${a || 'true'})`).join(' OR ')})` : 'false');
        continue;
      }
      parts.push(this.condition(field, cond as Condition, p));
    }
    return parts.join(' AND ');
  }

  /** The null of `field` compares with nothing: the key is never null, a field's null is NULL_KEY. */
  private notNull(field: string): string {
    return field === 'key' ? 'true' : `${this.column(field)} > ${NULL_KEY}`;
  }

  private condition(field: string, c: Condition, p: Params): string {
    const col = this.column(field);
    const isNull = field === 'key' ? 'false' : `${col} = ${NULL_KEY}`;
    if (c === null) return isNull;
    if (typeof c !== 'object') return `${col} = ${p.add(this.encode(field, c))}`;
    // A null in the list matches nothing (SQLite's IN): SQL's NULL there too.
    if ('$in' in c) return c.$in.length === 0 ? 'false' : `${col} = ANY(${p.add(c.$in.map((v) => this.encode(field, v)))}::text[])`;
    // The null of a field is a key unlike any value's: <> holds for it, as SQLite's "IS NULL OR <>".
    if ('$ne' in c) return c.$ne === null ? this.notNull(field) : `${col} <> ${p.add(this.encode(field, c.$ne))}`;
    // Present, even as null: SQLite's json_type (the key lives outside the document, like there).
    if ('$exists' in c) return `${pathOf(field)} IS ${c.$exists ? 'NOT ' : ''}NULL`;
    if ('$contains' in c) {
      const text =
        field === 'key'
          ? `translate(key, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')`
          : `${this.fn}.${SEARCH_TEXT}(${pathOf(field)})`;
      return `strpos(${text}, ${p.add(foldAscii(String(c.$contains)))}) > 0`;
    }
    const bounds = Object.entries(c) as Array<[string, number | string]>;
    if (bounds.length === 0) throw new StoreError(`empty condition on ${field}`);
    return bounds
      .map(([op, v]) => {
        const sqlOp = ({ $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' } as Record<string, string>)[op];
        if (!sqlOp) throw new StoreError(`unknown operator ${op} on ${field}`);
        const bound = `${col} ${sqlOp} ${p.add(this.encode(field, v))}`;
        return sqlOp.startsWith('<') && field !== 'key' ? `${this.notNull(field)} AND ${bound}` : bound;
      })
      .join(' AND ');
  }

  /**
   * The documents past `after` in `sort` order, spelt as the embedded store does
   * (`a <= $1 AND (a < $1 OR ...)`: the leading bound is a range of an index on (..., a, key)).
   */
  after(options: FindOptions, p: Params): string {
    checkAfter(options);
    const { sort, after } = options;
    const past = (i: number): string => {
      const [field, dir] = sort[i]!;
      const [op, orEqual] = dir === 1 ? ['>', '>='] : ['<', '<='];
      const c = this.column(field);
      const v = p.add(this.encode(field, after[i]!));
      // Going down, null would come past any value: SQLite's NULL does not compare, so it does not either.
      const guard = dir === -1 && field !== 'key' ? `${this.notNull(field)} AND ` : '';
      return i === sort.length - 1 ? `${guard}${c} ${op} ${v}` : `${guard}${c} ${orEqual} ${v} AND (${c} ${op} ${v} OR (${past(i + 1)}))`;
    };
    return `(${past(0)})`;
  }

  /** ORDER BY of `sort` (null first going up, as in SQLite: NULL_KEY is the least), then insertion order unless the key already makes it total. */
  orderBy(sort: FindOptions['sort']): string {
    if (!sort?.length) return 'ORDER BY seq';
    const cols = sort.map(([field, dir]) => `${this.column(field)} ${dir === 1 ? 'ASC' : 'DESC'}`);
    return `ORDER BY ${cols.join(', ')}${sort.some(([f]) => f === 'key') ? '' : ', seq'}`;
  }
}
