import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { SqliteStore } from '../../runtime/store/sqlite.js';
import { ROOT, removeDir, tempDir, waitFor } from '../helpers/index.js';
import { storeContract } from './contract.js';

let dir: string;
let store: SqliteStore;

before(async () => {
  dir = await tempDir('sqlite');
  store = new SqliteStore(path.join(dir, 'var', 'lib', 'canopsis.db'));
});
after(async () => {
  await store.close();
  await removeDir(dir);
});

storeContract('embedded (SQLite file)', () => store);

// A writer in another process: increments a counter document in a loop and prints each committed value.
const WRITER = `
import { SqliteStore } from ${JSON.stringify(path.join(ROOT, 'dist', 'runtime', 'store', 'sqlite.js'))};
const s = new SqliteStore(process.env.STORE_FILE);
const c = s.collection('counters');
for (;;) {
  const { doc } = await c.modify('shared', (cur) => ({ n: (cur?.n ?? 0) + 1 }));
  process.stdout.write(doc.n + '\\n');
}
`;

test('embedded: two processes modifying one document lose nothing, and kill -9 keeps every committed write', async () => {
  const file = path.join(dir, 'var', 'lib', 'shared.db');
  const writers = [0, 1].map(() =>
    execa(process.execPath, ['--input-type=module', '-e', WRITER], { reject: false, buffer: true, all: true, env: { STORE_FILE: file } }),
  );
  const outs = ['', ''];
  for (const [i, w] of writers.entries()) w.stdout?.on('data', (d: Buffer) => (outs[i] += d.toString()));
  const lines = (o: string) => o.split('\n').length - 1;
  try {
    // SQLite's lock is not fair: under load one writer may hold it for long stretches, so ask for
    // enough interleaving to race (both committing), not for equal shares.
    await waitFor('both writers committing', async () => outs.every((o) => lines(o) >= 50) && lines(outs.join('')) >= 400, 120_000, 20);
  } finally {
    // Never left running: they loop for ever and would hold the test file open.
    for (const w of writers) w.kill('SIGKILL');
    await Promise.all(writers);
  }
  const committed = outs.flatMap((o) => o.split('\n').filter(Boolean).map(Number));
  const reopened = new SqliteStore(file);
  try {
    const n = (await reopened.collection<{ n: number }>('counters').get('shared'))!.n;
    // Every value a writer saw committed is there, and no two writers got the same value.
    assert.ok(n >= Math.max(...committed), `the file holds ${n}, writers saw up to ${Math.max(...committed)}`);
    assert.equal(new Set(committed).size, committed.length, 'no lost update: every increment got its own value');
  } finally {
    await reopened.close();
  }
});

test("embedded: another connection's write changes the stamp; a reopened connection starts another series", async () => {
  const file = path.join(dir, 'var', 'lib', 'stamped.db');
  const reader = new SqliteStore(file);
  const writer = new SqliteStore(file);
  try {
    const c = reader.collection<{ n: number }>('stamped');
    const before = await c.stamp();
    await writer.collection<{ n: number }>('stamped').put('a', { n: 1 });
    const after = await c.stamp();
    assert.notEqual(after, before, 'a write by another connection (another process alike) is seen');
    assert.equal(await c.stamp(), after);
    // Nothing read on one connection vouches for another: the file may have been replaced meanwhile.
    const again = new SqliteStore(file);
    try {
      assert.notEqual(await again.collection('stamped').stamp(), await c.stamp());
    } finally {
      await again.close();
    }
  } finally {
    await reader.close();
    await writer.close();
  }
});

test('embedded: a shared read gives back the same frozen document while its text is the same', async () => {
  const c = store.collection<{ n: number; tags: string[] }>(`shared_${process.pid}`);
  await c.put('a', { n: 1, tags: ['x'] });
  await c.put('b', { n: 2, tags: ['y'] });
  const [a1, b1] = await c.find({}, { sort: [['key', 1]], shared: true });
  assert.ok(Object.isFrozen(a1) && Object.isFrozen(a1!.tags), 'frozen throughout: a reader cannot change what others read');
  await c.put('b', { n: 3, tags: ['y'] });
  const [a2, b2] = await c.find({}, { sort: [['key', 1]], shared: true });
  assert.equal(a2, a1, 'unchanged: the same object');
  assert.notEqual(b2, b1, 'changed: parsed again');
  assert.equal(b2!.n, 3);
  const [plain] = await c.find({}, { sort: [['key', 1]] });
  assert.ok(plain !== a2 && !Object.isFrozen(plain), 'a plain read is the caller own');
});

test('embedded: a keyset page reads a range of the index, not every row before it (SQLite query plan)', async () => {
  const file = path.join(dir, 'var', 'lib', 'keyset.db');
  const s = new SqliteStore(file);
  const c = s.collection<{ t: number; open?: number }>('alarms');
  await c.ensureIndex(['open', 't', 'key']);
  await c.put('a', { t: 1 });
  await s.close();
  const db = new Database(file, { readonly: true });
  try {
    // The statement the adapter runs for find({open: null}, {sort: [[t, -1], [key, -1]], after: [t, key]}).
    const plan = db
      .prepare(
        "EXPLAIN QUERY PLAN SELECT key, doc FROM c_alarms WHERE json_extract(doc, '$.open') IS NULL AND (json_extract(doc, '$.t') <= ? AND (json_extract(doc, '$.t') < ? OR (key < ?))) ORDER BY json_extract(doc, '$.t') DESC, key DESC LIMIT ? OFFSET ?",
      )
      .all(1, 1, 'a', 50, 0) as Array<{ detail: string }>;
    const text = plan.map((r) => r.detail).join('\n');
    assert.match(text, /USING INDEX c_alarms__open__t__key \(<expr>=\? AND <expr><\?\)/, text);
    assert.doesNotMatch(text, /TEMP B-TREE/, text);
  } finally {
    db.close();
  }
});
