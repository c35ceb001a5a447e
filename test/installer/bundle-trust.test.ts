import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmod, chown, lstat, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar';
import { installRelease } from '../../installer/apply/release.js';
import { checkReleaseId, RELEASE_ID, ReleaseIdError } from '../../installer/apply/release-id.js';
import { createBundle } from '../../installer/bundle/create.js';
import type { BundleManifest } from '../../installer/bundle/format.js';
import { MAX_BUNDLE_BYTES, MAX_BUNDLE_ENTRIES, type OpenOptions, openBundle } from '../../installer/bundle/open.js';
import {
  fingerprint,
  generateSigningKey,
  readPublicKeyFile,
  readSigningKey,
  readTrustedKeys,
  signManifest,
} from '../../installer/bundle/signature.js';
import { BundleError, KeyFileError } from '../../installer/errors.js';
import { ROOT, removeDir, tempDir } from '../helpers/index.js';

/*
 * What a bundle may carry into a root install: only what its signer put in
 * it, and no privilege. One real bundle (createBundle, signed) and its
 * variants rewritten entry by entry; small hand-made tarballs (raw headers
 * written with node-tar's Header) for what createBundle never produces:
 * setuid bits, foreign owners, link chains, forged release ids.
 */

const asRoot = process.getuid?.() === 0;
let dir: string;
let signer: Awaited<ReturnType<typeof generateSigningKey>>;
let stranger: Awaited<ReturnType<typeof generateSigningKey>>;
let signed: string;
let version: string;
/** The entries of the signed bundle, in order, to write variants of it. */
let entries: Entry[];

interface Entry {
  path: string;
  type: tar.Header['type'];
  mode?: number;
  uid?: number;
  gid?: number;
  linkpath?: string;
  data?: Buffer;
}

/** A tar archive from raw headers: any mode, owner, link or name, as a hostile bundle would have. */
function tarball(list: Entry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of list) {
    const data = e.data ?? Buffer.alloc(0);
    const h = new tar.Header({
      path: e.path,
      type: e.type,
      mode: e.mode ?? (e.type === 'Directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      size: data.length,
      mtime: new Date(0),
      linkpath: e.linkpath,
    });
    // Names too long for the ustar fields go in a pax header first.
    if (h.encode()) blocks.push(new tar.Pax({ path: e.path, ...(e.linkpath ? { linkpath: e.linkpath } : {}) }).encode());
    blocks.push(h.block!, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

async function readEntries(file: string): Promise<Entry[]> {
  const out: Entry[] = [];
  await tar.t({
    file,
    onReadEntry: (e) => {
      const entry: Entry = { path: e.path, type: e.type, mode: e.mode, linkpath: e.linkpath };
      const chunks: Buffer[] = [];
      e.on('data', (c: Buffer) => chunks.push(c));
      e.on('end', () => (entry.data = Buffer.concat(chunks)));
      out.push(entry);
    },
  });
  return out;
}

/** The signed bundle with its top-level files changed: `edit` returns new bytes, or null to drop the entry. */
async function variant(name: string, edit: (rest: string, data: Buffer) => Buffer | null | undefined): Promise<string> {
  const top = `canopsis-${version}/`;
  const out: Entry[] = [];
  for (const e of entries) {
    const rest = e.path.slice(top.length);
    const data = e.type === 'File' && !rest.includes('/') ? edit(rest, e.data!) : undefined;
    if (data === null) continue;
    out.push(data ? { ...e, data } : e);
  }
  const file = path.join(dir, name);
  await writeFile(file, tarball(out));
  return file;
}

const TOP = () => `canopsis-${version}`;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * A small bundle of `files` (rel -> entry without the top dir); its manifest
 * lists them (links with their targets) unless `manifest` changes it; signed
 * by `key` when given.
 */
async function handmade(name: string, files: Entry[], manifest: Partial<BundleManifest> = {}, key?: KeyObject): Promise<string> {
  const m: BundleManifest = {
    format: 1,
    name: 'canopsis-appliance',
    version,
    release: `${version}+0123abcd`,
    created: new Date(0).toISOString(),
    files: {},
    links: {},
  };
  for (const f of files) {
    if (f.type === 'File') m.files[f.path] = { sha256: sha(f.data!), size: f.data!.length, mode: (f.mode ?? 0o644) & 0o777 };
    if (f.type === 'SymbolicLink') m.links[f.path] = f.linkpath!;
  }
  const text = Buffer.from(JSON.stringify({ ...m, ...manifest }));
  const list: Entry[] = [
    { path: `${TOP()}/`, type: 'Directory' },
    { path: `${TOP()}/MANIFEST.json`, type: 'File', data: text },
  ];
  if (key) list.push({ path: `${TOP()}/MANIFEST.json.sig`, type: 'File', data: Buffer.from(signManifest(text, key)) });
  for (const f of files) list.push({ ...f, path: `${TOP()}/${f.path}` });
  const file = path.join(dir, name);
  await writeFile(file, gzipSync(tarball(list)));
  return file;
}

/** A fresh, empty directory to extract into: a refusal must leave it empty. */
async function workDir(tag: string): Promise<string> {
  const w = path.join(dir, `work-${tag}`);
  await mkdir(w);
  return w;
}

async function refused(p: Promise<unknown>, reason: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof BundleError, `a BundleError, got ${String(e)}`);
    assert.equal(e.exitCode, 8);
    assert.match(e.message, reason);
    return true;
  });
}

