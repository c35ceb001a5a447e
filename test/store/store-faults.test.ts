import assert from 'node:assert/strict';
import { chown, writeFile } from 'node:fs/promises';
import type { AddressInfo, Server } from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { MongoStore } from '../../runtime/store/mongodb.js';
import { SqliteStore } from '../../runtime/store/sqlite.js';
import { StoreError, StoreUnavailable } from '../../runtime/store/types.js';
import { ROOT, removeDir, tempDir, waitFor } from '../helpers/index.js';

/*
 * The adapters mark a store that cannot answer now with StoreUnavailable
 * (what the engines retry) and get over it by themselves: a lock released,
 * a file made writable, a server back. Real SQLite files and a real MongoDB
 * wire server (CongoDB, as in mongodb.test.ts) stopped and started again.
 */

let dir: string;

before(async () => {
  dir = await tempDir('storefaults');
});
after(async () => {
  await removeDir(dir);
});

const rejectsUnavailable = async (p: Promise<unknown>, code?: RegExp) => {
  const e = await p.then(
    () => assert.fail('expected StoreUnavailable'),
    (err: unknown) => err,
  );
  assert.ok(e instanceof StoreUnavailable, `StoreUnavailable, got ${String(e)}`);
  if (code) assert.match(String((e.cause as { code?: string } | undefined)?.code), code);
  return e;
};

test('SQLite held by another writer past busy_timeout: StoreUnavailable (SQLITE_BUSY) after the timeout, and writes again once it commits', async () => {
  const file = path.join(dir, 'busy.db');
  const store = new SqliteStore(file, { busyTimeoutMs: 300 });
  const c = store.collection<{ n: number }>('things');
  await c.put('a', { n: 1 });
  const other = new Database(file);
  try {
    other.exec('BEGIN EXCLUSIVE');
    const t0 = performance.now();
    const e = await rejectsUnavailable(c.put('a', { n: 2 }), /^SQLITE_BUSY/);
    const waited = performance.now() - t0;
    assert.ok(waited >= 250 && waited < 3000, `waited the busy timeout (${Math.round(waited)} ms)`);
    assert.match(e.message, /busy\.db: database is locked \(SQLITE_BUSY\)/);
    await rejectsUnavailable(
      c.modify('a', () => ({ n: 3 })),
      /^SQLITE_BUSY/,
    );
    assert.deepEqual(await c.get('a'), { key: 'a', n: 1 }, 'readers still read (WAL)');
    other.exec('COMMIT');
    await c.modify('a', (cur) => ({ n: (cur?.n ?? 0) + 10 }));
    assert.deepEqual(await c.get('a'), { key: 'a', n: 11 });
  } finally {
    other.close();
    await store.close();
  }
});

test('SQLite: a change stamp that cannot be set up now (the file locked past busy_timeout) is none, and reads go on', async () => {
  const file = path.join(dir, 'stamp.db');
  const store = new SqliteStore(file, { busyTimeoutMs: 200 });
  const c = store.collection<{ n: number }>('things');
  await c.put('a', { n: 1 });
  const other = new Database(file);
  try {
    other.exec('BEGIN EXCLUSIVE');
    assert.equal(await c.stamp(), undefined, 'no stamp: a reader remembers nothing');
    assert.deepEqual(await c.find({}, { shared: true }), [{ key: 'a', n: 1 }]);
    other.exec('COMMIT');
    const stamp = await c.stamp();
    assert.ok(stamp !== undefined, 'set up once the file can be written');
    await c.put('a', { n: 2 });
    assert.notEqual(await c.stamp(), stamp);
  } finally {
    other.close();
    await store.close();
  }
});

// Run as another user: opens the store, writes, says how it went, waits for the test's go, writes again.
const AS_SERVICE_USER = `
import { existsSync } from 'node:fs';
import { SqliteStore } from ${JSON.stringify(path.join(ROOT, 'dist', 'runtime', 'store', 'sqlite.js'))};
const say = (what) => process.stdout.write(JSON.stringify(what) + '\\n');
const attempt = async (c) => c.put('x', { n: 1 }).then(() => ({ ok: true }), (e) => ({ ok: false, name: e.name, code: e.cause?.code }));
const store = new SqliteStore(process.env.STORE_FILE, { busyTimeoutMs: 200 });
const c = store.collection('things');
say(await attempt(c));
while (!existsSync(process.env.GO)) await new Promise((r) => setTimeout(r, 20));
say(await attempt(c));
await store.close();
`;

