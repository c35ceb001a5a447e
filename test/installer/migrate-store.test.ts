import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { openStore, readRuntimeConfig } from '../../runtime/config/runtime.js';
import { PgStore } from '../../runtime/store/postgresql.js';
import type { Store } from '../../runtime/store/types.js';
import { buildInstall, isolatedPorts, removeDir, run, tempDir } from '../helpers/index.js';
import { createTestDatabase, type TestDatabase } from '../store/pg-database.js';

/*
 * ./build-install migrate-store --to postgresql on a real install made as
 * root (services not started), its embedded store written by the service
 * user, into a database made for this run on this machine's PostgreSQL.
 * The tests run in order on one prefix: a server that does not answer, a
 * target that holds documents, a copy that fails part way, then the copy
 * that switches the prefix.
 */

const USER = 'canopsis';
const N = 120;
/**
 * A port nothing listens on (this file's range is 6040-6049: the installs use 6040-6044, the
 * local PostgreSQL of the last test 6045; this machine runs a PostgreSQL of its own on 5432).
 */
const CLOSED = 'postgresql://canopsis:Secret-pw-1@127.0.0.1:6049/canopsis';
const LOCAL_PG_PORT = 6045;
/** What the embedded stores hold before a migration (run by the service user). */
const FILL = `for (let i = 0; i < ${N}; i++) {
  await s.collection('entities').put('r' + i + '/c', { _id: 'r' + i + '/c', type: 'resource', name: 'r' + i, infos: { site: i % 3 ? 'paris' : null } });
  await s.collection('alarms').put('a' + i, { d: 'r' + i + '/c', t: 1700000000 + i, v: { state: { val: i % 4 }, ack: i % 5 === 0 ? { a: 'alice' } : undefined } });
}
await s.collection('event_log').put('e1', { t: 1, level: 'info', action: 'alarm_opened' });`;
let dir: string;
let prefix: string;
let db: TestDatabase;

const cli = (...args: string[]) => buildInstall([...args, '--prefix', prefix]);
const etc = (name: string, p = prefix) => readFile(path.join(p, 'etc', name), 'utf8');
const storeFile = (p = prefix) => path.join(p, 'var', 'lib', 'canopsis', 'canopsis.db');

/** Runs `body` (ES module code, `s` being the installed release's SqliteStore on the prefix's store) as the service user. */
async function asServiceUser(name: string, body: string, p = prefix): Promise<void> {
  const script = path.join(dir, `${name}.mjs`);
  await writeFile(
    script,
    `const { SqliteStore } = await import(${JSON.stringify(path.join(p, 'lib/canopsis/current/dist/runtime/store/sqlite.js'))});
const s = new SqliteStore(${JSON.stringify(storeFile(p))});
${body}
await s.close();
`,
    { mode: 0o644 },
  );
  const r = await run('setpriv', ['--reuid', USER, '--regid', USER, '--init-groups', process.execPath, script]);
  assert.equal(r.exitCode, 0, r.all);
}

/** Every collection of `source` in `store`, document for document. */
async function assertCopied(store: Store, source: Map<string, Map<string, unknown>>): Promise<void> {
  assert.equal(store.kind, 'postgresql');
  assert.deepEqual(await store.collections(), [...source.keys()].sort());
  for (const [name, docs] of source) {
    const copied = await store.collection<Record<string, unknown>>(name).find({}, { sort: [['key', 1]] });
    assert.deepEqual(new Map(copied.map(({ key, ...doc }) => [key, doc])), docs, name);
  }
}

/** What the prefix is switched by: the operator's file and the runtime's. */
const configState = async (p = prefix) => ({ ini: await etc('canopsis.ini', p), runtime: await etc('runtime.conf', p) });

/** Every collection of the embedded store, read straight from the file. */
function sqliteContent(p = prefix): Map<string, Map<string, unknown>> {
  const file = new Database(storeFile(p), { readonly: true });
  try {
    const out = new Map<string, Map<string, unknown>>();
    const tables = file.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'c\\_%' ESCAPE '\\'").all() as Array<{
      name: string;
    }>;
    for (const { name } of tables) {
      const rows = file.prepare(`SELECT key, doc FROM ${name}`).all() as Array<{ key: string; doc: string }>;
      out.set(name.slice(2), new Map(rows.map((r) => [r.key, JSON.parse(r.doc)])));
    }
    return out;
  } finally {
    file.close();
  }
}

before(async () => {
  dir = await tempDir('migrate-store');
  prefix = path.join(dir, 'canopsis');
  db = await createTestDatabase('migrate');
  const r = await buildInstall([
    'install',
    '--prefix',
    prefix,
    '--yes',
    ...isolatedPorts(6040, 'cpsms6040@localhost'),
    '--set',
    'store.postgresql_mode=remote',
    '--set',
    `store.postgresql_url=${CLOSED}`,
  ]);
  assert.equal(r.exitCode, 0, r.all);
  await asServiceUser('fill', FILL);
});

