import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
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
