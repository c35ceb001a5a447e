import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { execa } from 'execa';
import fc from 'fast-check';
import pg from 'pg';
import { openStore, readRuntimeConfig } from '../../runtime/config/runtime.js';
import { layoutOf } from '../../runtime/contract/layout.js';
import { PgStore, pgUnavailable } from '../../runtime/store/postgresql.js';
import { SqliteStore } from '../../runtime/store/sqlite.js';
import { type Filter, type FindOptions, type Scalar, StoreError, StoreUnavailable } from '../../runtime/store/types.js';
import { ROOT, removeDir, tempDir, waitFor } from '../helpers/index.js';
import { alarmsMigrationRoundTrip } from '../installer/alarms-migration-case.js';
import { storeContract } from './contract.js';
import { createTestDatabase, type TestDatabase } from './pg-database.js';

/*
 * The PostgreSQL adapter against the server this machine runs (or
 * CANOPSIS_TEST_POSTGRESQL_URL), in a database made for this run and
 * dropped after it.
 */

let db: TestDatabase;
let store: PgStore;
let dir: string;
let sqlite: SqliteStore;

before(async () => {
  db = await createTestDatabase('store');
  store = await PgStore.connect(db.url);
  dir = await tempDir('pgstore');
  sqlite = new SqliteStore(path.join(dir, 'twin.db'));
});

after(async () => {
  await store?.close();
  await sqlite?.close();
  await db?.drop();
  if (dir) await removeDir(dir);
});

storeContract('postgresql', () => store);

test("postgresql: the 0.4.0 migration reshapes 0.3.0 alarms to Canopsis v4's and back", () => alarmsMigrationRoundTrip(store));

/*
 * The same documents in both stores, the same questions, the same answers: mixed types in one
 * field (numbers, booleans, numeric-looking and case-differing strings, null, missing), where
 * SQLite's rules (numbers below strings, byte order, NULL first) decide.
 */
const VALUES: Array<Scalar | undefined> = [
  -3,
  -0.5,
  0,
  0.5,
  1,
  2,
  10,
  123.25,
  1e15,
  true,
  false,
  null,
  undefined,
  '',
  'a',
  'B',
  'b',
  '10',
  '2',
  'A b',
  'Éa',
  'z%_',
];
const PROBES: Scalar[] = [-1, 0, 0.5, 1, 2, 10, true, false, '', 'a', 'B', 'b', '10', '2', 'é', 'zz'];

async function twins(name: string) {
  const pair = [store.collection<Record<string, unknown>>(name), sqlite.collection<Record<string, unknown>>(name)] as const;
  for (const c of pair) {
    for (const [i, v] of VALUES.entries()) {
      const w = VALUES[(i * 7) % VALUES.length];
      const doc: Record<string, unknown> = { i, n: { x: VALUES[(i * 3) % VALUES.length] } };
      if (v !== undefined) doc.v = v;
      if (w !== undefined) doc.w = w;
      await c.put(`k${String((i * 5) % VALUES.length).padStart(2, '0')}${i % 2 ? 'B' : 'a'}`, doc);
    }
  }
  return pair;
}

const keysOf = (docs: Array<{ key: string }>) => docs.map((d) => d.key);

