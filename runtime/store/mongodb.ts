import { MongoClient, type Db, type Document, type Filter as MongoFilter, type MongoClientOptions } from 'mongodb';
import { checkField, checkName, StoreError, type Collection, type Filter, type FindOptions, type Store, type Stored } from './types.js';

/*
 * MongoDB through the official driver. Documents keep MongoDB's own
 * ObjectId `_id` and carry our key in an indexed `key` field (unique on a
 * real server); `_v` versions each document so that modify is a
 * compare-and-swap retried on conflict, which works on a standalone server,
 * a replica set or a sharded cluster without transactions.
 */

type Raw = Document & { key: string; _v: number };

const strip = <T>(d: Raw | null): Stored<T> | undefined => {
  if (!d) return undefined;
  const { _id, _v, ...rest } = d;
  return rest as Stored<T>;
};

function toMongo(filter: Filter | undefined): MongoFilter<Document> {
  const out: Record<string, unknown> = {};
  for (const [field, cond] of Object.entries(filter ?? {})) {
    if (field !== 'key') checkField(field);
    out[field] = cond;
  }
  return out;
}

const MAX_CAS_RETRIES = 100;

class MongoCollection<T extends object> implements Collection<T> {
  private indexed = false;

  constructor(private readonly db: Db, private readonly name: string) {
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
    return strip<T>(await this.c.findOne({ key }));
  }

  async put(key: string, doc: T) {
    await this.keyIndex();
    const { key: _k, ...rest } = doc as T & { key?: string };
    const current = await this.c.findOne({ key });
    await this.c.replaceOne({ key }, { ...rest, key, _v: (current?._v ?? 0) + 1 }, { upsert: true });
  }

  async modify(key: string, fn: (current: Stored<T> | undefined) => T | undefined) {
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
    throw new StoreError(`${this.name}/${key}: too much contention (${MAX_CAS_RETRIES} conflicting updates)`);
  }

  async find(filter?: Filter, options: FindOptions = {}) {
    let cursor = this.c.find(toMongo(filter));
    cursor = cursor.sort(options.sort?.length ? Object.fromEntries([...options.sort, ['_id', 1]]) : { _id: 1 });
    if (options.skip) cursor = cursor.skip(options.skip);
    if (options.limit !== undefined) cursor = cursor.limit(options.limit);
    return (await cursor.toArray()).map((d) => strip<T>(d)!);
  }

  async count(filter?: Filter) {
    return this.c.countDocuments(toMongo(filter));
  }

  async delete(filter: Filter) {
    return (await this.c.deleteMany(toMongo(filter))).deletedCount;
  }

  async ensureIndex(fields: string[]) {
    fields.forEach(checkField);
    await this.c.createIndex(Object.fromEntries(fields.map((f) => [f, 1])));
  }
}

export class MongoStore implements Store {
  readonly kind = 'mongodb';
  private readonly collections = new Map<string, MongoCollection<object>>();

  private constructor(private readonly client: MongoClient, private readonly db: Db) {}

  /** Connects (URL with replica set, auth and options as MongoDB takes them). */
  static async connect(url: string, dbName?: string, options: MongoClientOptions = {}): Promise<MongoStore> {
    const client = new MongoClient(url, { serverSelectionTimeoutMS: 10_000, ...options });
    try {
      await client.connect();
    } catch (e) {
      throw new StoreError(`cannot reach MongoDB at ${url.replace(/\/\/[^@/]*@/, '//***@')}: ${(e as Error).message}`);
    }
    return new MongoStore(client, client.db(dbName));
  }

  collection<T extends object>(name: string): Collection<T> {
    let c = this.collections.get(name);
    if (!c) {
      c = new MongoCollection<object>(this.db, name);
      this.collections.set(name, c);
    }
    return c as unknown as Collection<T>;
  }

  async ping() {
    await this.db.command({ ping: 1 });
  }

  async close() {
    await this.client.close();
  }
}
