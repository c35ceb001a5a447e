import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { GroupCommit } from '../../runtime/engine/group-commit.js';
import { SqliteStore } from '../../runtime/store/sqlite.js';
import { StoreUnavailable } from '../../runtime/store/types.js';
import { removeDir, tempDir, waitFor } from '../helpers/index.js';

/*
 * Group commit on a real SQLite file, read by a second connection as the
 * webserver or another engine would: an event's writes are visible, and
 * its ack allowed, only once its group commits; a group SQLite rolled back
 * under it (as it does on a full disk) fails, so its events go back to the
 * broker instead of being acked with their writes gone.
 */

let dir: string;
let file: string;

before(async () => {
  dir = await tempDir('group-commit');
  file = path.join(dir, 'store.db');
});

after(async () => {
  await removeDir(dir);
});

async function withStores(fn: (engine: SqliteStore, reader: SqliteStore) => Promise<void>): Promise<void> {
  const engine = new SqliteStore(file);
  const reader = new SqliteStore(file);
  // The table exists before any group holds the write lock, as it does for a running webserver.
  await engine.collection('docs').get('none');
  await reader.collection('docs').get('none');
  try {
    await fn(engine, reader);
  } finally {
    await engine.close();
    await reader.close();
  }
}

test('writes of a group are seen by others only at its commit: when the engine is idle, or after maxEvents', async () => {
  await withStores(async (engine, reader) => {
    const group = new GroupCommit(engine, 2, 60_000);
    const docs = engine.collection<{ n: number }>('docs');
    group.enter();
    await docs.modify('a', () => ({ n: 1 }));
    const first = group.leave(false);
    assert.equal(await reader.collection('docs').get('a'), undefined, 'not committed while more events wait');
    group.enter();
    await docs.modify('b', () => ({ n: 2 }));
    const second = group.leave(false); // the second event of two: the group is full
    await Promise.all([first, second]);
    assert.deepEqual(await reader.collection('docs').get('b'), { n: 2, key: 'b' });
    group.enter();
    await docs.put('c', { n: 3 });
    await group.leave(true);
    assert.deepEqual(await reader.collection('docs').get('c'), { n: 3, key: 'c' }, 'idle: committed at once');
  });
});

test('a group left open commits after maxMs', async () => {
  await withStores(async (engine, reader) => {
    const group = new GroupCommit(engine, 500, 50);
    group.enter();
    await engine.collection('docs').put('late', { n: 4 });
    const done = group.leave(false);
    await waitFor('the timed commit', async () => (await reader.collection('docs').get('late')) !== undefined, 5000, 10);
    await done;
  });
});

test('a group rolled back under it fails its events, and what they wrote is not there', async () => {
  await withStores(async (engine, reader) => {
    const group = new GroupCommit(engine, 500, 60_000);
    group.enter();
    await engine.collection('docs').put('lost', { n: 5 });
    // What SQLite does to the transaction on SQLITE_FULL or an I/O error.
    engine.connection().exec('ROLLBACK');
    await assert.rejects(group.leave(true), StoreUnavailable);
    assert.equal(await reader.collection('docs').get('lost'), undefined);
    // The next group starts clean.
    group.enter();
    await engine.collection('docs').put('after', { n: 6 });
    await group.leave(true);
    assert.deepEqual(await reader.collection('docs').get('after'), { n: 6, key: 'after' });
  });
});
