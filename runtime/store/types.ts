/*
 * The store: named collections of JSON documents addressed by a string key,
 * with field queries, indexes, an atomic read-modify-write of one document
 * and explicit expiry. Three adapters implement it (embedded SQLite, MongoDB,
 * PostgreSQL); one contract suite (test/store/contract.ts) holds them to the same rules.
 */

export type Scalar = string | number | boolean | null;

/** Equality, or one operator, per field (dotted paths reach nested fields). */
/** A range may combine bounds: { $gte: 10, $lt: 20 }. */
export type Range = Partial<Record<'$gt' | '$gte' | '$lt' | '$lte', number | string>>;
/** `$contains`: a case-insensitive substring of a string field (ASCII case folding, the same on every backend). */
export type Condition = Scalar | { $in: Scalar[] } | { $ne: Scalar } | { $exists: boolean } | { $contains: string } | Range;
/** Every field's condition holds; `$or`, when given, also needs one of its filters to hold. */
export type Filter = { [field: string]: Condition | Filter[] | undefined; $or?: Filter[] };

export interface FindOptions {
  sort?: Array<[string, 1 | -1]>;
  /**
   * Keyset paging: only the documents past this point of `sort`, given as the
   * values of the sort fields of the last document already read (`skip`
   * then counts from there). `sort` must be a total order, ending with
   * `key`, on fields every matching document has (a missing or null value
   * does not compare: such a document would be left out).
   */
  after?: Scalar[];
  skip?: number;
  limit?: number;
  /**
   * The caller only reads what it finds: a document unchanged since an
   * earlier shared read may come back as the very (frozen) object that read
   * returned, which spares decoding it again.
   */
  shared?: boolean;
}

export interface DeleteOptions {
  sort?: FindOptions['sort'];
  limit?: number;
}

/** A stored document always carries its key. */
export type Stored<T> = T & { key: string };

export interface Collection<T extends object> {
  get(key: string): Promise<Stored<T> | undefined>;
  /** Inserts or replaces the document under `key`. */
  put(key: string, doc: T): Promise<void>;
  /**
   * Atomic read-modify-write of one document: `fn` sees the current document
   * (or undefined) and returns the new one, or undefined to leave it as it
   * is. Concurrent modifies of one key (other processes included) never lose
   * an update. `fn` must be pure: it may run more than once.
   */
  modify(key: string, fn: (current: Stored<T> | undefined) => T | undefined): Promise<{ doc: Stored<T> | undefined; changed: boolean }>;
  find(filter?: Filter, options?: FindOptions): Promise<Array<Stored<T>>>;
  count(filter?: Filter): Promise<number>;
  /**
   * Deletes matching documents; returns how many. With `limit`, only the
   * first ones in `sort` order go: a large deletion done in bounded batches.
   */
  delete(filter: Filter, options?: DeleteOptions): Promise<number>;
  /** Speeds up queries on these fields (idempotent). */
  ensureIndex(fields: string[]): Promise<void>;
  /**
   * A change stamp: a value that differs whenever a document of the
   * collection may have been written or deleted since the stamp was read, by
   * any process. Read it before what it vouches for: what was read after an
   * unchanged stamp is still true. Undefined: this backend cannot tell, and
   * nothing read from it may be remembered.
   */
  stamp(): Promise<string | undefined>;
}

export interface Store {
  readonly kind: 'embedded' | 'mongodb' | 'postgresql';
  collection<T extends object>(name: string): Collection<T>;
  /**
   * The names of the collections there are, sorted: every one ever written to (an adapter may also
   * list one that was only read or indexed, empty). What a copy of the whole store goes through.
   */
  collections(): Promise<string[]>;
  /** Resolves when the store answers (healthcheck). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export class StoreError extends Error {}

/**
 * The store is there but cannot answer now: busy or locked by another
 * writer, read-only, unopenable, out of space, unreachable. The operation
 * did nothing (or its transaction rolled back) and may be tried again; an
 * engine retries the event instead of dead-lettering it. `transient` is
 * the mark the engine reads (docs/runtime.md), so that plugins can throw
 * their own.
 */
export class StoreUnavailable extends StoreError {
  readonly transient = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailable';
  }
}

export const COLLECTION_NAME = /^[a-z][a-z0-9_]{0,62}$/;
export const FIELD_PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

export function checkName(name: string): void {
  if (!COLLECTION_NAME.test(name)) throw new StoreError(`bad collection name "${name}" (lowercase letters, digits, _)`);
}

export function checkField(field: string): void {
  if (!FIELD_PATH.test(field)) throw new StoreError(`bad field path "${field}"`);
}

/** `after` names a point of a total order: one value, never null, per sort field, the last being the key. */
export function checkAfter(options: FindOptions): asserts options is FindOptions & { sort: Array<[string, 1 | -1]>; after: Scalar[] } {
  const { sort, after } = options;
  if (!sort?.length || sort.at(-1)![0] !== 'key') throw new StoreError('after: the sort must end with key (a total order)');
  if (!after || after.length !== sort.length) throw new StoreError(`after: one value per sort field (${sort.length})`);
  if (after.some((v) => v === null || v === undefined)) throw new StoreError('after: a null value does not compare');
}
