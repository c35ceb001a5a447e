import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { checkField, checkName, StoreError, type Collection, type Condition, type Filter, type FindOptions, type Scalar, type Store, type Stored } from './types.js';

/*
 * The embedded store: one SQLite file (better-sqlite3), a table per
 * collection holding each document as JSON under its key. WAL journal: a
 * process killed at any point leaves the last committed state, and several
 * engine processes share the file (writers queue on a busy timeout).
 * Atomic modify is a BEGIN IMMEDIATE transaction.
 */

type Db = Database.Database;

const jsonPath = (field: string) => `$.${field}`;
// SQLite's json_extract turns JSON true/false into 1/0.
const sqlValue = (v: Scalar) => (v === true ? 1 : v === false ? 0 : v);

function where(filter: Filter | undefined): { sql: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  for (const [field, cond] of Object.entries(filter ?? {})) {
    // The path is inlined (checked by checkField): SQLite only uses an expression
    // index when the query's expression is the same text, literal included.
    const col = field === 'key' ? 'key' : (checkField(field), `json_extract(doc, '${jsonPath(field)}')`);
    const colParams: unknown[] = [];
    const c = cond as Condition;
    if (c === null) {
      parts.push(`${col} IS NULL`);
      params.push(...colParams);
    } else if (typeof c !== 'object') {
      parts.push(`${col} = ?`);
      params.push(...colParams, sqlValue(c));
    } else if ('$in' in c) {
      if (c.$in.length === 0) parts.push('0');
      else {
        parts.push(`${col} IN (${c.$in.map(() => '?').join(',')})`);
        params.push(...colParams, ...c.$in.map(sqlValue));
      }
    } else if ('$ne' in c) {
      parts.push(c.$ne === null ? `${col} IS NOT NULL` : `(${col} IS NULL OR ${col} <> ?)`);
      params.push(...colParams, ...(c.$ne === null ? [] : [...colParams, sqlValue(c.$ne)]));
    } else if ('$exists' in c) {
      parts.push(`json_type(doc, '${jsonPath(field)}') IS ${c.$exists ? 'NOT ' : ''}NULL`);
    } else {
      const bounds = Object.entries(c) as Array<[string, number | string]>;
      if (bounds.length === 0) throw new StoreError(`empty condition on ${field}`);
      for (const [op, v] of bounds) {
        const sqlOp = ({ $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' } as Record<string, string>)[op];
        if (!sqlOp) throw new StoreError(`unknown operator ${op} on ${field}`);
        parts.push(`${col} ${sqlOp} ?`);
        params.push(...colParams, v);
      }
    }
  }
  return { sql: parts.length ? `WHERE ${parts.join(' AND ')}` : '', params };
}

function orderBy(sort: FindOptions['sort']): { sql: string; params: unknown[] } {
  if (!sort?.length) return { sql: 'ORDER BY rowid', params: [] };
  const params: unknown[] = [];
  const cols = sort.map(([field, dir]) => {
    if (field === 'key') return `key ${dir === 1 ? 'ASC' : 'DESC'}`;
    checkField(field);
    return `json_extract(doc, '${jsonPath(field)}') ${dir === 1 ? 'ASC' : 'DESC'}`;
  });
  return { sql: `ORDER BY ${cols.join(', ')}, rowid`, params };
}

class SqliteCollection<T extends object> implements Collection<T> {
  private readonly table: string;

  constructor(private readonly db: Db, name: string) {
    checkName(name);
    this.table = `c_${name}`;
    db.exec(`CREATE TABLE IF NOT EXISTS ${this.table} (key TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL)`);
  }

  private parse(row: { key: string; doc: string } | undefined): Stored<T> | undefined {
    return row ? ({ ...(JSON.parse(row.doc) as T), key: row.key } as Stored<T>) : undefined;
  }

  private readRow(key: string) {
    return this.db.prepare(`SELECT key, doc FROM ${this.table} WHERE key = ?`).get(key) as { key: string; doc: string } | undefined;
  }

  private write(key: string, doc: T): void {
    const { key: _drop, ...rest } = doc as T & { key?: string };
    this.db.prepare(`INSERT INTO ${this.table} (key, doc) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET doc = excluded.doc`).run(key, JSON.stringify(rest));
  }

  async get(key: string) {
    return this.parse(this.readRow(key));
  }

  async put(key: string, doc: T) {
    this.write(key, doc);
  }

  async modify(key: string, fn: (current: Stored<T> | undefined) => T | undefined) {
    const tx = this.db.transaction(() => {
      const current = this.parse(this.readRow(key));
      const next = fn(current);
      if (next === undefined) return { doc: current, changed: false };
      this.write(key, next);
      return { doc: { ...next, key } as Stored<T>, changed: true };
    });
    return tx.immediate();
  }

  async find(filter?: Filter, options: FindOptions = {}) {
    const w = where(filter);
    const o = orderBy(options.sort);
    const limit = options.limit ?? -1;
    const rows = this.db
      .prepare(`SELECT key, doc FROM ${this.table} ${w.sql} ${o.sql} LIMIT ? OFFSET ?`)
      .all(...w.params, ...o.params, limit, options.skip ?? 0) as Array<{ key: string; doc: string }>;
    return rows.map((r) => this.parse(r)!);
  }

  async count(filter?: Filter) {
    const w = where(filter);
    return (this.db.prepare(`SELECT count(*) AS n FROM ${this.table} ${w.sql}`).get(...w.params) as { n: number }).n;
  }

  async delete(filter: Filter) {
    const w = where(filter);
    return this.db.prepare(`DELETE FROM ${this.table} ${w.sql}`).run(...w.params).changes;
  }

  async ensureIndex(fields: string[]) {
    fields.forEach(checkField);
    const name = `${this.table}__${fields.join('__').replace(/\./g, '_')}`;
    // Index expressions cannot take parameters: the paths are checked above.
    this.db.exec(`CREATE INDEX IF NOT EXISTS ${name} ON ${this.table} (${fields.map((f) => `json_extract(doc, '${jsonPath(f)}')`).join(', ')})`);
  }
}

export class SqliteStore implements Store {
  readonly kind = 'embedded';
  private readonly db: Db;
  private readonly collections = new Map<string, SqliteCollection<object>>();

  constructor(readonly file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
    try {
      this.db = new Database(file);
    } catch (e) {
      throw new StoreError(`${file}: cannot open the embedded store (${(e as Error).message})`);
    }
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 10000');
  }

  collection<T extends object>(name: string): Collection<T> {
    let c = this.collections.get(name);
    if (!c) {
      c = new SqliteCollection<object>(this.db, name);
      this.collections.set(name, c);
    }
    return c as unknown as Collection<T>;
  }

  async ping() {
    this.db.prepare('SELECT 1').get();
  }

  async close() {
    this.db.close();
  }
}
