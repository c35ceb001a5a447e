import assert from 'node:assert/strict';
import { readdir, readFile, readlink, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { backupBeforeMigrations } from '../../installer/bundle/lifecycle.js';
import { layoutOf } from '../../installer/layout.js';
import { buildInstall, isolatedPorts, removeDir, run, snapshot, tempDir } from '../helpers/index.js';

/*
 * backup and restore on a real install made as root (services not started):
 * the store copied by the service user, the archive root's and private,
 * retention, and restore refusing whatever it must not trust (another
 * version, a damaged or altered archive, names that climb out, links)
 * before anything of the prefix changes. The round trip with a running
 * stack is test/e2e/backup.test.ts.
 */

const USER = 'canopsis';
const ALARMS = 300;
let dir: string;
let prefix: string;
let first: string;

const cli = (...args: string[]) => buildInstall([...args, '--prefix', prefix]);
const backupDir = () => path.join(prefix, 'var', 'backups');
const archives = async () => (await readdir(backupDir())).filter((n) => n.endsWith('.tar.gz')).sort();
const storeFile = () => path.join(prefix, 'var', 'lib', 'canopsis', 'canopsis.db');

/** Documents written by the service user through the installed release's store, as the engines would. */
async function fill(n: number): Promise<void> {
  const script = path.join(dir, 'fill.mjs');
  await writeFile(
    script,
    `const { SqliteStore } = await import(${JSON.stringify(path.join(prefix, 'lib/canopsis/current/dist/runtime/store/sqlite.js'))});
const s = new SqliteStore(${JSON.stringify(storeFile())});
for (let i = 0; i < ${n}; i++) {
  await s.collection('entities').put('r' + i + '/c', { _id: 'r' + i + '/c', type: 'resource' });
  await s.collection('alarms').put('a' + i, { d: 'r' + i + '/c', v: { state: { val: 2 } } });
}
await s.close();
`,
    { mode: 0o644 },
  );
  const r = await run('setpriv', ['--reuid', USER, '--regid', USER, '--init-groups', process.execPath, script]);
  assert.equal(r.exitCode, 0, r.all);
}

/** What a refused restore must leave as it was: etc/, the installer state, the store file. */
async function prefixState(): Promise<string> {
  const st = await stat(storeFile());
  const parts = [await snapshot(path.join(prefix, 'etc')), await snapshot(path.join(prefix, 'var', 'lib', 'pkgmgr'))].map((m) =>
    JSON.stringify([...m]),
  );
  return `${parts.join('\n')}\nstore ${st.size} ${st.mtimeMs} ${st.ino}`;
}

/**
 * A copy of archive `src` changed as `spec` says, written with Python's
 * tarfile (another tool than ours): manifest fields replaced, a file's first
 * byte flipped (same size, other sha256), entries added (a file, a symbolic
 * or hard link) under the top directory, or with a name of their own.
 */
async function altered(src: string, name: string, spec: Record<string, unknown>): Promise<string> {
  const dst = path.join(dir, name);
  const py = `
import tarfile, io, json, sys
src, dst, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
s = tarfile.open(src, 'r:gz'); d = tarfile.open(dst, 'w:gz')
members = s.getmembers(); top = members[0].name.split('/')[0]
for m in members:
    data = s.extractfile(m).read() if m.isfile() else None
    rel = m.name[len(top) + 1:]
    if rel == 'MANIFEST.json' and 'manifest' in spec:
        man = json.loads(data); man.update(spec['manifest']); data = json.dumps(man).encode()
    if rel == spec.get('flip'):
        data = bytearray(data); data[0] ^= 1; data = bytes(data)
    if data is not None:
        m.size = len(data); d.addfile(m, io.BytesIO(data))
    else:
        d.addfile(m)
for e in spec.get('add', []):
    ti = tarfile.TarInfo(e['name'].replace('TOP', top))
    if e['type'] == 'symlink':
        ti.type = tarfile.SYMTYPE; ti.linkname = e['target']; d.addfile(ti)
    elif e['type'] == 'hardlink':
        ti.type = tarfile.LNKTYPE; ti.linkname = e['target'].replace('TOP', top); d.addfile(ti)
    else:
        b = e['data'].encode(); ti.size = len(b); d.addfile(ti, io.BytesIO(b))
d.close()
`;
  const r = await run('python3', ['-c', py, src, dst, JSON.stringify(spec)]);
  assert.equal(r.exitCode, 0, r.all);
  return dst;
}

/** restore must refuse `file` with exit 8 and a message matching `why`, and change nothing. */
async function refused(file: string, why: RegExp): Promise<void> {
  const before = await prefixState();
  const r = await cli('restore', file, '--yes');
  assert.equal(r.exitCode, 8, r.all);
  assert.match(r.stderr, why);
  assert.equal(await prefixState(), before, 'nothing of the prefix changed');
  const left = (await readdir(backupDir())).filter((n) => n.startsWith('.'));
  assert.deepEqual(left, [], 'no extraction left behind');
}

before(async () => {
  dir = await tempDir('backup');
  prefix = path.join(dir, 'canopsis');
  const r = await buildInstall(['install', '--prefix', prefix, '--yes', ...isolatedPorts(5925, 'cpsbk5925@localhost')]);
  assert.equal(r.exitCode, 0, r.all);
  await fill(ALARMS);
});

after(async () => {
  await removeDir(dir);
});

test("backup: a 0600 archive of root's in a 0700 var/backups, with etc/ (the secrets too) and the store copied by the service user", async () => {
  const r = await cli('backup', '--json');
  assert.equal(r.exitCode, 0, r.all);
  const out = JSON.parse(r.stdout) as { file: string; store: { backend: string; entities: number; alarms: number } };
  first = out.file;
  assert.equal(path.dirname(first), backupDir());
  assert.match(path.basename(first), /^canopsis-backup-0\.4\.0-\d{8}T\d{6}Z\.tar\.gz$/);
  assert.deepEqual(out.store, { backend: 'embedded', file: 'store/canopsis.db', entities: ALARMS, alarms: ALARMS });
  const st = await stat(first);
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal(st.uid, 0);
  const d = await stat(backupDir());
  assert.equal(d.mode & 0o777, 0o700);
  assert.equal(d.uid, 0);
  const top = path.basename(first, '.tar.gz');
  const secrets = await run('tar', ['-xOzf', first, `${top}/etc/canopsis-secrets.ini`]);
  assert.equal(secrets.stdout, (await readFile(path.join(prefix, 'etc', 'canopsis-secrets.ini'), 'utf8')).trimEnd());
  assert.match(secrets.stdout, /authkey = \S+/);
  const manifest = JSON.parse((await run('tar', ['-xOzf', first, `${top}/MANIFEST.json`])).stdout) as {
    version: string;
    files: Record<string, { mode: number; group: string }>;
    migrations: { applied: Record<string, string> };
  };
  assert.equal(manifest.version, '0.4.0');
  assert.deepEqual(
    manifest.files['etc/canopsis-secrets.ini'] && {
      mode: manifest.files['etc/canopsis-secrets.ini'].mode,
      group: manifest.files['etc/canopsis-secrets.ini'].group,
    },
    { mode: 0o640, group: 'service' },
  );
  assert.deepEqual(
    Object.keys(manifest.migrations.applied),
    Object.keys(JSON.parse(await readFile(path.join(prefix, 'var/lib/pkgmgr/migrations.json'), 'utf8')).applied),
  );
  // The copy's temp file went, and the store stays the service user's.
  const storeDir = await readdir(path.dirname(storeFile()));
  assert.deepEqual(
    storeDir.filter((n) => n.startsWith('.')),
    [],
  );
  assert.notEqual((await stat(storeFile())).uid, 0);

  const status = await cli('status');
  assert.match(status.stdout, new RegExp(`last backup: ${first.replace(/[.+]/g, '\\$&')} \\(Canopsis 0\\.4\\.0, \\d+ s ago\\)`));
});

test('retention: [backup] keep = 2 leaves the two newest archives; a bad keep names canopsis.ini:backup.keep', async () => {
  const ini = path.join(prefix, 'etc', 'canopsis.ini');
  const text = await readFile(ini, 'utf8');
  assert.match(text, /\[backup\][^[]*\nkeep = 5\n/, 'the default file has the setting');
  try {
    await writeFile(ini, text.replace(/\nkeep = 5\n/, '\nkeep = 0\n'));
    const bad = await cli('backup');
    assert.equal(bad.exitCode, 2, bad.all);
    assert.match(bad.stderr, /canopsis\.ini:backup\.keep: found "0", expected an integer between 1 and 1000/);
    await writeFile(ini, text.replace(/\nkeep = 5\n/, '\nkeep = 2\n'));
    const made: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await cli('backup', '--json');
      assert.equal(r.exitCode, 0, r.all);
      made.push(path.basename((JSON.parse(r.stdout) as { file: string }).file));
    }
    assert.deepEqual(await archives(), made.slice(1).sort());
  } finally {
    await writeFile(ini, text);
  }
});

test('a MongoDB store without mongodump: refused naming what is missing and where to get it, no archive', async () => {
  const conf = path.join(prefix, 'etc', 'runtime.conf');
  const text = await readFile(conf, 'utf8');
  const before = await archives();
  try {
    await writeFile(
      conf,
      text.replace(/\[store\][^[]*/, '[store]\nbackend = mongodb\nurl = mongodb://user:secret@127.0.0.1:27017/canopsis\n\n'),
    );
    const r = await cli('backup');
    assert.equal(r.exitCode, 3, r.all);
    assert.match(r.stderr, /the store is MongoDB and mongodump is not installed/);
    assert.match(r.stderr, /mongodb-database-tools/);
    assert.doesNotMatch(r.all, /secret/);
  } finally {
    await writeFile(conf, text);
  }
  assert.deepEqual(await archives(), before);
  assert.deepEqual(
    (await readdir(backupDir())).filter((n) => n.startsWith('.')),
    [],
  );
});

test('restore refuses a backup of a newer version, naming both versions', async () => {
  const file = await altered((await archives()).map((n) => path.join(backupDir(), n)).at(-1)!, 'newer.tar.gz', {
    manifest: { version: '9.1.0', release: '9.1.0+0123abcd' },
  });
  await refused(file, /newer\.tar\.gz is a backup of Canopsis 9\.1\.0, newer than the installed 0\.4\.0/);
});

test('restore refuses a truncated archive and one with a changed byte, naming the problem; nothing changes', async () => {
  const latest = path.join(backupDir(), (await archives()).at(-1)!);
  const cut = path.join(dir, 'truncated.tar.gz');
  await writeFile(cut, await readFile(latest));
  await truncate(cut, Math.floor((await stat(cut)).size * 0.6));
  await refused(cut, /truncated\.tar\.gz: truncated or corrupt \(.+\) at or after entry canopsis-backup-/);

  const bytes = await readFile(latest);
  bytes[Math.floor(bytes.length / 2)]! ^= 0x55;
  const flipped = path.join(dir, 'flipped.tar.gz');
  await writeFile(flipped, bytes);
  await refused(flipped, /flipped\.tar\.gz: (truncated or corrupt \(.+\)|entry .+ does not match its checksum)/);

  // Altered and packed again: the archive reads fine, its content no longer matches the manifest.
  const tampered = await altered(latest, 'tampered.tar.gz', { flip: 'etc/canopsis-secrets.ini' });
  await refused(tampered, /tampered\.tar\.gz: entry canopsis-backup-[^/]+\/etc\/canopsis-secrets\.ini does not match its checksum/);
  const store = await altered(latest, 'store.tar.gz', { flip: 'store/canopsis.db' });
  await refused(store, /entry canopsis-backup-[^/]+\/store\/canopsis\.db does not match its checksum/);
});

test('restore refuses entries that climb out with .., links of either kind, and files its manifest does not name', async () => {
  const latest = path.join(backupDir(), (await archives()).at(-1)!);
  await refused(
    await altered(latest, 'dotdot.tar.gz', { add: [{ name: 'TOP/../../escaped', type: 'file', data: 'x' }] }),
    /entry canopsis-backup-[^ ]+\/\.\.\/\.\.\/escaped climbs out with \.\./,
  );
  await refused(
    await altered(latest, 'symlink.tar.gz', { add: [{ name: 'TOP/etc/shadow', type: 'symlink', target: '/etc/shadow' }] }),
    /entry canopsis-backup-[^ ]+\/etc\/shadow is a symbolic link/,
  );
  await refused(
    await altered(latest, 'hardlink.tar.gz', { add: [{ name: 'TOP/etc/hard', type: 'hardlink', target: 'TOP/etc/canopsis.ini' }] }),
    /entry canopsis-backup-[^ ]+\/etc\/hard is a hard link/,
  );
  await refused(
    await altered(latest, 'extra.tar.gz', { add: [{ name: 'TOP/etc/extra.conf', type: 'file', data: 'x' }] }),
    /entry canopsis-backup-[^ ]+\/etc\/extra\.conf is not named in its manifest/,
  );
});

test('update: a backup comes before store migrations; --skip-backup says what it skips and makes none', async () => {
  const layout = layoutOf(prefix);
  const todo = [{ id: '0.3.0-entity-fields', description: 'entities reshaped', settings: false, store: true, reversible: true }];
  const release = path.basename(await readlink(layout.current));
  const lines: string[] = [];
  const opts = (skipBackup: boolean) => ({
    prefix,
    bundle: '',
    allowDowngrade: false,
    allowIrreversible: false,
    passthrough: [],
    update: true,
    trustedKeys: [],
    allowUnsigned: false,
    skipBackup,
    log: (l: string) => void lines.push(l),
  });
  const before = await archives();
  await backupBeforeMigrations(opts(true), layout, todo, release);
  assert.match(
    lines.join('\n'),
    /--skip-backup: no backup of the store and etc\/ before the store migrations 0\.3\.0-entity-fields; if they fail in a way the rollback cannot undo, that data is lost/,
  );
  assert.deepEqual(await archives(), before, 'no backup made');
  await backupBeforeMigrations(opts(true), layout, [], release);
  assert.match(lines.at(-1)!, /--skip-backup: nothing skipped \(this update has no store migration/);
  await backupBeforeMigrations(opts(false), layout, todo, release);
  assert.match(lines.join('\n'), /backing up the store and etc\/ before the store migrations 0\.3\.0-entity-fields/);
  assert.match(lines.at(-1)!, /backup: .*canopsis-backup-0\.4\.0-.*: Canopsis 0\.4\.0, etc\/ and 300 entities, 300 alarms/);
  assert.equal((await archives()).length, before.length + 1);
});
