import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import {
  COLLECTION_NAME,
  type Collection,
  type Condition,
  checkAfter,
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
 * Atomic modify is a BEGIN IMMEDIATE transaction. Statements are prepared
 * once per connection: preparing one costs as much as running a small query.
 * A collection's change stamp is a counter that triggers bump on every
 * write, in the writer's own transaction, whichever process writes.
 *
 * A file that cannot be used now (another writer holds it past the busy
 * timeout, it is read-only, gone, full) raises StoreUnavailable, which the
 * engines retry. After a fault that a connection does not get over by
 * itself (read-only, moved, unopenable, I/O), the next operation reopens
 * the file: fixing its owner or mode is then enough, no restart needed.
 */

type Db = Database.Database;

/** Prepared statements kept per connection: a query with an $in list is one per list length. */
const MAX_STATEMENTS = 500;

/** Connections opened by this process. */
let connections = 0;

/** Documents of shared reads kept per collection (the oldest read go first). */
const MAX_SHARED = 10_000;

function deepFreeze<V>(v: V): V {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

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
/** The SQL of a field. The path is inlined (checked by checkField): SQLite only uses an expression
 * index when the query's expression is the same text, literal included. */
const column = (field: string) => (field === 'key' ? 'key' : `json_extract(doc, '${jsonPath(field)}')`);
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
    if (field !== 'key') checkField(field);
    const col = column(field);
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

/**
 * The documents past `after` in `sort` order: past it on the first field, or on it and past it on the rest.
 * Spelt `a <= ? AND (a < ? OR ...)`: SQLite reads the leading bound as a range of an index on (..., a, key)
 * (it does not for a row value over expressions, (a, key) < (?, ?)).
 */
function afterOf(options: FindOptions): { sql: string; params: unknown[] } {
  checkAfter(options);
  const { sort, after } = options;
  for (const [f] of sort) if (f !== 'key') checkField(f);
  const past = (i: number): string => {
    const [field, dir] = sort[i]!;
    const [op, orEqual] = dir === 1 ? ['>', '>='] : ['<', '<='];
    const c = column(field);
    return i === sort.length - 1 ? `${c} ${op} ?` : `${c} ${orEqual} ? AND (${c} ${op} ? OR (${past(i + 1)}))`;
  };
  const values = after.map(sqlValue);
  return { sql: `(${past(0)})`, params: values.flatMap((v, i) => (i === values.length - 1 ? [v] : [v, v])) };
}

function orderBy(sort: FindOptions['sort']): { sql: string; params: unknown[] } {
  if (!sort?.length) return { sql: 'ORDER BY rowid', params: [] };
  const params: unknown[] = [];
  const cols = sort.map(([field, dir]) => {
    if (field !== 'key') checkField(field);
    return `${column(field)} ${dir === 1 ? 'ASC' : 'DESC'}`;
  });
  // key is unique: with it the order is total already, and a trailing rowid would keep an index on (..., key)
  // from serving a descending order (SQLite would sort again).
  return { sql: `ORDER BY ${cols.join(', ')}${sort.some(([f]) => f === 'key') ? '' : ', rowid'}`, params };
}

/** The table of change stamps: one counter per stamped collection. */
const STAMPS = 'store_stamps';

const STAMPED = ['INSERT', 'UPDATE', 'DELETE'];
const stampTrigger = (table: string, op: string) => `${table}__stamp_${op.toLowerCase()}`;

/** The triggers that bump a collection's stamp on each row written or deleted, in the writer's transaction. */
function stampSql(table: string, name: string): string {
  const bump = `BEGIN UPDATE ${STAMPS} SET n = n + 1 WHERE name = '${name}'; END`;
  return [
    `CREATE TABLE IF NOT EXISTS ${STAMPS} (name TEXT PRIMARY KEY NOT NULL, n INTEGER NOT NULL)`,
    `INSERT OR IGNORE INTO ${STAMPS} (name, n) VALUES ('${name}', 0)`,
    ...STAMPED.map((op) => `CREATE TRIGGER IF NOT EXISTS ${stampTrigger(table, op)} AFTER ${op} ON ${table} ${bump}`),
  ].join(';\n');
}

class SqliteCollection<T extends object> implements Collection<T> {
  private readonly table: string;
  /** The connection the table was last made sure of (a reopened file may be a new, empty one). */
  private readyOn: Db | undefined;
  private readonly indexes: string[][] = [];
  private txOn:
    | {
        db: Db;
        tx: Database.Transaction<
          (key: string, fn: (current: Stored<T> | undefined) => T | undefined) => { doc: Stored<T> | undefined; changed: boolean }
        >;
      }
    | undefined;
  /** The connection stamp() last made its triggers on. */
  private stampedOn: Db | undefined;
  /** Documents of shared reads, with the text each was parsed from: the same text is the same document. */
  private readonly shared = new Map<string, { text: string; doc: Stored<T> }>();

  constructor(
    private readonly store: SqliteStore,
    private readonly name: string,
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

  /** The statement of `sql` on the current connection, prepared once. */
  private sql(sql: string): Database.Statement {
    return this.store.statement(this.db, sql);
  }

  private parse(row: { key: string; doc: string } | undefined): Stored<T> | undefined {
    return row ? ({ ...(JSON.parse(row.doc) as T), key: row.key } as Stored<T>) : undefined;
  }

  private parseShared(row: { key: string; doc: string }): Stored<T> {
    const known = this.shared.get(row.key);
    if (known?.text === row.doc) return known.doc;
    const doc = deepFreeze(this.parse(row)!);
    if (!known && this.shared.size >= MAX_SHARED) this.shared.delete(this.shared.keys().next().value!);
    this.shared.set(row.key, { text: row.doc, doc });
    return doc;
  }

  private readRow(key: string) {
    return this.sql(`SELECT key, doc FROM ${this.table} WHERE key = ?`).get(key) as { key: string; doc: string } | undefined;
  }

  private write(key: string, doc: T): void {
    const { key: _drop, ...rest } = doc as T & { key?: string };
    this.sql(`INSERT INTO ${this.table} (key, doc) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET doc = excluded.doc`).run(
      key,
      JSON.stringify(rest),
    );
  }

  async get(key: string) {
    return this.store.run(() => this.parse(this.readRow(key)));
  }

  async put(key: string, doc: T) {
    this.store.run(() => this.write(key, doc));
  }

  async modify(key: string, fn: (current: Stored<T> | undefined) => T | undefined) {
    return this.store.run(() => this.modifyTx(this.db).immediate(key, fn));
  }

  /** The read-change-write of modify as a transaction function of `db`, made once per connection (making one is not free). */
  private modifyTx(db: Db) {
    if (this.txOn?.db !== db) {
      const tx = db.transaction((key: string, fn: (current: Stored<T> | undefined) => T | undefined) => {
        const current = this.parse(this.readRow(key));
        const next = fn(current);
        if (next === undefined) return { doc: current, changed: false };
        this.write(key, next);
        return { doc: { ...next, key } as Stored<T>, changed: true };
      });
      this.txOn = { db, tx };
    }
    return this.txOn.tx;
  }

  async find(filter?: Filter, options: FindOptions = {}) {
    const c = conditions(filter);
    const a = options.after ? afterOf(options) : { sql: '', params: [] };
    const w = [c.sql, a.sql].filter(Boolean).join(' AND ');
    const o = orderBy(options.sort);
    const limit = options.limit ?? -1;
    const rows = this.store.run(
      () =>
        this.sql(`SELECT key, doc FROM ${this.table} ${w ? `WHERE ${w}` : ''} ${o.sql} LIMIT ? OFFSET ?`).all(
          ...c.params,
          ...a.params,
          ...o.params,
          limit,
          options.skip ?? 0,
        ) as Array<{ key: string; doc: string }>,
    );
    return options.shared ? rows.map((r) => this.parseShared(r)) : rows.map((r) => this.parse(r)!);
  }

  async count(filter?: Filter) {
    const w = where(filter);
    return this.store.run(() => (this.sql(`SELECT count(*) AS n FROM ${this.table} ${w.sql}`).get(...w.params) as { n: number }).n);
  }

  async delete(filter: Filter, options: DeleteOptions = {}) {
    const w = where(filter);
    if (options.limit === undefined) return this.store.run(() => this.sql(`DELETE FROM ${this.table} ${w.sql}`).run(...w.params).changes);
    // Ordered by the filtered field, the subquery walks that field's index from its low end.
    const o = orderBy(options.sort);
    const sql = `DELETE FROM ${this.table} WHERE rowid IN (SELECT rowid FROM ${this.table} ${w.sql} ${o.sql} LIMIT ?)`;
    return this.store.run(() => this.sql(sql).run(...w.params, ...o.params, options.limit).changes);
  }

  private indexSql(fields: string[]): string {
    const name = `${this.table}__${fields.join('__').replace(/\./g, '_')}`;
    // Index expressions cannot take parameters: the paths are checked by ensureIndex.
    return `CREATE INDEX IF NOT EXISTS ${name} ON ${this.table} (${fields.map(column).join(', ')})`;
  }

  async ensureIndex(fields: string[]) {
    fields.forEach(checkField);
    const sql = this.indexSql(fields);
    this.store.run(() => this.db.exec(sql));
    if (!this.indexes.some((f) => f.join() === fields.join())) this.indexes.push([...fields]);
  }

  /**
   * The collection's write counter, with the connection it was read on: a reopened file may be another
   * one. The triggers are made on the first call; writes before it were before anything the stamp vouches for.
   * None while they cannot be made (a file this process may only read): reads go on, remembering nothing.
   */
  async stamp() {
    return this.store.run(() => {
      const db = this.db;
      if (this.stampedOn !== db) {
        // Made already (by an earlier run): nothing to write, which a read-only file allows.
        const names = STAMPED.map((op) => stampTrigger(this.table, op));
        const made = this.sql(`SELECT count(*) AS n FROM sqlite_master WHERE type = 'trigger' AND name IN (?, ?, ?)`).get(...names) as {
          n: number;
        };
        if (made.n < names.length) {
          try {
            db.transaction(() => db.exec(stampSql(this.table, this.name))).immediate();
          } catch (e) {
            if (sqliteUnavailable(e)) return undefined;
            throw e;
          }
        }
        this.stampedOn = db;
      }
      const row = this.sql(`SELECT n FROM ${STAMPS} WHERE name = ?`).get(this.name) as { n: number } | undefined;
      return row && `${this.store.generation}:${row.n}`;
    });
  }
}

export class SqliteStore implements Store {
  readonly kind = 'embedded';
  private db: Db | undefined;
  /** Set by a fault the connection keeps: the next operation opens the file again. */
  private stale = false;
  private closed = false;
  private readonly busyTimeoutMs: number;
  private readonly opened = new Map<string, SqliteCollection<object>>();
  /** Prepared statements by SQL text, per connection. */
  private readonly statements = new WeakMap<Db, Map<string, Database.Statement>>();
  /** Which connection of the process this is: a stamp read on one says nothing of another. */
  generation = 0;

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
      // better-sqlite3 builds with a 16 MB page cache per connection; SQLite's own 2 MB serves an engine as fast.
      db.pragma('cache_size = -2000');
      this.generation = ++connections;
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

  /** The statement of `sql` on `db`, prepared on first use; the least recently used go past MAX_STATEMENTS. */
  statement(db: Db, sql: string): Database.Statement {
    let cache = this.statements.get(db);
    if (!cache) {
      cache = new Map();
      this.statements.set(db, cache);
    }
    let s = cache.get(sql);
    if (s) cache.delete(sql);
    else {
      s = db.prepare(sql);
      if (cache.size >= MAX_STATEMENTS) cache.delete(cache.keys().next().value!);
    }
    cache.set(sql, s);
    return s;
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
    let c = this.opened.get(name);
    if (!c) {
      c = new SqliteCollection<object>(this, name);
      this.opened.set(name, c);
    }
    return c as unknown as Collection<T>;
  }

  async collections() {
    const rows = this.run(() => {
      const db = this.connection();
      return this.statement(
        db,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'c\\_%' ESCAPE '\\' ORDER BY name",
      ).all();
    }) as Array<{ name: string }>;
    return rows.map((r) => r.name.slice(2)).filter((n) => COLLECTION_NAME.test(n));
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
