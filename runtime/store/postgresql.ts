import { createHash } from 'node:crypto';
import { DatabaseError, Pool, type PoolClient, type PoolConfig } from 'pg';
import { Fields, functionsSql, ident, internalName, Params, SEARCH_TEXT, SORT_KEY, SORT_NUMBER } from './postgresql-query.js';
import {
  COLLECTION_NAME,
  type Collection,
  checkField,
  checkName,
  type DeleteOptions,
  type Filter,
  type FindOptions,
  type Store,
  type Stored,
  StoreError,
  StoreUnavailable,
} from './types.js';

/*
 * PostgreSQL through node-postgres (pg): a table per collection, named as
 * the collection, in one schema (public unless told otherwise), holding each
 * document as jsonb under its key, with an insertion counter (seq) for the
 * order of an unsorted read, as SQLite's rowid and MongoDB's _id give it.
 * Filters and sorts follow the embedded store's rules (postgresql-query.ts).
 *
 * What the store makes for itself starts with _ (never a collection name):
 * the functions of postgresql-query.ts, the table of change stamps (one row
 * per collection, also the list of collections) and the per-table trigger
 * function that bumps a collection's row in the writer's own transaction,
 * once per statement that wrote or deleted anything. Schema changes take
 * a transaction-scoped advisory lock: engines starting together would
 * otherwise race on CREATE ... IF NOT EXISTS.
 *
 * modify is optimistic: the row is read with its version (xmin) and written
 * back only if the version still holds; an absent key is inserted with ON
 * CONFLICT DO NOTHING; when another process got there first, read again.
 *
 * A server that cannot answer now (refused, reset, shutting down, out of
 * connections or disk, read-only, a serialization failure or deadlock)
 * raises StoreUnavailable, which the engines retry; the pool reconnects.
 */

/**
 * SQLSTATEs of "try again later": whole classes, then single codes. A login
 * or a database refused (a password rotated, pg_hba edited) is the
 * operator's to mend, not an event's fault: the engines wait for it rather
 * than dead-letter every event. https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
const UNAVAILABLE_CLASSES = ['08', '53', '28', '58'];
const UNAVAILABLE_STATES: Record<string, string> = {
  '57P01': 'the server is shutting down (admin shutdown)',
  '57P02': 'the server crashed (crash shutdown)',
  '57P03': 'the server is starting up or shutting down',
  '57P04': 'the database was dropped',
  '57P05': 'the session was closed by the server (idle timeout)',
  '40001': 'a serialization failure',
  '40P01': 'a deadlock',
  '25006': 'the server is read-only (a standby?)',
  '53300': 'too many connections',
  '53100': 'the disk is full',
  '53200': 'out of memory',
  '3D000': 'the database does not exist',
  '57014': 'the statement was cancelled (statement timeout, or pg_cancel_backend)',
  '55P03': 'a lock could not be had',
  XX001: 'data corrupted on the server',
  XX002: 'an index corrupted on the server',
};
const CLASS_WORDS: Record<string, string> = {
  '08': 'connection failure',
  '53': 'out of resources',
  '28': 'the login was refused (password or pg_hba.conf)',
  '58': 'an I/O error on the server',
};
/** What Node's sockets say when the server cannot be reached. */
const NETWORK: Record<string, string> = {
  ECONNREFUSED: 'connection refused (is the server running?)',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  EPIPE: 'connection closed',
  ENOENT: 'no server socket',
};
// pg's own words for a connection that went away or never came (errors without a code).
const LOST = /Connection terminated|timeout exceeded when trying to connect|connection timeout|not queryable|Query read timeout/i;

const codeOf = (e: unknown) =>
  e && typeof e === 'object' && typeof (e as { code?: unknown }).code === 'string' ? (e as { code: string }).code : '';

/** What happened, in words, when it means "the server cannot answer now"; undefined otherwise. */
export function pgUnavailable(e: unknown): string | undefined {
  const code = codeOf(e);
  if (e instanceof DatabaseError) {
    if (UNAVAILABLE_STATES[code]) return UNAVAILABLE_STATES[code];
    if (UNAVAILABLE_CLASSES.includes(code.slice(0, 2))) return CLASS_WORDS[code.slice(0, 2)];
    return undefined;
  }
  if (NETWORK[code]) return NETWORK[code];
  if (e instanceof Error && LOST.test(e.message)) return 'connection lost';
  return undefined;
}