test('postgresql: mixed-type fields compare, sort and page exactly as in the embedded store (a table of cases)', async () => {
  const [p, s] = await twins('differential');
  const same = async (filter: Filter, options: FindOptions = {}) => {
    const what = `${JSON.stringify(filter)} ${JSON.stringify(options)}`;
    assert.deepEqual(keysOf(await p.find(filter, options)), keysOf(await s.find(filter, options)), what);
    if (!options.after) assert.equal(await p.count(filter), await s.count(filter), `count ${what}`);
  };
  for (const field of ['v', 'n.x']) {
    for (const c of PROBES) {
      await same({ [field]: c });
      await same({ [field]: { $ne: c } });
      for (const op of ['$gt', '$gte', '$lt', '$lte'] as const) if (typeof c !== 'boolean') await same({ [field]: { [op]: c } });
      await same({ [field]: { $in: [c, 'a', null] } });
      if (typeof c === 'string') await same({ [field]: { $contains: c } });
    }
    await same({ [field]: null });
    await same({ [field]: { $ne: null } });
    await same({ [field]: { $exists: true } });
    await same({ [field]: { $exists: false } });
    for (const dir of [1, -1] as const) {
      await same({}, { sort: [[field, dir]] });
      await same({}, { sort: [[field, dir]], skip: 3, limit: 5 });
      await same(
        {},
        {
          sort: [
            [field, dir],
            ['key', -dir as 1 | -1],
          ],
        },
      );
      for (const c of PROBES)
        await same(
          {},
          {
            sort: [
              [field, dir],
              ['key', 1],
            ],
            after: [c, 'k10a'],
          },
        );
    }
  }
  for (const c of ['k05', 'k1', 5, 'K']) {
    await same({ key: c });
    await same({ key: { $gt: c } });
    await same({ key: { $lt: c } });
  }
  await same({ key: { $contains: 'b' } });
  await same({}, { sort: [['key', 1]] });
  await same({});
  await same({ v: { $gte: 0 } }, { sort: [['w', -1]], limit: 7 });
  assert.equal(
    await p.delete({ v: { $lt: 'b' } }, { sort: [['w', 1]], limit: 4 }),
    await s.delete({ v: { $lt: 'b' } }, { sort: [['w', 1]], limit: 4 }),
  );
  await same({}, { sort: [['key', 1]] });
});

const scalar = fc.constantFrom<Scalar>(...PROBES, null);
const bound = fc.constantFrom<number | string>(
  ...(PROBES.filter((x) => typeof x === 'number' || typeof x === 'string') as Array<number | string>),
);
const condition = fc.oneof(
  scalar,
  fc.record({ $in: fc.array(scalar, { maxLength: 3 }) }),
  fc.record({ $ne: scalar }),
  fc.record({ $exists: fc.boolean() }),
  fc.record({ $contains: fc.constantFrom('a', 'B', '1', '', '%', 'é') }),
  fc.record({ $gt: bound, $lte: bound }, { requiredKeys: [] }),
  fc.record({ $gte: bound, $lt: bound }, { requiredKeys: ['$gte'] }),
);
const simple = fc.record({ v: condition, w: condition, 'n.x': condition }, { requiredKeys: [] }) as fc.Arbitrary<Filter>;
const filter = fc
  .tuple(simple, fc.option(fc.array(simple, { maxLength: 2 }), { nil: undefined }))
  .map(([f, or]) => (or ? { ...f, $or: or } : f));
const sort = fc.constantFrom<FindOptions['sort']>(
  undefined,
  [['v', 1]],
  [['w', -1]],
  [
    ['v', -1],
    ['n.x', 1],
  ],
  [
    ['w', 1],
    ['key', -1],
  ],
);

test('postgresql: random filters and sorts find what the embedded store finds (property)', async () => {
  const [p, s] = await twins('property');
  await fc.assert(
    fc.asyncProperty(filter, sort, fc.nat(4), async (f, so, skip) => {
      const options: FindOptions = { ...(so ? { sort: so } : {}), skip, limit: 6 };
      // The same documents, or the same refusal (an empty range).
      const answer = (c: typeof p) =>
        Promise.all([c.find(f, options), c.count(f)]).then(
          ([docs, n]) => ({ keys: keysOf(docs), n }),
          (e: Error) => ({ error: e.message }),
        );
      assert.deepEqual(await answer(p), await answer(s), JSON.stringify([f, options]));
    }),
    { numRuns: 300, seed: 19 },
  );
});

