import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import {
  type Collection,
  type Condition,
  checkField,
  checkName,
  type DeleteOptions,
  type Filter,
  type FindOptions,
  type Scalar,
  type Store,
  type Stored,
  StoreError,
  StoreUnavailable,
} from './types.js';

/*
 * The embedded store: one SQLite file (better-sqlite3), a table per
 * collection holding each document as JSON under its key. WAL journal: a
 * process killed at any point leaves the last committed state, and several
 * engine processes share the file (writers queue on a busy timeout).
 * Atomic modify is a BEGIN IMMEDIATE transaction.
 *
 * A file that cannot be used now (another writer holds it past the busy
 * timeout, it is read-only, gone, full) raises StoreUnavailable, which the
 * engines retry. After a fault that a connection does not get over by
 * itself (read-only, moved, unopenable, I/O), the next operation reopens
 * the file: fixing its owner or mode is then enough, no restart needed.
 */

type Db = Database.Database;

/** How long a writer waits for another one before SQLITE_BUSY, ms (the store's busy_timeout setting). */
export const DEFAULT_BUSY_TIMEOUT_MS = 10_000;

export interface SqliteOptions {
  busyTimeoutMs?: number;
}

// Primary result codes (extended ones start with them: SQLITE_READONLY_DBMOVED, SQLITE_IOERR_WRITE...)
// meaning the file is there but not usable now. https://sqlite.org/rescode.html
const UNAVAILABLE = [
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  'SQLITE_READONLY',
  'SQLITE_CANTOPEN',
  'SQLITE_IOERR',
  'SQLITE_FULL',
  'SQLITE_PROTOCOL',
  'SQLITE_NOMEM',
];
// Of those, the ones an open connection keeps: a read-only open stays read-only after a chown.
const REOPEN = ['SQLITE_READONLY', 'SQLITE_CANTOPEN', 'SQLITE_IOERR'];
// What the file system answers when the store's directory or file cannot be created or opened.
const FS_UNAVAILABLE = ['EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'EIO', 'EDQUOT', 'EBUSY'];

const codeOf = (e: unknown) =>
  e && typeof e === 'object' && typeof (e as { code?: unknown }).code === 'string' ? (e as { code: string }).code : '';
const isCode = (code: string, list: string[]) => list.some((c) => code === c || code.startsWith(`${c}_`));

/** Whether an error from better-sqlite3 (or the file system under it) means "the store cannot answer now". */
export function sqliteUnavailable(e: unknown): boolean {
  const code = codeOf(e);
  return e instanceof Database.SqliteError ? isCode(code, UNAVAILABLE) : FS_UNAVAILABLE.includes(code);
}

const jsonPath = (field: string) => `$.${field}`;
// SQLite's json_extract turns JSON true/false into 1/0.
const sqlValue = (v: Scalar) => (v === true ? 1 : v === false ? 0 : v);

function where(filter: Filter | undefined): { sql: string; params: unknown[] } {
  const { sql, params } = conditions(filter);
  return { sql: sql ? `WHERE ${sql}` : '', params };
}

function conditions(filter: Filter | undefined): { sql: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  for (const [field, cond] of Object.entries(filter ?? {})) {
    if (cond === undefined) continue;
    if (field === '$or') {
      const alternatives = (cond as Filter[]).map(conditions);
      parts.push(alternatives.length ? `(${alternatives.map((a) => `(${a.sql || '1'})`).join(' OR ')})` : '0');
      for (const a of alternatives) params.push(...a.params);
      continue;
    }
    // The path is inlined (checked by checkField): SQLite only uses an expression
    // index when the query's expression is the same text, literal included.
    if (field !== 'key') checkField(field);
    const col = field === 'key' ? 'key' : `json_extract(doc, '${jsonPath(field)}')`;
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
    } else if ('$contains' in c) {
      parts.push(`instr(lower(${col}), lower(?)) > 0`);
      params.push(String(c.$contains));
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
  return { sql: parts.join(' AND '), params };
}

function orderBy(sort: FindOptions['sort']): { sql: string; params: unknown[] } {
  if (!sort?.length) return { sql: 'ORDER BY rowid', params: [] };
  const params: unknown[] = [];
  const cols = sort.map(([field, dir]) => {
    if (field === 'key') return `key ${dir === 1 ? 'ASC' : 'DESC'}`;
    checkField(field);
    return `json_extract(doc, '${jsonPath(field)}') ${dir === 1 ? 'ASC' : 'DESC'}`;
  });
  // key is unique: with it the order is total already, and a trailing rowid would keep an index on (..., key)
  // from serving a descending order (SQLite would sort again).
  return { sql: `ORDER BY ${cols.join(', ')}${sort.some(([f]) => f === 'key') ? '' : ', rowid'}`, params };
}

class SqliteCollection<T extends object> implements Collection<T> {
  private readonly table: string;
  /** The connection the table was last made sure of (a reopened file may be a new, empty one). */
  private readyOn: Db | undefined;
  private readonly indexes: string[][] = [];

  constructor(
    private readonly store: SqliteStore,
    name: string,
  ) {
    checkName(name);
    this.table = `c_${name}`;
  }

  /** The current connection, with this collection's table and indexes on it. */
  private get db(): Db {
    const db = this.store.connection();
    if (this.readyOn !== db) {
      db.exec(`CREATE TABLE IF NOT EXISTS ${this.table} (key TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL)`);
      for (const fields of this.indexes) db.exec(this.indexSql(fields));
      this.readyOn = db;
    }
    return db;
  }

  private parse(row: { key: string; doc: string } | undefined): Stored<T> | undefined {
    return row ? ({ ...(JSON.parse(row.doc) as T), key: row.key } as Stored<T>) : undefined;
  }

  private readRow(db: Db, key: string) {
    return db.prepare(`SELECT key, doc FROM ${this.table} WHERE key = ?`).get(key) as { key: string; doc: string } | undefined;
  }

  private write(db: Db, key: string, doc: T): void {
    const { key: _drop, ...rest } = doc as T & { key?: string };
    db.prepare(`INSERT INTO ${this.table} (key, doc) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET doc = excluded.doc`).run(
      key,
      JSON.stringify(rest),
    );
  }

  async get(key: string) {
    return this.store.run(() => this.parse(this.readRow(this.db, key)));
  }

  async put(key: string, doc: T) {
    this.store.run(() => this.write(this.db, key, doc));
  }

  async modify(key: string, fn: (current: Stored<T> | undefined) => T | undefined) {
    return this.store.run(() => {
      const db = this.db;
      const tx = db.transaction(() => {
        const current = this.parse(this.readRow(db, key));
        const next = fn(current);
        if (next === undefined) return { doc: current, changed: false };
        this.write(db, key, next);
        return { doc: { ...next, key } as Stored<T>, changed: true };
      });
      return tx.immediate();
    });
  }

  async find(filter?: Filter, options: FindOptions = {}) {
    const w = where(filter);
    const o = orderBy(options.sort);
    const limit = options.limit ?? -1;
    const rows = this.store.run(
      () =>
        this.db
          .prepare(`SELECT key, doc FROM ${this.table} ${w.sql} ${o.sql} LIMIT ? OFFSET ?`)
          .all(...w.params, ...o.params, limit, options.skip ?? 0) as Array<{ key: string; doc: string }>,
    );
    return rows.map((r) => this.parse(r)!);
  }

  async count(filter?: Filter) {
    const w = where(filter);
    return this.store.run(() => (this.db.prepare(`SELECT count(*) AS n FROM ${this.table} ${w.sql}`).get(...w.params) as { n: number }).n);
  }

  async delete(filter: Filter, options: DeleteOptions = {}) {
    const w = where(filter);
    if (options.limit === undefined)
      return this.store.run(() => this.db.prepare(`DELETE FROM ${this.table} ${w.sql}`).run(...w.params).changes);
    // Ordered by the filtered field, the subquery walks that field's index from its low end.
    const o = orderBy(options.sort);
    const sql = `DELETE FROM ${this.table} WHERE rowid IN (SELECT rowid FROM ${this.table} ${w.sql} ${o.sql} LIMIT ?)`;
    return this.store.run(() => this.db.prepare(sql).run(...w.params, ...o.params, options.limit).changes);
  }

  private indexSql(fields: string[]): string {
    const name = `${this.table}__${fields.join('__').replace(/\./g, '_')}`;
    // Index expressions cannot take parameters: the paths are checked by ensureIndex.
    return `CREATE INDEX IF NOT EXISTS ${name} ON ${this.table} (${fields.map((f) => (f === 'key' ? 'key' : `json_extract(doc, '${jsonPath(f)}')`)).join(', ')})`;
  }

  async ensureIndex(fields: string[]) {
    fields.forEach(checkField);
    const sql = this.indexSql(fields);
    this.store.run(() => this.db.exec(sql));
    if (!this.indexes.some((f) => f.join() === fields.join())) this.indexes.push([...fields]);
  }
}

export class SqliteStore implements Store {
  readonly kind = 'embedded';
  private db: Db | undefined;
  /** Set by a fault the connection keeps: the next operation opens the file again. */
  private stale = false;
  private closed = false;
  private readonly busyTimeoutMs: number;
  private readonly collections = new Map<string, SqliteCollection<object>>();

  /** Opens the file now, so that a store that cannot be opened says so at once (StoreUnavailable). */
  constructor(
    readonly file: string,
    options: SqliteOptions = {},
  ) {
    this.busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    this.db = this.open();
  }

  private open(): Db {
    let db: Db | undefined;
    try {
      mkdirSync(path.dirname(this.file), { recursive: true });
      db = new Database(this.file);
      // Before anything that may wait on another writer.
      db.pragma(`busy_timeout = ${Math.round(this.busyTimeoutMs)}`);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      return db;
    } catch (e) {
      db?.close();
      // Whatever the reason (owner, mode, a full disk, not a database), no event is at fault: the engines retry until it opens.
      throw new StoreUnavailable(`${this.file}: cannot open the embedded store (${(e as Error).message})`, { cause: e });
    }
  }

  /** The open connection, reopened first after a fault that needs it. */
  connection(): Db {
    if (this.closed) throw new StoreError(`${this.file}: the store is closed`);
    if (this.stale || !this.db) {
      const old = this.db;
      this.db = undefined;
      try {
        old?.close();
      } catch {
        // a broken connection may refuse to close cleanly; it is dropped either way
      }
      this.db = this.open();
      this.stale = false;
    }
    return this.db;
  }

  /** Runs one operation, turning "cannot answer now" into StoreUnavailable (and marking the connection for a reopen when it will not recover). */
  run<R>(op: () => R): R {
    try {
      return op();
    } catch (e) {
      if (e instanceof StoreUnavailable || !sqliteUnavailable(e)) throw e;
      if (isCode(codeOf(e), REOPEN)) this.stale = true;
      throw new StoreUnavailable(`${this.file}: ${(e as Error).message} (${codeOf(e)})`, { cause: e });
    }
  }

  collection<T extends object>(name: string): Collection<T> {
    let c = this.collections.get(name);
    if (!c) {
      c = new SqliteCollection<object>(this, name);
      this.collections.set(name, c);
    }
    return c as unknown as Collection<T>;
  }

  async ping() {
    this.run(() => this.connection().prepare('SELECT 1').get());
  }

  async close() {
    this.closed = true;
    this.db?.close();
    this.db = undefined;
  }
}