/** Whether the connection is gone (rather than the statement refused): it is closed, not given back to the pool. */
const connectionLost = (e: unknown) => (e instanceof DatabaseError ? /^(08|57P)/.test(codeOf(e)) : pgUnavailable(e) !== undefined);

/** Where the store is, for messages: host, port and database, never the credentials. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    const host = u.searchParams.get('host') ?? (decodeURIComponent(u.hostname) || 'localhost');
    const db = decodeURIComponent(u.pathname.replace(/^\//, '')) || u.searchParams.get('dbname') || '(default database)';
    return `${host.startsWith('/') ? host : `${host}:${u.port || 5432}`}/${db}`;
  } catch {
    return '(an unreadable URL)';
  }
}

/** Serialization failure, deadlock: the transaction rolled back whole and may simply be run again. */
const RETRY = new Set(['40001', '40P01']);
const MAX_TRANSACTION_ATTEMPTS = 10;
/** Inserts of one absent key lost to other processes before modify gives up. */
const MAX_INSERT_RACES = 100;

/**
 * A statement by a name derived from its text: the server parses and plans
 * it once per connection instead of on every call (most of a short
 * statement's cost). Only for the fixed statements of key access, whose
 * texts are few.
 */
const names = new Map<string, string>();
function prepared(text: string, values: unknown[]): { name: string; text: string; values: unknown[] } {
  let name = names.get(text);
  if (!name) {
    name = `cps_${createHash('sha1').update(text).digest('hex').slice(0, 24)}`;
    names.set(text, name);
  }
  return { name, text, values };
}

const STAMPS = '_canopsis_stamps';
const STAMP_TRIGGER = '_canopsis_stamp_v1';
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export interface PgOptions {
  /** The schema of the collections (public). */
  schema?: string;
  /** Connections of this process (4: an engine runs one event at a time, the webserver a few requests). */
  max?: number;
  /** How long getting a connection may take before the store counts as unavailable, ms. */
  connectTimeoutMs?: number;
  /** How long a statement's answer may take before the store counts as unavailable, ms. */
  queryTimeoutMs?: number;
}

class PgCollection<T extends object> implements Collection<T> {
  private readonly table: string;
  private ready: Promise<void> | undefined;
  /** Indexes made sure of by this process. */
  private readonly indexes = new Set<string>();

  constructor(
    private readonly store: PgStore,
    private readonly name: string,
  ) {
    checkName(name);
    this.table = `${ident(store.schema)}.${ident(name)}`;
  }

  /** The table made sure of once per process (a failed try is not remembered). */
  private tableReady(): Promise<void> {
    if (!this.ready) {
      const p = this.store.createCollection(this.name);
      this.ready = p;
      p.catch(() => {
        if (this.ready === p) this.ready = undefined;
      });
    }
    return this.ready;
  }

  /** Runs `op` once the table is there; made again if it went (dropped by hand, a restore). */
  private async withTable<R>(what: string, op: () => Promise<R>): Promise<R> {
    return this.store.guard(`${this.name}.${what}`, async () => {
      await this.tableReady();
      try {
        return await op();
      } catch (e) {
        if (codeOf(e) !== '42P01') throw e;
        this.ready = undefined;
        this.indexes.clear();
        await this.tableReady();
        return op();
      }
    });
  }

  private doc(row: { key: string; doc: T } | undefined): Stored<T> | undefined {
    return row ? ({ ...row.doc, key: row.key } as Stored<T>) : undefined;
  }

  private static body<T>(doc: T): string {
    const { key: _drop, ...rest } = doc as T & { key?: string };
    return JSON.stringify(rest);
  }

  async get(key: string) {
    return this.withTable('get', async () => {
      const r = await this.store.pool.query(prepared(`SELECT key, doc FROM ${this.table} WHERE key = $1`, [key]));
      return this.doc(r.rows[0]);
    });
  }

  async put(key: string, doc: T) {
    await this.withTable('put', () =>
      this.store.pool.query(
        prepared(`INSERT INTO ${this.table} (key, doc) VALUES ($1, $2::jsonb) ON CONFLICT (key) DO UPDATE SET doc = excluded.doc`, [
          key,
          PgCollection.body(doc),
        ]),
      ),
    );
  }

