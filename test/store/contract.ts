import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import type { FindOptions, Scalar, Store } from '../../runtime/store/types.js';

/*
 * The store contract: every adapter runs exactly these tests. Collection
 * names are fresh per test (the in-memory MongoDB server used in CI keeps
 * index definitions per process).
 */

interface Doc {
  name: string;
  state?: number;
  tags?: string[];
  v?: { status: number; ack: boolean | null };
  ts?: number;
  open?: number | null;
  n?: number;
}

export function storeContract(label: string, store: () => Store): void {
  const freshName = (tag: string) => `${tag}_${randomBytes(4).toString('hex')}`;
  const fresh = (tag: string) => store().collection<Doc>(freshName(tag));

  test(`${label}: put, get and replace documents by key`, async () => {
    const c = fresh('put');
    assert.equal(await c.get('nope'), undefined);
    await c.put('a/b', { name: 'first', v: { status: 1, ack: false }, tags: ['x'] });
    assert.deepEqual(await c.get('a/b'), { key: 'a/b', name: 'first', v: { status: 1, ack: false }, tags: ['x'] });
    await c.put('a/b', { name: 'second' });
    assert.deepEqual(await c.get('a/b'), { key: 'a/b', name: 'second' }, 'put replaces the whole document');
    assert.equal(await c.count(), 1);
  });

  test(`${label}: queries by field, operators, nested fields, sort, skip, limit`, async () => {
    const c = fresh('find');
    await c.ensureIndex(['state']);
    for (let i = 0; i < 20; i++) {
      await c.put(`k${String(i).padStart(2, '0')}`, {
        name: `n${i}`,
        state: i % 4,
        ts: 1000 + i,
        v: { status: i % 2, ack: i % 3 === 0 ? true : i % 3 === 1 ? false : null },
      });
    }
    const names = (docs: Array<{ name: string }>) => docs.map((d) => d.name);
    assert.equal(await c.count({ state: 2 }), 5);
    assert.deepEqual(names(await c.find({ state: { $in: [0, 3] } }, { sort: [['ts', 1]], limit: 3 })), ['n0', 'n3', 'n4']);
    assert.deepEqual(names(await c.find({ ts: { $gte: 1017 } }, { sort: [['ts', -1]] })), ['n19', 'n18', 'n17']);
    assert.deepEqual(names(await c.find({ ts: { $lt: 1002 } })), ['n0', 'n1']);
    assert.deepEqual(names(await c.find({ ts: { $gt: 1004, $lte: 1006 } })), ['n5', 'n6']);
    assert.equal(await c.count({ 'v.status': 1 }), 10);
    assert.equal(await c.count({ 'v.ack': true }), 7);
    assert.equal(await c.count({ 'v.ack': false }), 7);
    assert.equal(await c.count({ 'v.ack': null }), 6);
    assert.equal(await c.count({ state: { $ne: 0 } }), 15);
    assert.equal(await c.count({ tags: { $exists: true } }), 0);
    assert.equal(await c.count({ ts: { $exists: true } }), 20);
    assert.deepEqual(
      names(
        await c.find(
          {},
          {
            sort: [
              ['state', -1],
              ['ts', 1],
            ],
            skip: 2,
            limit: 3,
          },
        ),
      ),
      ['n11', 'n15', 'n19'],
    );
    assert.deepEqual(names(await c.find({ key: { $in: ['k05', 'k07'] } }, { sort: [['key', -1]] })), ['n7', 'n5']);
    assert.equal(await c.count({ state: 2, 'v.status': 0 }), 5);
  });

  test(`${label}: search: a case-insensitive substring, and $or between filters`, async () => {
    const c = fresh('search');
    const rows: Array<[string, string, number]> = [
      ['a', 'Disk-Full on web1', 1],
      ['b', 'cpu high on WEB2', 2],
      ['c', 'disk ok (1.5% used) [a*b]', 0],
      ['d', 'memory', 3],
    ];
    for (const [k, name, state] of rows) await c.put(k, { name, state });
    await c.put('e', { name: 'no state' });
    const keys = async (f: Parameters<typeof c.find>[0]) => (await c.find(f, { sort: [['key', 1]] })).map((d) => d.key);
    assert.deepEqual(await keys({ name: { $contains: 'web' } }), ['a', 'b']);
    assert.deepEqual(await keys({ name: { $contains: 'DISK' } }), ['a', 'c']);
    // Regex and LIKE characters are plain text.
    assert.deepEqual(await keys({ name: { $contains: '1.5%' } }), ['c']);
    assert.deepEqual(await keys({ name: { $contains: '[a*b]' } }), ['c']);
    assert.deepEqual(await keys({ name: { $contains: '.' } }), ['c']);
    assert.deepEqual(await keys({ $or: [{ name: { $contains: 'memory' } }, { state: 2 }] }), ['b', 'd']);
    assert.deepEqual(await keys({ state: { $gte: 1 }, $or: [{ name: { $contains: 'web' } }, { name: { $contains: 'mem' } }] }), [
      'a',
      'b',
      'd',
    ]);
    assert.deepEqual(await keys({ state: 1, $or: [{ name: { $contains: 'cpu' } }, { name: { $contains: 'mem' } }] }), []);
    assert.deepEqual(await keys({ $or: [] }), [], 'no alternative: nothing matches');
    assert.equal(await c.count({ $or: [{ state: 0 }, { state: { $exists: false } }] }), 2);
  });

  test(`${label}: modify is an atomic read-modify-write that can create, change or leave a document`, async () => {
    const c = fresh('modify');
    const created = await c.modify('e1', (cur) => (cur ? undefined : { name: 'e1', n: 1 }));
    assert.deepEqual(created, { doc: { key: 'e1', name: 'e1', n: 1 }, changed: true });
    const unchanged = await c.modify('e1', () => undefined);
    assert.deepEqual(unchanged, { doc: { key: 'e1', name: 'e1', n: 1 }, changed: false });
    // Concurrent modifies of one key never lose an update. (20 at once: CongoDB,
    // the wire server used in CI, breaks its framing beyond ~24 in flight.)
    await Promise.all(Array.from({ length: 20 }, () => c.modify('e1', (cur) => ({ ...cur!, n: cur!.n! + 1 }))));
    assert.equal((await c.get('e1'))!.n, 21);
  });

  test(`${label}: delete by filter (expiry of old documents) and collections are separate`, async () => {
    const c = fresh('expire');
    const other = fresh('other');
    for (let i = 0; i < 10; i++) await c.put(`m${i}`, { name: `m${i}`, ts: i });
    await other.put('m1', { name: 'other', ts: 0 });
    assert.equal(await c.delete({ ts: { $lt: 4 } }), 4);
    assert.equal(await c.count(), 6);
    assert.equal(await other.count(), 1);
    assert.equal(await c.delete({ name: 'nothing' }), 0);
  });

  test(`${label}: delete with a limit takes the first ones in sort order, still by the filter (a bounded batch)`, async () => {
    const c = fresh('batch');
    await c.ensureIndex(['ts']);
    // Put out of order, and with documents the filter leaves alone (no ts, null ts, recent ts).
    for (const i of [7, 2, 9, 0, 5, 3, 8, 1, 6, 4]) await c.put(`b${i}`, { name: `b${i}`, ts: 100 + i });
    await c.put('none', { name: 'none' });
    await c.put('recent', { name: 'recent', ts: 500 });
    const names = async () => (await c.find({}, { sort: [['key', 1]] })).map((d) => d.name);
    assert.equal(await c.delete({ ts: { $lt: 200 } }, { sort: [['ts', 1]], limit: 4 }), 4);
    assert.deepEqual(await names(), ['b4', 'b5', 'b6', 'b7', 'b8', 'b9', 'none', 'recent'], 'the 4 oldest went');
    assert.equal(await c.delete({ ts: { $lt: 200 } }, { sort: [['ts', 1]], limit: 4 }), 4);
    assert.equal(await c.delete({ ts: { $lt: 200 } }, { sort: [['ts', 1]], limit: 4 }), 2, 'the last batch is short');
    assert.equal(await c.delete({ ts: { $lt: 200 } }, { sort: [['ts', 1]], limit: 4 }), 0);
    assert.deepEqual(await names(), ['none', 'recent']);
  });

  test(`${label}: an index may end with the key; a sort ending with the key, either way, is a total order`, async () => {
    const c = fresh('bykey');
    await c.ensureIndex(['open', 'ts', 'key']);
    for (const [k, ts] of [
      ['k3', 2],
      ['k1', 2],
      ['k2', 1],
      ['k4', 3],
      ['k0', 2],
    ] as const)
      await c.put(k, { name: k, ts, open: null });
    await c.put('closed', { name: 'closed', ts: 2, open: 1 });
    const order = async (dir: 1 | -1) =>
      (
        await c.find(
          { open: null },
          {
            sort: [
              ['ts', dir],
              ['key', dir],
            ],
            skip: 1,
            limit: 3,
          },
        )
      ).map((d) => d.name);
    assert.deepEqual(await order(-1), ['k3', 'k1', 'k0'], 'ts then key, descending; the first skipped');
    assert.deepEqual(await order(1), ['k0', 'k1', 'k3']);
  });

  test(`${label}: keyset paging: after the sort values of a page's last document comes the next page, in any direction`, async () => {
    const c = fresh('keyset');
    await c.ensureIndex(['open', 'ts', 'key']);
    // Ties on ts, keys out of order, and documents the filter leaves out.
    for (let i = 0; i < 23; i++) await c.put(`k${(i * 7) % 23}`, { name: `n${i}`, ts: i % 5, state: i % 3, open: null });
    for (let i = 0; i < 4; i++) await c.put(`closed${i}`, { name: `c${i}`, ts: i, open: 1 });
    const sorts: Array<NonNullable<FindOptions['sort']>> = [
      [
        ['ts', -1],
        ['key', -1],
      ],
      [
        ['ts', 1],
        ['key', 1],
      ],
      [
        ['ts', 1],
        ['state', -1],
        ['key', 1],
      ],
    ];
    for (const filter of [{ open: null }, { open: null, $or: [{ state: 0 }, { state: 2 }] }]) {
      for (const sort of sorts) {
        const all = (await c.find(filter, { sort })).map((d) => d.key);
        const paged: string[] = [];
        let after: Scalar[] | undefined;
        for (;;) {
          const page = await c.find(filter, { sort, limit: 4, ...(after ? { after } : {}) });
          if (page.length === 0) break;
          paged.push(...page.map((d) => d.key));
          const last = page.at(-1)!;
          after = sort.map(([f]) => (f === 'key' ? last.key : (last[f as keyof Doc] as Scalar)));
        }
        assert.deepEqual(paged, all, `${JSON.stringify(filter)} by ${JSON.stringify(sort)}`);
        // skip counts from the point after names.
        const fifth = all[4]!;
        const doc = (await c.get(fifth))!;
        const from = sort.map(([f]) => (f === 'key' ? fifth : (doc[f as keyof Doc] as Scalar)));
        assert.deepEqual(
          (await c.find(filter, { sort, after: from, skip: 2, limit: 3 })).map((d) => d.key),
          all.slice(7, 10),
        );
      }
    }
    await assert.rejects(c.find({}, { sort: [['ts', 1]], after: [1] }), /end with key/);
    await assert.rejects(c.find({}, { sort: [['key', 1]], after: [null] }), /null/);
  });

  test(`${label}: a shared read finds what a plain one does, changes included`, async () => {
    const c = fresh('shared');
    for (let i = 0; i < 5; i++) await c.put(`s${i}`, { name: `n${i}`, ts: i });
    const read = () => c.find({}, { sort: [['key', 1]], shared: true });
    assert.deepEqual(await read(), await c.find({}, { sort: [['key', 1]] }));
    await c.put('s2', { name: 'changed', ts: 2 });
    await c.modify('s3', (cur) => ({ ...cur!, n: 1 }));
    await c.delete({ key: 's4' });
    assert.deepEqual(await read(), await c.find({}, { sort: [['key', 1]] }));
    assert.equal((await read())[2]!.name, 'changed');
  });

  test(`${label}: the change stamp changes with every write or delete, of any kind, and only then`, async () => {
    const c = fresh('stamp');
    const other = fresh('stampother');
    const first = await c.stamp();
    if (first === undefined) return; // this backend keeps no stamp: callers remember nothing
    const changes = async (what: string, op: () => Promise<unknown>) => {
      const before = await c.stamp();
      await op();
      assert.notEqual(await c.stamp(), before, `${what} changes the stamp`);
    };
    const still = async (what: string, op: () => Promise<unknown>) => {
      const before = await c.stamp();
      await op();
      assert.equal(await c.stamp(), before, `${what} leaves the stamp`);
    };
    await changes('put (insert)', () => c.put('a', { name: 'a', ts: 1 }));
    await changes('put (replace)', () => c.put('a', { name: 'a2', ts: 1 }));
    await changes('modify', () => c.modify('a', (cur) => ({ ...cur!, n: 1 })));
    await changes('delete', () => c.delete({ key: 'a' }));
    await still('a read', () => c.find({}, { shared: true }));
    await still('a modify that changes nothing', () => c.modify('b', () => undefined));
    await still('a delete of nothing', () => c.delete({ key: 'nope' }));
    await still('a write to another collection', () => other.put('x', { name: 'x' }));
  });

  test(`${label}: lists the collections written to, sorted, and no other`, async () => {
    const [a, b] = [freshName('lista'), freshName('listb')];
    await store().collection<Doc>(b).put('x', { name: 'x' });
    await store().collection<Doc>(a).put('y', { name: 'y' });
    const names = await store().collections();
    assert.deepEqual(
      names.filter((n) => n === a || n === b),
      [a, b],
    );
    assert.deepEqual(names, [...names].sort(), 'sorted');
    assert.ok(!names.includes(freshName('never')), 'a name never used is not a collection');
  });

  test(`${label}: answers a ping`, async () => {
    await store().ping();
  });
}
