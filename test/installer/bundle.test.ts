import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { appendFile, chmod, copyFile, mkdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { currentBundle } from '../helpers/bundles.js';
import { buildInstall, isolatedPorts, ROOT, removeDir, run, snapshot, tempDir } from '../helpers/index.js';

/*
 * Bundles: built, installed with no source tree involved, refused when
 * corrupt, truncated or escaping, and the remove / purge lifecycle.
 */

let dir: string;
let bundle: string;
let unsigned: string;
let publicKey: string;
const PORTS = isolatedPorts(5850);
const VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const V = VERSION.replace(/\./g, '\\.');

before(async () => {
  dir = await tempDir('bundle');
  // Signed with a key made by keygen (shared with the update tests: test/helpers/bundles.ts).
  const signed = await currentBundle(dir);
  assert.equal(signed.fingerprint, signed.keyFingerprint, 'the bundle names the key that signed it');
  publicKey = signed.publicKey;
  bundle = signed.file;
  const u = await buildInstall(['bundle', '--out', path.join(dir, 'unsigned'), '--json']);
  assert.equal(u.exitCode, 0, u.all);
  unsigned = JSON.parse(u.stdout).file;
});

/** What an operator does once per host: the signer's public key in etc/trusted-keys/. */
async function trust(prefix: string): Promise<void> {
  await mkdir(path.join(prefix, 'etc', 'trusted-keys'), { recursive: true });
  await copyFile(publicKey, path.join(prefix, 'etc', 'trusted-keys', 'release-team.pem'));
}
after(async () => {
  await removeDir(dir);
});

/** Rewrites a bundle with Python's tarfile, which writes any entry name: for hostile bundles. */
async function craft(name: string, script: string): Promise<string> {
  const out = path.join(dir, name);
  const py = `
import tarfile, io, sys
src = tarfile.open(sys.argv[1], 'r:gz')
dst = tarfile.open(sys.argv[2], 'w:gz')
def add(info, data=None):
    dst.addfile(info, io.BytesIO(data) if data is not None else None)
${script}
dst.close()
`;
  const r = await run('python3', ['-c', py, bundle, out]);
  assert.equal(r.exitCode, 0, r.all);
  return out;
}

const COPY_ALL = `
for m in src.getmembers():
    add(m, src.extractfile(m).read() if m.isfile() else None)
`;

test('a bundle is installed only when its signer is trusted, or the operator says to skip that', async () => {
  const prefix = path.join(dir, 'trust');
  const refused = await buildInstall(['install', '--bundle', unsigned, '--prefix', prefix, ...PORTS]);
  assert.equal(refused.exitCode, 8, refused.all);
  assert.match(
    refused.stderr,
    /unsigned.*refused \(trust its signer: its public key in etc\/trusted-keys\/ or --trusted-key FILE; or accept it unchecked with --allow-unsigned\)/,
  );
  const untrusted = await buildInstall(['install', '--bundle', bundle, '--prefix', prefix, ...PORTS]);
  assert.equal(untrusted.exitCode, 8, untrusted.all);
  assert.match(untrusted.stderr, /sha256:[0-9a-f]{64}/, 'the signer is named');
  await assert.rejects(stat(path.join(prefix, 'lib')), 'nothing of it was placed');
  const skipped = await buildInstall(['install', '--bundle', unsigned, '--prefix', prefix, ...PORTS, '--allow-unsigned']);
  assert.equal(skipped.exitCode, 0, skipped.all);
  assert.match(skipped.stdout, /warning: the bundle's signature was not checked \(--allow-unsigned\)/);
  await buildInstall(['purge', '--prefix', prefix, '--yes']);
});

test('install from a bundle, status, an edited conffile listed', async () => {
  const prefix = path.join(dir, 'p');
  const r = await buildInstall(['install', '--bundle', bundle, '--prefix', prefix, ...PORTS, '--trusted-key', publicKey]);
  assert.equal(r.exitCode, 0, r.all);
  assert.match(r.stdout, /signed by sha256:[0-9a-f]{64}, a trusted key/);
  await trust(prefix);
  assert.match(r.stdout, new RegExp(`installed ${V} \\(${V}\\+[0-9a-f]{8}\\)`));
  // The same bundle again: known by its signed manifest, not extracted a second time, nothing written.
  const same = await buildInstall(['update', '--bundle', bundle, '--prefix', prefix, '--timings']);
  assert.equal(same.exitCode, 0, same.all);
  assert.match(same.stdout, /signed by sha256:[0-9a-f]{64}, a trusted key/);
  assert.match(same.stdout, /is in place, placed from this same bundle file: not extracted again/);
  assert.match(same.stdout, /: 0 files written/);
  assert.match(same.stdout, /\d+\.\d\d s {2}Check the bundle\n/);
  // Not the same file (here the same bundle cut short): checked whole, and refused.
  const cut = path.join(dir, 'cut.tar.gz');
  await copyFile(bundle, cut);
  await truncate(cut, Math.floor((await stat(cut)).size / 2));
  const truncated = await buildInstall(['update', '--bundle', cut, '--prefix', prefix]);
  assert.equal(truncated.exitCode, 8, truncated.all);
  assert.match(truncated.stderr, /corrupt or truncated/);
  // A record of placed bundles root did not write alone proves nothing: the bundle is checked whole.
  const record = path.join(prefix, 'var', 'lib', 'pkgmgr', 'bundles.json');
  assert.equal((await stat(record)).mode & 0o777, 0o644);
  await chmod(record, 0o666);
  const distrusted = await buildInstall(['update', '--bundle', bundle, '--prefix', prefix]);
  assert.equal(distrusted.exitCode, 0, distrusted.all);
  assert.doesNotMatch(distrusted.stdout, /not extracted again/);
  await chmod(record, 0o644);
  await appendFile(path.join(prefix, 'etc', 'webserver.conf'), '; edited\n');
  const s = await buildInstall(['status', '--prefix', prefix, '--json']);
  const status = JSON.parse(s.stdout);
  assert.equal(status.version, VERSION);
  assert.equal(status.running, false);
  assert.deepEqual(status.modifiedConffiles, ['etc/webserver.conf']);

  // An installed version newer than the bundle: the update is a downgrade, refused.
  const manifest = path.join(prefix, 'var', 'lib', 'pkgmgr', 'manifest.json');
  const m = JSON.parse(await readFile(manifest, 'utf8'));
  await writeFile(manifest, JSON.stringify({ ...m, version: '9.0.0' }));
  const down = await buildInstall(['update', '--bundle', bundle, '--prefix', prefix]);
  assert.equal(down.exitCode, 2, down.all);
  assert.match(down.stderr, new RegExp(`version ${V}, older than the installed 9\\.0\\.0: downgrade refused without --allow-downgrade`));
  await writeFile(manifest, JSON.stringify(m));

  // A new version that refuses the settings refuses before writing: the prefix is as it was, no journal left.
  const etc = await snapshot(path.join(prefix, 'etc'));
  // --yes as with install (0.3.0 answered "unknown option").
  const bad = await buildInstall(['update', '--bundle', bundle, '--prefix', prefix, '--yes', '--set', 'rabbitmq.port=abc']);
  assert.equal(bad.exitCode, 1, bad.all);
  assert.match(bad.stderr, /the installer of .* refused \(exit 2\): .*rabbitmq\.port.*; nothing was changed/);
  assert.deepEqual(await snapshot(path.join(prefix, 'etc')), etc);
  await assert.rejects(stat(path.join(prefix, 'var', 'lib', 'pkgmgr', 'transaction')));

  // remove keeps settings and data; a later install finds them.
  const secrets = await readFile(path.join(prefix, 'etc', 'canopsis-secrets.ini'), 'utf8');
  const rm = await buildInstall(['remove', '--prefix', prefix]);
  assert.equal(rm.exitCode, 0, rm.all);
  await assert.rejects(stat(path.join(prefix, 'bin')));
  await assert.rejects(stat(path.join(prefix, 'lib')));
  assert.equal(await readFile(path.join(prefix, 'etc', 'canopsis-secrets.ini'), 'utf8'), secrets);
  await stat(path.join(prefix, 'var', 'lib', 'pkgmgr', 'manifest.json'));
  const again = await buildInstall(['install', '--bundle', bundle, '--prefix', prefix, ...PORTS]);
  assert.match(again.stdout, /a trusted key/, 'etc/trusted-keys/ survived remove');
  assert.equal(again.exitCode, 0, again.all);
  assert.equal(await readFile(path.join(prefix, 'etc', 'canopsis-secrets.ini'), 'utf8'), secrets, 'the credentials survived');
  assert.match(await readFile(path.join(prefix, 'etc', 'webserver.conf'), 'utf8'), /; edited/);

  const refused = await buildInstall(['purge', '--prefix', prefix]);
  assert.equal(refused.exitCode, 2);
  assert.match(refused.stderr, /add --yes to confirm/);
  const purged = await buildInstall(['purge', '--prefix', prefix, '--yes']);
  assert.equal(purged.exitCode, 0, purged.all);
  await assert.rejects(stat(prefix), 'purge leaves nothing');
});

const HOSTILE: Array<[string, string, RegExp]> = [
  ['truncated', '', /corrupt or truncated/],
  ['corrupt', '', /corrupt or truncated|cannot extract|checksum/],
  [
    'dotdot',
    `${COPY_ALL}
i = tarfile.TarInfo('canopsis-${VERSION}/release/../../../evil'); i.size = 4
add(i, b'evil')`,
    new RegExp(`entry canopsis-${V}/release/\\.\\./\\.\\./\\.\\./evil climbs out with \\.\\.`),
  ],
  [
    'absolute',
    `${COPY_ALL}
i = tarfile.TarInfo('/tmp/evil'); i.size = 4
add(i, b'evil')`,
    /entry \/tmp\/evil has an absolute path/,
  ],
  [
    'link',
    `${COPY_ALL}
i = tarfile.TarInfo('canopsis-${VERSION}/release/escape'); i.type = tarfile.SYMTYPE; i.linkname = '../../../../etc/passwd'
add(i)`,
    new RegExp(`entry canopsis-${V}/release/escape links to \\.\\./\\.\\./\\.\\./\\.\\./etc/passwd, outside the bundle`),
  ],
  [
    'checksum',
    `
for m in src.getmembers():
    data = src.extractfile(m).read() if m.isfile() else None
    if m.name.endswith('release/templates/amqp.conf.hbs'):
        data = data + b'# tampered\\n'; m.size = len(data)
    add(m, data)`,
    /entry release\/templates\/amqp\.conf\.hbs does not match its checksum/,
  ],
];

test('corrupt, truncated and path-escaping bundles are refused, naming the entry; nothing changes', async () => {
  const prefix = path.join(dir, 'victim');
  assert.equal((await buildInstall(['--prefix', prefix, ...PORTS])).exitCode, 0);
  await trust(prefix);
  const before = await snapshot(prefix);
  for (const [name, script, reason] of HOSTILE) {
    let file: string;
    if (name === 'truncated' || name === 'corrupt') {
      file = path.join(dir, `${name}.tar.gz`);
      await writeFile(file, await readFile(bundle));
      if (name === 'truncated') await truncate(file, Math.floor((await stat(file)).size / 2));
      else {
        const buf = await readFile(file);
        for (let i = 0; i < 64; i++) {
          const at = Math.floor(buf.length / 3) + i * 97;
          buf[at] = buf[at]! ^ 0xff;
        }
        await writeFile(file, buf);
      }
    } else file = await craft(`${name}.tar.gz`, script);
    const r = await buildInstall(['update', '--bundle', file, '--prefix', prefix]);
    assert.equal(r.exitCode, 8, `${name}: ${r.all}`);
    assert.match(r.stderr, reason, name);
  }
  assert.deepEqual(await snapshot(prefix), before, 'the installed tree is as it was');
  await assert.rejects(stat('/tmp/evil'));
});