  /**
   * Optimistic: the document is read with its row version (xmin, the
   * transaction that wrote it) and written back only if that version is
   * still the row's; else, or when another process inserted the absent key
   * first, it is read again. Two statements and no transaction of its own,
   * where SELECT ... FOR UPDATE took four round trips and held a lock.
   */
  async modify(key: string, fn: (current: Stored<T> | undefined) => T | undefined) {
    return this.withTable('modify', async () => {
      const pool = this.store.pool;
      for (let attempt = 0; attempt < MAX_INSERT_RACES; attempt++) {
        const r = await pool.query(prepared(`SELECT key, doc, xmin::text AS version FROM ${this.table} WHERE key = $1`, [key]));
        const row = r.rows[0] as { key: string; doc: T; version: string } | undefined;
        const current = this.doc(row);
        const next = fn(current);
        if (next === undefined) return { doc: current, changed: false };
        const body = PgCollection.body(next);
        const written = row
          ? await pool.query(
              prepared(`UPDATE ${this.table} SET doc = $2::jsonb WHERE key = $1 AND xmin::text = $3`, [key, body, row.version]),
            )
          : await pool.query(
              prepared(`INSERT INTO ${this.table} (key, doc) VALUES ($1, $2::jsonb) ON CONFLICT (key) DO NOTHING`, [key, body]),
            );
        if (written.rowCount === 1) return { doc: { ...next, key } as Stored<T>, changed: true };
      }
      throw new StoreUnavailable(`${this.name}/${key}: too much contention (${MAX_INSERT_RACES} writes by others in a row)`);
    });
  }

  async find(filter?: Filter, options: FindOptions = {}) {
    const f = this.store.fields;
    const p = new Params();
    const w = [f.conditions(filter, p), options.after ? f.after(options, p) : ''].filter(Boolean).join(' AND ');
    const sql = `SELECT key, doc FROM ${this.table} ${w ? `WHERE ${w}` : ''} ${f.orderBy(options.sort)} LIMIT ${p.add(options.limit ?? null)} OFFSET ${p.add(options.skip ?? 0)}`;
    return this.withTable('find', async () => (await this.store.pool.query(sql, p.values)).rows.map((r) => this.doc(r)!));
  }

  async count(filter?: Filter) {
    const p = new Params();
    const w = this.store.fields.conditions(filter, p);
    const sql = `SELECT count(*) AS n FROM ${this.table} ${w ? `WHERE ${w}` : ''}`;
    return this.withTable('count', async () => Number((await this.store.pool.query(sql, p.values)).rows[0].n));
  }

  async delete(filter: Filter, options: DeleteOptions = {}) {
    const f = this.store.fields;
    const p = new Params();
    const w = f.conditions(filter, p);
    const where = w ? `WHERE ${w}` : '';
    const sql =
      options.limit === undefined
        ? `DELETE FROM ${this.table} ${where}`
        : `DELETE FROM ${this.table} WHERE key IN (SELECT key FROM ${this.table} ${where} ${f.orderBy(options.sort)} LIMIT ${p.add(options.limit)})`;
    return this.withTable('delete', async () => (await this.store.pool.query(sql, p.values)).rowCount ?? 0);
  }

  async ensureIndex(fields: string[]) {
    fields.forEach(checkField);
    const f = this.store.fields;
    const name = internalName(`${this.name}__${fields.join('__').replace(/\./g, '_')}`);
    if (this.indexes.has(name)) return;
    const sql = `CREATE INDEX IF NOT EXISTS ${ident(name)} ON ${this.table} (${fields.map((x) => f.indexElement(x)).join(', ')})`;
    await this.withTable('ensureIndex', () => this.store.schemaChange(sql, name));
    this.indexes.add(name);
  }

  /** The collection's write counter, with when its row was made: a collection dropped and made again starts another series. */
  async stamp() {
    return this.withTable('stamp', async () => {
      const r = await this.store.pool.query(
        `SELECT n::text AS n, (extract(epoch FROM since) * 1000000)::bigint::text AS since FROM ${ident(this.store.schema)}.${STAMPS} WHERE name = $1`,
        [this.name],
      );
      const row = r.rows[0] as { n: string; since: string } | undefined;
      return row && `${row.since}:${row.n}`;
    });
  }
}