test('SQLite file the service user cannot write (root-owned, 0644): StoreUnavailable (SQLITE_READONLY); after a chown the same store writes, no restart', {
  skip: process.getuid?.() !== 0 ? 'needs root to act as another user' : false,
}, async () => {
  const NOBODY = 65534;
  const home = path.join(dir, 'ro');
  const file = path.join(home, 'canopsis.db');
  const seed = new SqliteStore(file);
  await seed.collection('things').put('seed', { n: 0 });
  await seed.close();
  // The directory is the service user's (so SQLite can make its -wal and -shm), the file root's.
  await chown(home, NOBODY, NOBODY);
  const go = path.join(dir, 'ro-go');
  const child = execa(process.execPath, ['--input-type=module', '-e', AS_SERVICE_USER], {
    uid: NOBODY,
    gid: NOBODY,
    reject: false,
    all: true,
    env: { STORE_FILE: file, GO: go },
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const lines = () =>
    out
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { ok: boolean; name?: string; code?: string });
  const first = await waitFor('the first write', async () => lines()[0], 20_000, 20);
  assert.deepEqual(first, { ok: false, name: 'StoreUnavailable', code: 'SQLITE_READONLY' });
  await chown(file, NOBODY, NOBODY);
  await writeFile(go, '');
  const second = await waitFor('the second write', async () => lines()[1], 20_000, 20);
  const r = await child;
  assert.deepEqual(second, { ok: true }, String(r.all));
});

test('SQLite that cannot be opened: StoreUnavailable naming the file; our own errors stay StoreError; a task error inside modify passes through', async () => {
  const blocker = path.join(dir, 'not-a-dir');
  await writeFile(blocker, 'a file where the store directory should be');
  assert.throws(
    () => new SqliteStore(path.join(blocker, 'canopsis.db')),
    (e: unknown) => e instanceof StoreUnavailable && /not-a-dir\/canopsis\.db: cannot open the embedded store/.test(e.message),
  );
  const store = new SqliteStore(path.join(dir, 'ok.db'));
  const c = store.collection<{ n: number }>('things');
  await assert.rejects(c.find({ 'bad..path': 1 }), (e: unknown) => e instanceof StoreError && !(e instanceof StoreUnavailable));
  const bug = new TypeError('a bug in the reducer');
  await assert.rejects(
    c.modify('x', () => {
      throw bug;
    }),
    (e: unknown) => e === bug,
  );
  await store.close();
});

test('MongoDB: an unreachable server is StoreUnavailable; a server that stops and comes back is retried through', async () => {
  const { CongoServer } = await import('@push.rocks/smartmongo/dist_ts/congodb/index.js');
  const listen = async (port: number) => {
    const server = new CongoServer({ host: '127.0.0.1', port });
    await server.start();
    return { server, port: ((server as unknown as { server: Server }).server.address() as AddressInfo).port };
  };
  let { server, port } = await listen(0);
  const url = `mongodb://127.0.0.1:${port}/?directConnection=true&serverMonitoringMode=poll`;
  const store = await MongoStore.connect(url, `faults_${process.pid}`, { serverSelectionTimeoutMS: 500 });
  try {
    const c = store.collection<{ n: number }>('things');
    await c.put('a', { n: 1 });
    await server.stop();
    await rejectsUnavailable(c.put('b', { n: 2 }));
    await rejectsUnavailable(c.find({}));
    ({ server } = await listen(port));
    // The driver reconnects by itself: the same store object answers again.
    await waitFor(
      'the store to answer again',
      async () =>
        await c.put('b', { n: 2 }).then(
          () => true,
          () => false,
        ),
      20_000,
      200,
    );
    assert.deepEqual(await c.get('b'), { key: 'b', n: 2 });
  } finally {
    await store.close();
    await server.stop();
  }
  const e = await MongoStore.connect(url, 'x', { serverSelectionTimeoutMS: 300 }).then(
    () => undefined,
    (err: unknown) => err,
  );
  assert.ok(e instanceof StoreUnavailable, 'nobody listening: StoreUnavailable');
  assert.match(e.message, /cannot reach MongoDB at mongodb:\/\/127\.0\.0\.1:\d+/);
});