const trust = (o: Partial<OpenOptions> = {}): OpenOptions => ({ trustedKeys: [signer.publicKey], allowUnsigned: false, ...o });

before(async () => {
  dir = await tempDir('bundle-trust');
  signer = await generateSigningKey(path.join(dir, 'keys'));
  stranger = await generateSigningKey(path.join(dir, 'stranger'));
  const built = await createBundle(path.join(dir, 'out'), ROOT, { signKey: signer.privateKey });
  signed = built.file;
  version = built.manifest.version;
  assert.equal(built.fingerprint, signer.fingerprint);
  entries = await readEntries(signed);
});
after(async () => {
  await removeDir(dir);
});

test('a bundle signed by a trusted key opens, verified, its modes ours', async () => {
  const work = await workDir('verified');
  // As an operator gives it: the directory PREFIX/etc/trusted-keys.
  const keysDir = path.join(dir, 'trusted-keys');
  await mkdir(keysDir, { mode: 0o755 });
  await writeFile(path.join(keysDir, 'release-team.pem'), await readFile(signer.publicKey));
  const keys = await readTrustedKeys(keysDir);
  assert.equal(keys.length, 1);
  const opened = await openBundle(signed, work, { trustedKeys: keys, allowUnsigned: false });
  try {
    assert.equal(opened.signature, 'verified');
    assert.equal(opened.fingerprint, signer.fingerprint);
    assert.equal(opened.skipped, undefined);
    const hook = await stat(path.join(opened.dir, 'release', 'packaging', 'hooks', 'preinst'));
    assert.equal(hook.mode & 0o7777, 0o755, 'a hook stays executable');
    const tpl = await stat(path.join(opened.dir, 'release', 'templates', 'amqp.conf.hbs'));
    assert.equal(tpl.mode & 0o7777, 0o644);
  } finally {
    await opened.cleanup();
  }
  assert.deepEqual(await readdir(work), [], 'cleanup leaves nothing');
});

test('an unsigned bundle is refused; with allowUnsigned it opens and says the signature was not checked', async () => {
  const unsigned = await variant('unsigned.tar', (rest) => (rest === 'MANIFEST.json.sig' ? null : undefined));
  const work = await workDir('unsigned');
  await refused(openBundle(unsigned, work, trust()), /the bundle is not signed; refused .*--allow-unsigned/);
  assert.deepEqual(await readdir(work), [], 'refused before extracting');
  const opened = await openBundle(unsigned, work, trust({ allowUnsigned: true }));
  try {
    assert.equal(opened.signature, 'unsigned');
    assert.equal(opened.skipped, 'the bundle is not signed');
    assert.equal(opened.manifest.version, version);
  } finally {
    await opened.cleanup();
  }
});

