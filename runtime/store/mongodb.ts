import {
  type Db,
  type Document,
  MongoClient,
  type MongoClientOptions,
  MongoError,
  type Filter as MongoFilter,
  MongoNetworkError,
  MongoNotConnectedError,
  MongoServerClosedError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
} from 'mongodb';
import {
  COLLECTION_NAME,
  type Collection,
  checkAfter,
  checkField,
  checkName,
  type DeleteOptions,
  type Filter,
  type FindOptions,
  type Store,
  type Stored,
  StoreUnavailable,
} from './types.js';

/*
 * MongoDB through the official driver. Documents keep MongoDB's own
 * ObjectId `_id` and carry our key in an indexed `key` field (unique on a
 * real server); `_v` versions each document so that modify is a
 * compare-and-swap retried on conflict, which works on a standalone server,
 * a replica set or a sharded cluster without transactions.
 *
 * A server that cannot answer now (unreachable, no primary, shutting down,
 * out of disk) raises StoreUnavailable, which the engines retry; the
 * driver itself reconnects.
 */

// Server error codes of "try again later" (the driver's retryable-writes list, plus a full disk):
// HostUnreachable, HostNotFound, NetworkTimeout, ShutdownInProgress, PrimarySteppedDown,
// ExceededTimeLimit, SocketException, NotWritablePrimary, InterruptedAtShutdown,
// InterruptedDueToReplStateChange, NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary, OutOfDiskSpace.
const UNAVAILABLE_CODES = new Set([6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 14031]);
const UNAVAILABLE_LABELS = ['RetryableWriteError', 'TransientTransactionError', 'ResetPool', 'RetryableError', 'SystemOverloadedError'];

/** Whether an error of the mongodb driver means "the server cannot answer now". */
export function mongoUnavailable(e: unknown): boolean {
  if (e instanceof MongoNetworkError || e instanceof MongoServerSelectionError || e instanceof MongoTopologyClosedError) return true;
  if (e instanceof MongoNotConnectedError || e instanceof MongoServerClosedError) return true;
  if (e instanceof MongoServerError && typeof e.code === 'number' && UNAVAILABLE_CODES.has(e.code)) return true;
  return e instanceof MongoError && UNAVAILABLE_LABELS.some((l) => e.hasErrorLabel(l));
}

/** Runs one driver call, turning "cannot answer now" into StoreUnavailable. */
async function guard<R>(what: string, op: () => Promise<R>): Promise<R> {
  try {
    return await op();
  } catch (e) {
    if (mongoUnavailable(e)) throw new StoreUnavailable(`MongoDB ${what}: ${(e as Error).message}`, { cause: e });
    throw e;
  }
}

type Raw = Document & { key: string; _v: number };

const strip = <T>(d: Raw | null): Stored<T> | undefined => {
  if (!d) return undefined;
  const { _id, _v, ...rest } = d;
  return rest as Stored<T>;
};

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function toMongo(filter: Filter | undefined): MongoFilter<Document> {
  const out: Record<string, unknown> = {};
  for (const [field, cond] of Object.entries(filter ?? {})) {
    if (cond === undefined) continue;
    if (field === '$or') {
      const alternatives = (cond as Filter[]).map(toMongo);
      // MongoDB refuses an empty $or; no alternative means nothing matches.
      out.$or = alternatives.length ? alternatives : [{ _id: { $exists: false } }];
      continue;
    }
    if (field !== 'key') checkField(field);
    out[field] =
      cond && typeof cond === 'object' && '$contains' in cond ? { $regex: escapeRegex(String(cond.$contains)), $options: 'i' } : cond;
  }
  return out;
}

/** The documents past `after` in `sort` order: past it on the first field, or equal on it and past it on the next... */
function afterOf(options: FindOptions): MongoFilter<Document> {
  checkAfter(options);
  const { sort, after } = options;
  return {
    $or: sort.map(([field, dir], i) => ({
      ...Object.fromEntries(sort.slice(0, i).map(([f], j) => [f, after[j]])),
      [field]: { [dir === 1 ? '$gt' : '$lt']: after[i] },
    })),
  };
}

const MAX_CAS_RETRIES = 100;

/** The requested order, then insertion order (_id) so that equal keys come back the same way each time. */
const sortOf = (sort: FindOptions['sort']): Record<string, 1 | -1> =>
  sort?.length ? Object.fromEntries([...sort, ['_id', 1]]) : { _id: 1 };

class MongoCollection<T extends object> implements Collection<T> {
  private indexed = false;

  constructor(
    private readonly db: Db,
    private readonly name: string,
  ) {
    checkName(name);
  }

  private get c() {
    return this.db.collection<Raw>(this.name);
  }

  private async keyIndex(): Promise<void> {
    if (this.indexed) return;
    await this.c.createIndex({ key: 1 }, { unique: true, name: 'key_unique' });
    this.indexed = true;
  }

  async get(key: string) {
    return guard(`${this.name}.get`, async () => strip<T>(await this.c.findOne({ key })));
  }