test('postgresql: a keyset page of an index (open, t, key) reads a range of it, sorted by it (query plan)', async () => {
  const c = store.collection<{ t: number; open?: number | null }>('plan_alarms');
  await c.ensureIndex(['open', 't', 'key']);
  for (let i = 0; i < 50; i++) await c.put(`a${i}`, { t: i % 7, open: i % 5 ? null : 1 });
  const client = await store.pool.connect();
  try {
    // The statement find({open: null}, {sort: [[t, -1], [key, -1]], after: [3, 'a30'], limit: 5}) runs.
    const f = store.fields;
    const { Params } = await import('../../runtime/store/postgresql-query.js');
    const ps = new Params();
    const options: FindOptions = {
      sort: [
        ['t', -1],
        ['key', -1],
      ],
      after: [3, 'a30'],
    };
    const where = `${f.conditions({ open: null }, ps)} AND ${f.after(options, ps)}`;
    await client.query('SET enable_seqscan = off');
    const plan = await client.query(
      `EXPLAIN SELECT key, doc FROM "public"."plan_alarms" WHERE ${where} ${f.orderBy(options.sort)} LIMIT 5`,
      ps.values,
    );
    const text = plan.rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN']).join('\n');
    assert.match(text, /Index Scan Backward using _plan_alarms__open__t__key/, text);
    assert.match(text, /Index Cond: .*= '0'.*<=/s, text);
    assert.doesNotMatch(text, /Sort/, text);
  } finally {
    client.release();
  }
});

// A writer in another process: increments a counter document, absent at first, and prints each committed value.
const WRITER = `
import { PgStore } from ${JSON.stringify(path.join(ROOT, 'dist', 'runtime', 'store', 'postgresql.js'))};
const s = await PgStore.connect(process.env.STORE_URL);
const c = s.collection('counters');
for (let i = 0; i < 150; i++) {
  const { doc } = await c.modify('shared', (cur) => ({ n: (cur?.n ?? 0) + 1 }));
  process.stdout.write(doc.n + '\\n');
}
await s.close();
`;

test('postgresql: processes modifying one absent-then-present document lose no update', async () => {
  const writers = [0, 1, 2].map(() =>
    execa(process.execPath, ['--input-type=module', '-e', WRITER], { env: { STORE_URL: db.url }, all: true }),
  );
  const outs = await Promise.all(writers);
  const committed = outs.flatMap((o) => o.stdout.split('\n').filter(Boolean).map(Number));
  assert.equal(committed.length, 450);
  assert.equal(new Set(committed).size, 450, 'every increment got its own value: none lost, none seen twice');
  assert.equal((await store.collection<{ n: number }>('counters').get('shared'))!.n, 450);
});

test("postgresql: another process's write changes the stamp; a collection made again starts another series", async () => {
  const other = await PgStore.connect(db.url);
  try {
    const c = store.collection<{ n: number }>('stamped');
    const before = await c.stamp();
    await other.collection<{ n: number }>('stamped').put('a', { n: 1 });
    const after = await c.stamp();
    assert.notEqual(after, before);
    assert.equal(await c.stamp(), after);
    await store.pool.query('DROP TABLE "public"."stamped"');
    await other.collection<{ n: number }>('stamped').put('a', { n: 1 });
    const again = await c.stamp();
    assert.notEqual(again, after, 'dropped and made again: not the same series, even with as many writes');
    assert.deepEqual(await c.get('a'), { key: 'a', n: 1 });
  } finally {
    await other.close();
  }
});

test('postgresql: a server that does not answer is StoreUnavailable, naming where and what, never the password', async () => {
  const url = 'postgresql://canopsis:s3cret-pw@127.0.0.1:6009/canopsis';
  const e = await PgStore.connect(url, { connectTimeoutMs: 2000 }).then(
    () => assert.fail('connected to a closed port'),
    (err: unknown) => err,
  );
  assert.ok(e instanceof StoreUnavailable, String(e));
  assert.match(e.message, /PostgreSQL at 127\.0\.0\.1:6009\/canopsis: connection refused/);
  assert.doesNotMatch(e.message, /s3cret/);
});