test('a bundle signed by a key not trusted is refused, naming the key it found', async () => {
  const other = await readSigningKey(stranger.privateKey);
  const file = await variant('untrusted.tar', (rest, _data) =>
    rest === 'MANIFEST.json.sig'
      ? Buffer.from(signManifest(entries.find((e) => e.path === `${TOP()}/MANIFEST.json`)!.data!, other))
      : undefined,
  );
  const work = await workDir('untrusted');
  assert.notEqual(stranger.fingerprint, signer.fingerprint);
  await refused(
    openBundle(file, work, trust()),
    new RegExp(`signed by ${stranger.fingerprint}, which is not among the 1 trusted key; refused`),
  );
  // Trusted keys given as key objects work the same as PEM files.
  await refused(
    openBundle(file, work, trust({ trustedKeys: [await readPublicKeyFile(signer.publicKey)] })),
    new RegExp(stranger.fingerprint),
  );
  assert.deepEqual(await readdir(work), [], 'refused before extracting');
});

test('a manifest or signature changed after signing is refused, with or without allowUnsigned', async () => {
  const work = await workDir('tampered');
  // One byte: a checksum of one file, so that the tampered file would pass its check.
  const manifest = entries.find((e) => e.path === `${TOP()}/MANIFEST.json`)!.data!;
  const at = manifest.indexOf('"sha256": "') + 11;
  const forged = Buffer.from(manifest);
  forged[at] = forged[at] === 0x30 ? 0x31 : 0x30;
  const tampered = await variant('tampered.tar', (rest) => (rest === 'MANIFEST.json' ? forged : undefined));
  for (const allowUnsigned of [false, true]) {
    await refused(
      openBundle(tampered, work, trust({ allowUnsigned })),
      new RegExp(
        `the signature by ${signer.fingerprint} does not match MANIFEST\\.json: the manifest or its signature was changed after signing; refused`,
      ),
    );
  }
  const sigText = entries.find((e) => e.path === `${TOP()}/MANIFEST.json.sig`)!.data!.toString();
  const sig = JSON.parse(sigText) as { signature: string };
  const flipped = `${sig.signature[0] === 'A' ? 'B' : 'A'}${sig.signature.slice(1)}`;
  const badSig = await variant('badsig.tar', (rest) =>
    rest === 'MANIFEST.json.sig' ? Buffer.from(sigText.replace(sig.signature, flipped)) : undefined,
  );
  await refused(openBundle(badSig, work, trust()), /does not match MANIFEST\.json/);
  const garbage = await variant('garbage-sig.tar', (rest) => (rest === 'MANIFEST.json.sig' ? Buffer.from('not json') : undefined));
  await refused(openBundle(garbage, work, trust({ allowUnsigned: true })), /MANIFEST\.json\.sig is not a signature file/);
  assert.deepEqual(await readdir(work), [], 'nothing extracted');
});

test('a bundle over the size or entry cap is refused before anything is written', async () => {
  assert.equal(MAX_BUNDLE_BYTES, 2 * 1024 ** 3);
  assert.equal(MAX_BUNDLE_ENTRIES, 200_000);
  const work = await workDir('cap');
  await refused(
    openBundle(signed, work, trust({ limits: { bytes: 10 * 1024 * 1024 } })),
    /its entries declare more than 10485760 bytes .*over the cap; refused before extracting anything/,
  );
  await refused(
    openBundle(signed, work, trust({ limits: { entries: 1000 } })),
    /more than 1000 entries, over the cap; refused before extracting anything/,
  );
  assert.deepEqual(await readdir(work), [], 'nothing was extracted');
});