  async put(key: string, doc: T) {
    await guard(`${this.name}.put`, async () => {
      await this.keyIndex();
      const { key: _k, ...rest } = doc as T & { key?: string };
      const current = await this.c.findOne({ key });
      await this.c.replaceOne({ key }, { ...rest, key, _v: (current?._v ?? 0) + 1 }, { upsert: true });
    });
  }

  modify(key: string, fn: (current: Stored<T> | undefined) => T | undefined) {
    return guard(`${this.name}.modify`, () => this.compareAndSwap(key, fn));
  }

  private async compareAndSwap(key: string, fn: (current: Stored<T> | undefined) => T | undefined) {
    await this.keyIndex();
    for (let attempt = 0; attempt < MAX_CAS_RETRIES; attempt++) {
      const raw = await this.c.findOne({ key });
      const current = strip<T>(raw);
      const next = fn(current);
      if (next === undefined) return { doc: current, changed: false };
      const { key: _k, ...rest } = next as T & { key?: string };
      if (!raw) {
        try {
          await this.c.insertOne({ ...rest, key, _v: 1 });
          return { doc: { ...rest, key } as Stored<T>, changed: true };
        } catch (e) {
          if ((e as { code?: number }).code === 11000) continue; // someone else inserted it first
          throw e;
        }
      }
      const r = await this.c.replaceOne({ key, _v: raw._v }, { ...rest, key, _v: raw._v + 1 });
      if (r.matchedCount === 1) return { doc: { ...rest, key } as Stored<T>, changed: true };
    }
    // Passing: as many writers as this on one document at once is a burst, like SQLITE_BUSY.
    throw new StoreUnavailable(`${this.name}/${key}: too much contention (${MAX_CAS_RETRIES} conflicting updates)`);
  }

  async find(filter?: Filter, options: FindOptions = {}) {
    const query = options.after ? { $and: [toMongo(filter), afterOf(options)] } : toMongo(filter);
    return guard(`${this.name}.find`, async () => {
      let cursor = this.c.find(query);
      cursor = cursor.sort(sortOf(options.sort));
      if (options.skip) cursor = cursor.skip(options.skip);
      if (options.limit !== undefined) cursor = cursor.limit(options.limit);
      return (await cursor.toArray()).map((d) => strip<T>(d)!);
    });
  }

  async count(filter?: Filter) {
    const query = toMongo(filter);
    return guard(`${this.name}.count`, () => this.c.countDocuments(query));
  }

  async delete(filter: Filter, options: DeleteOptions = {}) {
    const query = toMongo(filter);
    return guard(`${this.name}.delete`, async () => {
      if (options.limit === undefined) return (await this.c.deleteMany(query)).deletedCount;
      // deleteMany takes no limit: the first ids in order, then those (still matching).
      const ids = await this.c
        .find(query, { projection: { _id: 1 } })
        .sort(sortOf(options.sort))
        .limit(options.limit)
        .toArray();
      if (ids.length === 0) return 0;
      return (await this.c.deleteMany({ $and: [query, { _id: { $in: ids.map((d) => d._id) } }] })).deletedCount;
    });
  }

  async ensureIndex(fields: string[]) {
    fields.forEach(checkField);
    await guard(`${this.name}.ensureIndex`, () => this.c.createIndex(Object.fromEntries(fields.map((f) => [f, 1]))));
  }

  /**
   * None: a standalone server offers no cheap per-collection change counter (change streams need a
   * replica set), and one kept by the writers would cost every write of every engine a round trip.
   */
  async stamp() {
    return undefined;
  }
}

export class MongoStore implements Store {
  readonly kind = 'mongodb';
  private readonly opened = new Map<string, MongoCollection<object>>();

  private constructor(
    private readonly client: MongoClient,
    private readonly db: Db,
  ) {}

  /** Connects (URL with replica set, auth and options as MongoDB takes them). */
  static async connect(url: string, dbName?: string, options: MongoClientOptions = {}): Promise<MongoStore> {
    const client = new MongoClient(url, { serverSelectionTimeoutMS: 10_000, ...options });
    try {
      await client.connect();
    } catch (e) {
      // Whatever the reason (a mongod starting, a network cut, a wrong URL), no event is at fault: the engines retry until it answers.
      throw new StoreUnavailable(`cannot reach MongoDB at ${url.replace(/\/\/[^@/]*@/, '//***@')}: ${(e as Error).message}`, { cause: e });
    }
    return new MongoStore(client, client.db(dbName));
  }

  collection<T extends object>(name: string): Collection<T> {
    let c = this.opened.get(name);
    if (!c) {
      c = new MongoCollection<object>(this.db, name);
      this.opened.set(name, c);
    }
    return c as unknown as Collection<T>;
  }

  async collections() {
    const all = await guard('collections', () => this.db.listCollections({}, { nameOnly: true }).toArray());
    return all
      .map((c) => c.name)
      .filter((n) => COLLECTION_NAME.test(n))
      .sort();
  }

  async ping() {
    await guard('ping', () => this.db.command({ ping: 1 }));
  }

  async close() {
    await this.client.close();
  }
}