export class PgStore implements Store {
  readonly kind = 'postgresql';
  readonly pool: Pool;
  readonly schema: string;
  readonly fields: Fields;
  /** host:port/database, for messages. */
  readonly where: string;
  private readonly opened = new Map<string, PgCollection<object>>();
  private closed = false;

  private constructor(url: string, options: PgOptions) {
    this.schema = options.schema ?? 'public';
    if (!SCHEMA_NAME.test(this.schema)) throw new StoreError(`bad schema name "${this.schema}"`);
    this.where = describeUrl(url);
    this.fields = new Fields(this.schema);
    const config: PoolConfig = {
      connectionString: url,
      max: options.max ?? 4,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
      idleTimeoutMillis: 30_000,
      // A store host gone without a word (powered off, cut off): noticed in seconds, not after TCP's quarter of an hour.
      query_timeout: options.queryTimeoutMs ?? 60_000,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      application_name: 'canopsis',
    };
    this.pool = new Pool(config);
    // An idle connection the server closed (a restart, an admin shutdown): the pool drops it, the next query opens another.
    this.pool.on('error', () => undefined);
  }

  /**
   * Connects, and makes the store's own functions and stamp table when they are missing. Any failure is
   * StoreUnavailable: whatever the reason (a server starting, a network cut, a wrong password), no event is at fault.
   */
  static async connect(url: string, options: PgOptions = {}): Promise<PgStore> {
    const store = new PgStore(url, options);
    try {
      await store.setUp();
    } catch (e) {
      await store.close();
      throw new StoreUnavailable(`cannot use PostgreSQL at ${store.where}: ${pgUnavailable(e) ?? (e as Error).message}`, { cause: e });
    }
    return store;
  }

  /**
   * Which of `names` are in the schema (tables, indexes, sequences, functions). Read from the catalogs
   * with a plain query: to_regclass and the like go through a cache that taking an advisory lock does
   * not refresh, so under the lock they may still miss what another process has just made.
   */
  private async existing(c: Pool | PoolClient, names: string[]): Promise<Set<string>> {
    const r = await c.query(
      `SELECT relname AS name FROM pg_catalog.pg_class WHERE relnamespace = $1::regnamespace AND relname = ANY($2)
        UNION SELECT proname FROM pg_catalog.pg_proc WHERE pronamespace = $1::regnamespace AND proname = ANY($2)`,
      [ident(this.schema), names],
    );
    return new Set(r.rows.map((row: { name: string }) => row.name));
  }

  private async setUp(): Promise<void> {
    const s = ident(this.schema);
    const ours = [STAMPS, SORT_NUMBER, SORT_KEY, SEARCH_TEXT, STAMP_TRIGGER];
    if ((await this.existing(this.pool, ours)).size === ours.length) return;
    await this.transaction(async (client) => {
      await this.lock(client);
      // Under the lock: another process may have made them meanwhile. All or nothing (DDL is transactional).
      if ((await this.existing(client, ours)).size === ours.length) return;
      for (const sql of [
        ...functionsSql(this.schema),
        `CREATE TABLE ${s}.${STAMPS} (name text COLLATE "C" PRIMARY KEY, n bigint NOT NULL DEFAULT 0, since timestamptz NOT NULL DEFAULT clock_timestamp())`,
        // The rows a statement changed are its transition table, "changed": a statement that changed none leaves the stamp.
        `CREATE FUNCTION ${s}.${STAMP_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN
            IF EXISTS (SELECT 1 FROM changed) THEN UPDATE ${s}.${STAMPS} SET n = n + 1 WHERE name = TG_ARGV[0]; END IF;
            RETURN NULL;
          END $$`,
      ])
        await client.query(sql);
    });
  }

  /** Serialises schema changes of this schema across processes, until the transaction ends. */
  private async lock(client: PoolClient): Promise<void> {
    await client.query("SELECT pg_advisory_xact_lock(hashtext('canopsis store ' || $1))", [this.schema]);
  }