test("setuid, setgid and sticky bits and the archive's owners do not survive extraction", async () => {
  const tool = Buffer.from('#!/bin/sh\necho tool\n');
  const data = Buffer.from('data\n');
  const file = await handmade('setuid.tar.gz', [
    { path: 'release/', type: 'Directory', mode: 0o2777, uid: 12345, gid: 12345 },
    { path: 'release/bin/', type: 'Directory', mode: 0o1777 },
    { path: 'release/bin/tool', type: 'File', mode: 0o4755, data: tool },
    { path: 'release/bin/group-tool', type: 'File', mode: 0o2770, uid: 12345, gid: 12345, data: tool },
    { path: 'release/data', type: 'File', mode: 0o666, uid: 12345, gid: 12345, data },
    { path: 'release/data-link', type: 'SymbolicLink', linkpath: 'data', uid: 12345, gid: 12345 },
  ]);
  const work = await workDir('setuid');
  const opened = await openBundle(file, work, trust({ allowUnsigned: true }));
  try {
    assert.equal(opened.signature, 'unsigned');
    const r = (rel: string) => lstat(path.join(opened.dir, rel));
    const expect: Array<[string, number]> = [
      ['release', 0o755],
      ['release/bin', 0o755],
      ['release/bin/tool', 0o755],
      ['release/bin/group-tool', 0o755],
      ['release/data', 0o644],
    ];
    for (const [rel, mode] of expect) {
      const st = await r(rel);
      assert.equal((st.mode & 0o7777).toString(8), mode.toString(8), `${rel} mode`);
      if (asRoot) assert.deepEqual([st.uid, st.gid], [0, 0], `${rel} owned by root`);
    }
    if (asRoot)
      assert.deepEqual([(await r('release/data-link')).uid, (await r('release/data-link')).gid], [0, 0], 'the link owned by root');
  } finally {
    await opened.cleanup();
  }
});

test('a link that is lexically inside but resolves outside the release through another link is refused, naming it', async () => {
  const cases: Array<[string, Entry[], string]> = [
    // a -> . makes a/a/a/a the release itself; four .. from there is /.
    [
      'chain',
      [
        { path: 'release/a', type: 'SymbolicLink', linkpath: '.' },
        { path: 'release/b', type: 'SymbolicLink', linkpath: 'a/a/a/a/../../../..' },
      ],
      'release/b',
    ],
    // A directory link followed by ..: x/y/up -> ../.. is the release; e -> x/y/up/../../.. is lexically the release, really two levels above it.
    [
      'dirlink',
      [
        { path: 'release/x/y/', type: 'Directory' },
        { path: 'release/x/y/up', type: 'SymbolicLink', linkpath: '../..' },
        { path: 'release/e', type: 'SymbolicLink', linkpath: 'x/y/up/../../..' },
      ],
      'release/e',
    ],
  ];
  for (const [name, files, culprit] of cases) {
    const file = await handmade(`${name}.tar.gz`, [{ path: 'release/', type: 'Directory' }, ...files]);
    const work = await workDir(name);
    await refused(
      openBundle(file, work, trust({ allowUnsigned: true })),
      new RegExp(
        `entry canopsis-${version.replace(/\./g, '\\.')}/${culprit} links to .*, which resolves to .*, outside the release; refused`,
      ),
    );
    assert.deepEqual(await readdir(work), [], `${name}: nothing left behind`);
  }
});