after(async () => {
  await removeDir(dir);
  await db?.drop();
});

test('migrate-store: a server that does not answer is said so, before anything stops; the prefix stays as it was', async () => {
  const before = await configState();
  const store = await stat(storeFile());
  const r = await cli('migrate-store', '--to', 'postgresql');
  assert.notEqual(r.exitCode, 0, r.all);
  assert.match(r.stderr, /PostgreSQL .*does not answer.*127\.0\.0\.1:6049\/canopsis: connection refused/);
  assert.match(r.stderr, /nothing changed/);
  assert.doesNotMatch(r.all, /Secret-pw-1/, 'the password is never shown');
  assert.deepEqual(await configState(), before, 'canopsis.ini and runtime.conf unchanged');
  assert.equal((await stat(storeFile())).mtimeMs, store.mtimeMs, 'the store untouched');
});

test('migrate-store: a target that holds documents is refused, naming them, and left alone', async () => {
  // The real target from now on: the secret set the way an operator sets it.
  const set = await buildInstall(['install', '--prefix', prefix, '--set', `store.postgresql_url=${db.url}`]);
  assert.equal(set.exitCode, 0, set.all);
  const before = await configState();
  assert.match(before.runtime, /backend = embedded/);
  const target = await PgStore.connect(db.url);
  try {
    await target.collection('alarms').put('someone-elses', { x: 1 });
    const r = await cli('migrate-store', '--to', 'postgresql');
    assert.equal(r.exitCode, 2, r.all);
    assert.match(r.stderr, /already holds documents in alarms \(1\): migrate-store copies into an empty store only; nothing changed/);
    assert.deepEqual(await configState(), before);
    assert.equal(await target.collection('alarms').count(), 1, 'what was there is still there');
    await target.collection('alarms').delete({});
  } finally {
    await target.close();
  }
});

test('migrate-store: a copy that fails part way removes what it wrote and leaves the prefix on its store', async () => {
  // PostgreSQL's jsonb cannot hold a NUL character; SQLite's JSON text can. Sorted last, copied after alarms and entities.
  await asServiceUser('nul', "await s.collection('zz_notes').put('bad', { text: 'a\\u0000b' });");
  const before = await configState();
  const r = await cli('migrate-store', '--to', 'postgresql');
  assert.notEqual(r.exitCode, 0, r.all);
  assert.match(r.stderr, /copying the store \(migrate\) as canopsis failed .*zz_notes\.put/);
  assert.match(r.stderr, /stays on its embedded store/);
  assert.deepEqual(await configState(), before, 'canopsis.ini and runtime.conf unchanged');
  const target = await PgStore.connect(db.url);
  try {
    for (const name of await target.collections())
      assert.equal(await target.collection(name).count(), 0, `${name}: the partial copy is gone again`);
  } finally {
    await target.close();
  }
  await asServiceUser('nul-gone', "await s.collection('zz_notes').delete({});");
});

test('migrate-store: every collection copied and counted, then runtime.conf says postgresql and the engines read it there', async () => {
  const iniBefore = await etc('canopsis.ini');
  const source = sqliteContent();
  const storeBefore = await stat(storeFile());
  const r = await cli('migrate-store', '--to', 'postgresql');
  assert.equal(r.exitCode, 0, r.all);
  for (const [name, docs] of source) assert.match(r.stdout, new RegExp(`${name}: ${docs.size} documents, ${docs.size} in PostgreSQL`));
  assert.match(r.stdout, /now keeps its store in PostgreSQL at 127\.0\.0\.1:5432\/canopsis_test_migrate_/);

  const runtime = await etc('runtime.conf');
  assert.match(runtime, /\[store\]\nbackend = postgresql\nurl = postgresql:\/\/postgres@127\.0\.0\.1:5432\/canopsis_test_migrate_\w+\n/);
  // Only the backend line changed in the operator's file: comments and the rest kept.
  const ini = await etc('canopsis.ini');
  const changed = ini.split('\n').filter((l, i) => l !== iniBefore.split('\n')[i]);
  assert.deepEqual(changed, ['backend = postgresql']);

  // Everything there, document for document, as the runtime of the prefix opens it now.
  const store = await openStore(await readRuntimeConfig(prefix));
  try {
    await assertCopied(store, source);
    assert.equal(await store.collection('alarms').count({ 'v.state.val': 2 }), N / 4);
  } finally {
    await store.close();
  }
  assert.equal((await stat(storeFile())).mtimeMs, storeBefore.mtimeMs, 'the embedded store is left as it was');

  const again = await cli('migrate-store', '--to', 'postgresql');
  assert.equal(again.exitCode, 2, again.all);
  assert.match(again.stderr, /keeps its store in PostgreSQL already/);
});

