import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { execa } from 'execa';
import { lockPrefix } from '../../installer/apply/lock.js';
import { layoutOf } from '../../installer/layout.js';
import { ROOT, removeDir, tempDir, waitFor } from '../helpers/index.js';

/*
 * One build-install per prefix: a second one is told who holds the lock;
 * a holder killed with -9 does not block the next run.
 */

let dir: string;
before(async () => {
  dir = await tempDir('lock');
});
after(async () => {
  await removeDir(dir);
});

/** Another process holding the prefix lock until killed. */
function holder(prefix: string) {
  const lock = path.join(ROOT, 'dist', 'installer', 'apply', 'lock.js');
  const layout = path.join(ROOT, 'dist', 'installer', 'layout.js');
  const script = `const { lockPrefix } = await import(${JSON.stringify(lock)}); const { layoutOf } = await import(${JSON.stringify(layout)});
await lockPrefix(layoutOf(${JSON.stringify(prefix)})); process.stdout.write('locked\\n'); setInterval(() => {}, 1000);`;
  const child = execa(process.execPath, ['--input-type=module', '-e', script], { reject: false });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  return { child, locked: () => waitFor('the holder to take the lock', async () => out.includes('locked')) };
}

test('a second run is refused naming the holder; once the holder is killed -9 the lock is taken over at once', async () => {
  const layout = layoutOf(path.join(dir, 'p'));
  const h = holder(layout.prefix);
  await h.locked();
  await assert.rejects(lockPrefix(layout), (e: Error & { exitCode: number }) => {
    assert.equal(e.exitCode, 5);
    assert.match(
      e.message,
      new RegExp(
        `another build-install \\(pid ${h.child.pid}\\) is running on ${layout.prefix} \\(lock .*install\\.lock\\); wait for it to finish`,
      ),
    );
    return true;
  });
  h.child.kill('SIGKILL');
  await h.child;
  // proper-lockfile alone would wait 30 s for the lock to go stale.
  const release = await lockPrefix(layout);
  await assert.rejects(lockPrefix(layout), /another build-install \(pid \d+\) is running/);
  await release();
  const again = await lockPrefix(layout);
  await again();
});

test('a holder killed -9 while its release installer runs: the lock stays until that installer is gone too', async () => {
  const { writeFile, readFile } = await import('node:fs/promises');
  const layout = layoutOf(path.join(dir, 'q'));
  const sleeper = path.join(dir, 'sleeper.mjs');
  // Its holder's death closes its stdout: like an orphaned installer, it goes on (no EPIPE crash).
  await writeFile(sleeper, "process.stdout.on('error', () => {}); process.stdout.write('borrowed\\n'); setInterval(() => {}, 1000);\n");
  const lock = path.join(ROOT, 'dist', 'installer', 'apply', 'lock.js');
  const lay = path.join(ROOT, 'dist', 'installer', 'layout.js');
  const script = `const { lockPrefix, runBorrowing } = await import(${JSON.stringify(lock)}); const { layoutOf } = await import(${JSON.stringify(lay)});
const l = layoutOf(${JSON.stringify(layout.prefix)}); await lockPrefix(l); await runBorrowing(l, ${JSON.stringify(sleeper)}, []);`;
  const h = execa(process.execPath, ['--input-type=module', '-e', script], { reject: false });
  const owner = await waitFor('the lock lent to the release installer', async () => {
    const o = JSON.parse(await readFile(`${layout.pkgmgr}/install.lock.owner`, 'utf8')) as { borrower?: { pid: number } };
    return o.borrower;
  });
  // Killed only once the borrower runs the installer (under load, node may still be starting).
  await waitFor('the borrower running', async () =>
    (await readFile(`/proc/${owner.pid}/cmdline`, 'utf8').catch(() => '')).includes('sleeper.mjs'),
  );
  h.kill('SIGKILL');
  await h;
  await assert.rejects(lockPrefix(layout), /another build-install \(pid \d+\) is running/, 'the orphaned installer still writes');
  process.kill(owner.pid, 'SIGKILL');
  const release = await waitFor('the lock to be free once the installer is gone', () => lockPrefix(layout));
  await release();
});