test('a release id that is not <version>+<8 hex> is refused before extraction', async () => {
  assert.equal(checkReleaseId('0.3.0+3594e9d5', 'here', '0.3.0'), '0.3.0+3594e9d5');
  assert.match('1.2.3-rc.1+0123abcd', RELEASE_ID);
  const ids = ['../../x', `${version}+zz`, `${version}+0123abcd/../../evil`, `${version}+0123ABCD`, '0.0.1+0123abcd'];
  for (const release of ids) {
    assert.throws(() => checkReleaseId(release, 'state.json', version), ReleaseIdError);
    const file = await handmade('bad-id.tar.gz', [{ path: 'release/', type: 'Directory' }], { release });
    const work = await workDir(`id-${ids.indexOf(release)}`);
    await refused(
      openBundle(file, work, trust({ allowUnsigned: true })),
      new RegExp(
        `MANIFEST\\.json: release id ".*" is not ${release.startsWith(version) || release.startsWith('..') ? '<version>\\+<8 hex digits>' : `of version ${version.replace(/\./g, '\\.')}`}`,
      ),
    );
    assert.deepEqual(await readdir(work), []);
  }
  const badVersion = await handmade('bad-version.tar.gz', [{ path: 'release/', type: 'Directory' }], {
    version: '0.3.0/../../x',
    release: '0.3.0+0123abcd',
  });
  await refused(openBundle(badVersion, await workDir('bad-version'), trust({ allowUnsigned: true })), /MANIFEST\.json missing or invalid/);
});

test('a hand-made bundle signed by an unknown key opens with allowUnsigned, reported as untrusted', async () => {
  const other = await readSigningKey(stranger.privateKey);
  const file = await handmade(
    'stranger.tar.gz',
    [
      { path: 'release/', type: 'Directory' },
      { path: 'release/x', type: 'File', data: Buffer.from('x') },
    ],
    {},
    other,
  );
  await refused(openBundle(file, await workDir('stranger-refused'), trust()), new RegExp(stranger.fingerprint));
  const opened = await openBundle(file, await workDir('stranger'), trust({ allowUnsigned: true }));
  assert.equal(opened.signature, 'untrusted');
  assert.equal(opened.fingerprint, stranger.fingerprint);
  assert.match(opened.skipped!, new RegExp(`signed by ${stranger.fingerprint}, which is not among the 1 trusted key`));
  await opened.cleanup();
});

test('trusted keys: a directory or key another user could write is refused, and so is anything but an Ed25519 public key', async () => {
  const keys = path.join(dir, 'keys-check');
  await mkdir(keys, { mode: 0o755 });
  const pem = await readFile(signer.publicKey);
  await writeFile(path.join(keys, 'a.pem'), pem, { mode: 0o644 });
  await writeFile(path.join(keys, 'README'), 'not a key, not read\n');
  assert.equal((await readTrustedKeys(keys)).length, 1);
  assert.deepEqual(await readTrustedKeys(path.join(dir, 'absent')), []);

  const refusedKeys = async (reason: RegExp) =>
    assert.rejects(readTrustedKeys(keys), (e: unknown) => {
      assert.ok(e instanceof KeyFileError, String(e));
      assert.match((e as Error).message, reason);
      return true;
    });
  await chmod(keys, 0o775);
  await refusedKeys(new RegExp(`the trusted keys directory ${keys} is writable by its group \\(mode 0775\\)`));
  await chmod(keys, 0o755);
  await chmod(path.join(keys, 'a.pem'), 0o646);
  await refusedKeys(new RegExp(`${keys}/a\\.pem is writable by its others`));
  await chmod(path.join(keys, 'a.pem'), 0o644);
  if (asRoot) {
    await chown(path.join(keys, 'a.pem'), 12345, 12345);
    await refusedKeys(new RegExp(`${keys}/a\\.pem is owned by uid 12345, not root`));
    await chown(path.join(keys, 'a.pem'), 0, 0);
    await chown(keys, 12345, 0);
    await refusedKeys(/trusted keys directory .* is owned by uid 12345, not root/);
    await chown(keys, 0, 0);
  }
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  await writeFile(path.join(keys, 'b.pem'), rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string);
  await refusedKeys(new RegExp(`${keys}/b\\.pem is an rsa key; bundles are signed with Ed25519 keys`));
  await writeFile(path.join(keys, 'b.pem'), await readFile(signer.privateKey));
  await chmod(path.join(keys, 'b.pem'), 0o644);
  await refusedKeys(new RegExp(`${keys}/b\\.pem holds a private key`));
  await writeFile(path.join(keys, 'b.pem'), 'hello\n');
  await refusedKeys(new RegExp(`${keys}/b\\.pem is not a PEM public key`));
});