  /** A collection's table, its stamp row and triggers, made in one transaction when the table is missing. */
  async createCollection(name: string): Promise<void> {
    const s = ident(this.schema);
    const table = `${s}.${ident(name)}`;
    const has = async (c: Pool | PoolClient) => (await this.existing(c, [name])).size > 0;
    if (await has(this.pool)) return;
    await this.transaction(async (client) => {
      await this.lock(client);
      if (await has(client)) return;
      await client.query(
        `CREATE TABLE ${table} (
          key text COLLATE "C" NOT NULL,
          doc jsonb NOT NULL,
          seq bigint GENERATED BY DEFAULT AS IDENTITY (SEQUENCE NAME ${s}.${ident(internalName(`${name}_seq`))}),
          CONSTRAINT ${ident(internalName(`${name}_pkey`))} PRIMARY KEY (key))`,
      );
      // A row left by a table dropped since: its series starts again, from another time.
      await client.query(
        `INSERT INTO ${s}.${STAMPS} (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET n = 0, since = clock_timestamp()`,
        [name],
      );
      const events: Array<[string, string]> = [
        ['INSERT', 'NEW'],
        ['UPDATE', 'NEW'],
        ['DELETE', 'OLD'],
      ];
      for (const [op, side] of events)
        await client.query(
          `CREATE TRIGGER stamp_${op.toLowerCase()} AFTER ${op} ON ${table} REFERENCING ${side} TABLE AS changed
            FOR EACH STATEMENT EXECUTE FUNCTION ${s}.${STAMP_TRIGGER}('${name}')`,
        );
    });
  }

  /** A schema change (an index) under the lock, skipped when `name` is there already (its IF NOT EXISTS would still lock the table). */
  async schemaChange(sql: string, name: string): Promise<void> {
    if ((await this.existing(this.pool, [name])).size > 0) return;
    await this.transaction(async (client) => {
      await this.lock(client);
      await client.query(sql);
    });
  }

  /**
   * Runs `op` in a READ COMMITTED transaction on one connection, again from the start after a
   * serialization failure or deadlock (which roll it back whole).
   */
  async transaction<R>(op: (client: PoolClient) => Promise<R>): Promise<R> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      let broken: Error | undefined;
      // The pool listens to idle connections only: one lost while ours (a server shutdown) would emit an unheard 'error', which ends the process.
      const lost = (e: Error) => {
        broken = e;
      };
      client.on('error', lost);
      try {
        await client.query('BEGIN ISOLATION LEVEL READ COMMITTED');
        const r = await op(client);
        await client.query('COMMIT');
        return r;
      } catch (e) {
        if (connectionLost(e)) broken ??= e as Error;
        if (!broken) await client.query('ROLLBACK').catch(() => undefined);
        if (attempt < MAX_TRANSACTION_ATTEMPTS && RETRY.has(codeOf(e))) continue;
        throw e;
      } finally {
        client.off('error', lost);
        // A connection that failed under us is closed rather than handed to the next caller.
        client.release(broken);
      }
    }
  }

  /** Runs one operation, turning "cannot answer now" into StoreUnavailable and the server's other refusals into StoreError. */
  async guard<R>(what: string, op: () => Promise<R>): Promise<R> {
    if (this.closed) throw new StoreError(`PostgreSQL at ${this.where}: the store is closed`);
    try {
      return await op();
    } catch (e) {
      if (e instanceof StoreError) throw e;
      const unavailable = pgUnavailable(e);
      if (unavailable)
        throw new StoreUnavailable(`PostgreSQL at ${this.where} (${what}): ${unavailable}: ${(e as Error).message}`, { cause: e });
      if (e instanceof DatabaseError)
        throw new StoreError(`PostgreSQL at ${this.where} (${what}): ${e.message} (SQLSTATE ${e.code})`, { cause: e });
      throw e;
    }
  }

  collection<T extends object>(name: string): Collection<T> {
    let c = this.opened.get(name);
    if (!c) {
      c = new PgCollection<object>(this, name);
      this.opened.set(name, c);
    }
    return c as unknown as Collection<T>;
  }

  async collections(): Promise<string[]> {
    return this.guard('collections', async () => {
      // The stamp rows of tables that are there (a table dropped by hand leaves its row).
      const r = await this.pool.query(
        `SELECT name FROM ${ident(this.schema)}.${STAMPS} s
          WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relnamespace = $1::regnamespace AND relname = s.name AND relkind = 'r')
          ORDER BY name`,
        [ident(this.schema)],
      );
      return r.rows.map((row: { name: string }) => row.name).filter((n) => COLLECTION_NAME.test(n));
    });
  }

  async ping() {
    await this.guard('ping', () => this.pool.query('SELECT 1'));
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