test('backup and restore of a prefix on PostgreSQL: pg_dump out, pg_restore back, a lost alarm is back', async () => {
  const r = await cli('backup', '--json');
  assert.equal(r.exitCode, 0, r.all);
  const made = JSON.parse(r.stdout) as { file: string; store: { backend: string; file: string } };
  assert.deepEqual(made.store, { backend: 'postgresql', file: 'store/pg_dump.custom' });
  const open = async () => openStore(await readRuntimeConfig(prefix));
  let store = await open();
  const [first] = await store.collection('alarms').find({}, { sort: [['key', 1]], limit: 1 });
  assert.ok(first);
  await store.collection('alarms').delete({ key: first.key });
  const left = await store.collection('alarms').count();
  await store.close();

  // restore starts the stack and probes it (on this file's ports); stopped again whatever happens.
  const back = await cli('restore', made.file, '--yes');
  try {
    assert.equal(back.exitCode, 0, back.all);
    store = await open();
    try {
      assert.equal(await store.collection('alarms').count({ key: first.key }), 1);
      assert.deepEqual(await store.collection('alarms').get(first.key), first);
      assert.ok((await store.collection('alarms').count()) >= left + 1);
    } finally {
      await store.close();
    }
  } finally {
    await run(path.join(prefix, 'bin', 'hypcontrol'), ['stop'], { env: { CPS_PREFIX: prefix } });
    await run('supervisorctl', ['-c', path.join(prefix, 'etc', 'supervisord.conf'), 'shutdown']);
  }
});

test("migrate-store into this host's own PostgreSQL (postgresql_mode = local): a failed copy switches back, then the copy that switches", async () => {
  // A single host of its own, installed as root and not started; its PostgreSQL on this file's port 6045.
  const local = path.join(dir, 'local');
  const service = (action: string) => run(path.join(local, 'bin', 'service'), ['postgresql', action], { env: { CPS_PREFIX: local } });
  try {
    const installed = await buildInstall([
      'install',
      '--prefix',
      local,
      '--yes',
      ...isolatedPorts(6040, 'cpsmslocal6045@localhost'),
      '--set',
      `store.postgresql_port=${LOCAL_PG_PORT}`,
    ]);
    assert.equal(installed.exitCode, 0, installed.all);
    assert.match(await etc('canopsis.ini', local), /^postgresql_mode = local$/m);
    await asServiceUser('local-fill', FILL, local);

    // A document PostgreSQL cannot hold: the copy fails after the switch, and the prefix goes back.
    await asServiceUser('local-nul', "await s.collection('zz_notes').put('bad', { text: 'a\\u0000b' });", local);
    const before = await configState(local);
    const stored = await stat(storeFile(local));
    const failed = await buildInstall(['migrate-store', '--to', 'postgresql', '--prefix', local]);
    assert.notEqual(failed.exitCode, 0, failed.all);
    assert.match(failed.stderr, /copying the store \(migrate\) as canopsis failed .*zz_notes\.put/);
    assert.match(failed.stderr, /stays on its embedded store/);
    assert.deepEqual(await configState(local), before, 'canopsis.ini and runtime.conf as they were');
    assert.equal((await stat(storeFile(local))).mtimeMs, stored.mtimeMs, 'the store untouched');
    const down = await service('status');
    assert.equal(down.exitCode, 3, `the local PostgreSQL is stopped again: ${down.all}`);
    await asServiceUser('local-nul-gone', "await s.collection('zz_notes').delete({});", local);

    // Again: the data directory and the generated URL of the first run are used as they are.
    const iniBefore = await etc('canopsis.ini', local);
    const source = sqliteContent(local);
    const r = await buildInstall(['migrate-store', '--to', 'postgresql', '--prefix', local]);
    assert.equal(r.exitCode, 0, r.all);
    for (const [name, docs] of source) assert.match(r.stdout, new RegExp(`${name}: ${docs.size} documents, ${docs.size} in PostgreSQL`));
    assert.match(r.stdout, new RegExp(`now keeps its store in PostgreSQL at 127\\.0\\.0\\.1:${LOCAL_PG_PORT}/canopsis `));
    assert.doesNotMatch(r.all, /postgresql:\/\/canopsis:[^@\s]+@/, 'the generated password is never shown');
    assert.match(
      await etc('runtime.conf', local),
      new RegExp(`backend = postgresql\\nurl = postgresql://\\S+@127\\.0\\.0\\.1:${LOCAL_PG_PORT}/canopsis\\n`),
    );
    const ini = await etc('canopsis.ini', local);
    assert.deepEqual(
      ini.split('\n').filter((l, i) => l !== iniBefore.split('\n')[i]),
      ['backend = postgresql'],
    );
    const store = await openStore(await readRuntimeConfig(local));
    try {
      await assertCopied(store, source);
    } finally {
      await store.close();
    }
    const up = await service('status');
    assert.equal(up.exitCode, 0, up.all);
    assert.match(up.stdout, /postgresql is running/);
  } finally {
    await run(path.join(local, 'bin', 'hypcontrol'), ['stop'], { env: { CPS_PREFIX: local } });
    await run('supervisorctl', ['-c', path.join(local, 'etc', 'supervisord.conf'), 'shutdown']);
  }
});