test('a generated key pair: private 0600, public 0644 whatever the umask, never overwritten; a key of another kind cannot sign', async () => {
  const old = process.umask(0o077);
  let made: Awaited<ReturnType<typeof generateSigningKey>>;
  try {
    made = await generateSigningKey(path.join(dir, 'keygen'));
  } finally {
    process.umask(old);
  }
  assert.equal((await stat(made.privateKey)).mode & 0o777, 0o600);
  assert.equal((await stat(made.publicKey)).mode & 0o777, 0o644);
  assert.equal(fingerprint(await readPublicKeyFile(made.publicKey)), made.fingerprint);
  assert.match(made.fingerprint, /^sha256:[0-9a-f]{64}$/);
  const before = await readFile(made.privateKey);
  await assert.rejects(generateSigningKey(path.join(dir, 'keygen')), /already exists; a key is never overwritten/);
  assert.deepEqual(await readFile(made.privateKey), before);

  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsaFile = path.join(dir, 'rsa.key');
  await writeFile(rsaFile, rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  await assert.rejects(
    createBundle(path.join(dir, 'never'), ROOT, { signKey: rsaFile }),
    new RegExp(`${rsaFile} is an rsa key; bundles are signed with Ed25519 keys`),
  );
  await assert.rejects(stat(path.join(dir, 'never')), 'refused before building anything');
});

test('a release copied from a checkout made under umask 027 is readable by all and carries no setuid bit', async () => {
  const src = path.join(dir, 'checkout');
  const old = process.umask(0o027);
  try {
    for (const d of ['dist/installer', 'dist/runtime', 'dist/console', 'templates', 'systemd', 'packaging/hooks'])
      await mkdir(path.join(src, d), { recursive: true });
    await writeFile(path.join(src, 'dist/installer/cli.js'), 'console.log(1)\n');
    await writeFile(path.join(src, 'packaging/hooks/preinst'), '#!/bin/sh\n', { mode: 0o750 });
    await chmod(path.join(src, 'packaging/hooks/preinst'), 0o4750);
    await writeFile(path.join(src, 'package.json'), '{"version":"0.3.0"}\n');
    await writeFile(path.join(src, 'package-lock.json'), '{}\n');
  } finally {
    process.umask(old);
  }
  assert.equal((await stat(path.join(src, 'dist/installer/cli.js'))).mode & 0o777, 0o640, 'the checkout as umask 027 makes it');
  const releases = path.join(dir, 'releases');
  await mkdir(releases);
  assert.equal(await installRelease({ root: src, version: '0.3.0', id: '0.3.0+0123abcd', packages: [] }, releases), true);
  const rel = path.join(releases, '0.3.0+0123abcd');
  const modes = async (p: string) => ((await lstat(path.join(rel, p))).mode & 0o7777).toString(8);
  assert.equal(await modes('.'), '755');
  assert.equal(await modes('dist'), '755');
  assert.equal(await modes('dist/installer'), '755');
  assert.equal(await modes('dist/installer/cli.js'), '644');
  assert.equal(await modes('packaging/hooks/preinst'), '755');
  assert.equal(await modes('package.json'), '644');
});

test('a key file linked into the trusted keys by a symbolic link is judged by what it points to', async () => {
  const keys = path.join(dir, 'keys-link');
  await mkdir(keys, { mode: 0o755 });
  const loose = path.join(dir, 'loose.pem');
  await writeFile(loose, await readFile(signer.publicKey));
  await chmod(loose, 0o666);
  await symlink(loose, path.join(keys, 'linked.pem'));
  await assert.rejects(readTrustedKeys(keys), new RegExp(`${keys}/linked\\.pem is writable by its group`));
});