test('postgresql: connections closed by the server (admin shutdown) fail as StoreUnavailable, and the store gets over it', async () => {
  const c = store.collection<{ n: number }>('shutdown');
  await c.put('k', { n: 1 });
  // An admin holds the row, so that the store's modify waits on it with a connection open; another closes that connection.
  const [holder, killer] = [new pg.Client({ connectionString: db.url }), new pg.Client({ connectionString: db.url })];
  await holder.connect();
  await killer.connect();
  try {
    await holder.query('BEGIN');
    await holder.query(`SELECT * FROM "public"."shutdown" WHERE key = 'k' FOR UPDATE`);
    // Its outcome taken at once: the rejection may come before the wait below ends.
    const outcome = c
      .modify('k', (cur) => ({ n: cur!.n + 1 }))
      .then(
        () => assert.fail('the modify went through'),
        (err: unknown) => err,
      );
    await waitFor('the modify waiting on the row', async () => {
      const r = await killer.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'canopsis' AND wait_event_type = 'Lock'`,
      );
      return (r.rowCount ?? 0) > 0;
    });
    const e = await outcome;
    assert.ok(e instanceof StoreUnavailable, String(e));
    assert.match(
      e.message,
      /PostgreSQL at [^ ]+:\d+\/canopsis_test_\w+ \(shutdown\.modify\): the server is shutting down \(admin shutdown\)/,
    );
  } finally {
    await holder.end();
    await killer.end();
  }
  assert.equal((await c.modify('k', (cur) => ({ n: cur!.n + 1 }))).doc!.n, 2, 'the next operation runs on a new connection');
});

test('postgresql: what the server refuses for another reason is a StoreError, not a retry', async () => {
  const c = store.collection<{ s: string }>('refused');
  // PostgreSQL's jsonb holds no \\u0000.
  const e = await c.put('k', { s: 'a\u0000b' }).then(
    () => assert.fail('stored a NUL'),
    (err: unknown) => err,
  );
  assert.ok(e instanceof StoreError && !(e instanceof StoreUnavailable), String(e));
  assert.match(e.message, /refused\.put.*SQLSTATE/);
});

test('postgresql: etc/runtime.conf [store] backend = postgresql opens this store; without a url it says what is missing', async () => {
  const prefix = await tempDir('pgconf');
  try {
    const file = layoutOf(prefix).files.runtime;
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, `[store]\nbackend = postgresql\nurl = ${db.url}\n`);
    const s = await openStore(await readRuntimeConfig(prefix));
    try {
      assert.equal(s.kind, 'postgresql');
      await s.ping();
    } finally {
      await s.close();
    }
    await writeFile(file, '[store]\nbackend = postgresql\n');
    await assert.rejects(readRuntimeConfig(prefix), /\[store\] url is missing for backend postgresql/);
  } finally {
    await removeDir(prefix);
  }
});

test('postgresql: what the operator must mend (a refused login, a missing database, a cancelled statement) waits; a bad statement does not', () => {
  // The server's own errors, as pg raises them: a wrong password cannot be had from this machine's trust-auth server.
  const err = (code: string) => Object.assign(new pg.DatabaseError('from the server', 0, 'error'), { code });
  for (const [code, words] of [
    ['28P01', /login was refused/],
    ['28000', /login was refused/],
    ['3D000', /database does not exist/],
    ['57014', /cancelled/],
    ['58030', /I\/O error/],
    ['08006', /connection failure/],
  ] as const)
    assert.match(pgUnavailable(err(code)) ?? '', words, code);
  for (const code of ['42601', '23505', '22P02']) assert.equal(pgUnavailable(err(code)), undefined, code);
  assert.equal(pgUnavailable(new Error('Query read timeout')), 'connection lost');
});
