import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { pruneBefore } from '../../runtime/store/prune.js';
import { SqliteStore } from '../../runtime/store/sqlite.js';
import { removeDir, tempDir } from '../helpers/index.js';

/*
 * Retention's deletion: bounded batches, oldest first, on an indexed field
 * (the delete walks the index rather than the table).
 */

let dir: string;

before(async () => {
  dir = await tempDir('prune');
});
after(async () => {
  await removeDir(dir);
});

test('pruneBefore deletes in bounded batches, oldest first, and says when some are left', async () => {
  const store = new SqliteStore(path.join(dir, 'prune.db'));
  const c = store.collection<{ t?: number | null }>('log');
  await c.ensureIndex(['t']);
  for (let i = 0; i < 1050; i++) await c.put(`e${i}`, { t: 1000 + i });
  await c.put('open', { t: null });
  await c.put('untimed', {});
  const first = await pruneBefore(c, 't', 2000, { size: 100, max: 3 });
  assert.deepEqual(first, { deleted: 300, more: true });
  assert.equal(await c.count({ t: { $lt: 1300 } }), 0, 'the oldest went first');
  const rest = await pruneBefore(c, 't', 2000, { size: 100, max: 100 });
  assert.deepEqual(rest, { deleted: 700, more: false });
  assert.deepEqual((await c.find({}, { sort: [['key', 1]] })).map((d) => d.key).slice(0, 3), ['e1000', 'e1001', 'e1002']);
  assert.equal(await c.count(), 52, 'recent, null and missing stay');
  await store.close();
});

test('a bounded delete by an indexed field walks that index (SQLite query plan)', async () => {
  const file = path.join(dir, 'plan.db');
  const store = new SqliteStore(file);
  const c = store.collection<{ t: number }>('log');
  await c.ensureIndex(['t']);
  await c.put('a', { t: 1 });
  await store.close();
  const db = new Database(file, { readonly: true });
  try {
    // The statement the adapter runs for delete(filter, { sort, limit }).
    const plan = db
      .prepare(
        "EXPLAIN QUERY PLAN DELETE FROM c_log WHERE rowid IN (SELECT rowid FROM c_log WHERE json_extract(doc, '$.t') < ? ORDER BY json_extract(doc, '$.t') ASC, rowid LIMIT ?)",
      )
      .all(10, 500) as Array<{ detail: string }>;
    const text = plan.map((r) => r.detail).join('\n');
    assert.match(text, /USING (COVERING )?INDEX c_log__t/, text);
    assert.doesNotMatch(text, /USE TEMP B-TREE FOR ORDER BY/, text);
  } finally {
    db.close();
  }
});
