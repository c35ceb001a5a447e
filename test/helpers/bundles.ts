import { copyFile, mkdir, readFile, rename, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { buildInstall, ROOT, removeDir, run, tempDir } from './index.js';

/*
 * The bundles the update tests move between: v1 is 0.2.0 built from its own
 * commit of this repository (its code, its templates, its installer), v2 is
 * the tree under test. Building v1 takes a minute, so it is kept per commit
 * in the temp dir (what a commit builds does not change).
 */

/** The commit of 0.2.0 as it was released. */
export const V1_COMMIT = 'f93ba416913f777ae9737419c69c260f8e538381';

/** package-lock.json without the project's own version: equal when the dependencies are. */
async function deps(root: string): Promise<string> {
  const lock = JSON.parse(await readFile(path.join(root, 'package-lock.json'), 'utf8')) as {
    version?: string;
    packages: Record<string, unknown>;
  };
  delete lock.version;
  delete lock.packages[''];
  return JSON.stringify(lock);
}

/**
 * `work` done once among test files running at once: the first to take the
 * lock on `dir` runs it, the others wait and then find what it left
 * (`cached` answers undefined until then).
 */
async function onceUnderLock<T>(dir: string, name: string, cached: () => Promise<T | undefined>, work: () => Promise<T>): Promise<T> {
  await mkdir(dir, { recursive: true });
  const release = await lockfile.lock(dir, {
    lockfilePath: path.join(dir, `${name}.lock`),
    retries: { retries: 600, minTimeout: 500, maxTimeout: 500 },
  });
  try {
    return (await cached()) ?? (await work());
  } finally {
    await release();
  }
}

export function bundleOfCommit(commit: string): Promise<string> {
  const cacheDir = path.join(os.tmpdir(), 'cps-test-bundles');
  const cached = path.join(cacheDir, `${commit}.tar.gz`);
  // The update tests ask at once: one builds, the other waits and takes it.
  return onceUnderLock(
    cacheDir,
    commit,
    () =>
      stat(cached).then(
        () => cached,
        () => undefined,
      ),
    () => buildCommit(commit, cached),
  );
}

async function buildCommit(commit: string, cached: string): Promise<string> {
  const has = await run('git', ['-C', ROOT, 'cat-file', '-e', `${commit}^{commit}`]);
  if (has.exitCode !== 0)
    throw new Error(
      `the update tests build v1 from commit ${commit} of this repository, which this clone lacks (a shallow clone?): ${has.all}`,
    );
  const work = await tempDir('v1-source');
  try {
    const src = path.join(work, 'src');
    await mkdir(src);
    const archive = await run('sh', ['-c', 'git -C "$1" archive "$2" | tar -x -C "$3"', 'sh', ROOT, commit, src]);
    if (archive.exitCode !== 0) throw new Error(`git archive ${commit}: ${archive.all}`);
    // Same dependencies: borrow ours rather than install them again.
    if ((await deps(src)) === (await deps(ROOT))) await symlink(path.join(ROOT, 'node_modules'), path.join(src, 'node_modules'));
    const b = await run(path.join(src, 'build-install'), ['bundle', '--out', work, '--json'], { cwd: src });
    if (b.exitCode !== 0) throw new Error(`building the bundle of ${commit}: ${b.all}`);
    const file = (JSON.parse(b.stdout.trim().split('\n').at(-1)!) as { file: string }).file;
    const tmp = `${cached}.${process.pid}.tmp`;
    await copyFile(file, tmp);
    await rename(tmp, cached);
    return cached;
  } finally {
    await removeDir(work);
  }
}

export interface SignedBundle {
  file: string;
  release: string;
  /** The signer's fingerprint as `bundle` reported it, and as `keygen` did. */
  fingerprint: string;
  keyFingerprint: string;
  publicKey: string;
}

/**
 * The bundle of the tree under test signed as a release team would, its
 * release id and the public key that verifies it. Built once per test run
 * (test/run.mjs names the directory) and shared by the files that need it,
 * read-only; `out` is used when a file runs alone without that directory.
 */
export async function currentBundle(out: string): Promise<SignedBundle> {
  const shared = process.env.CPS_TEST_RUN_CACHE;
  if (!shared) return buildSigned(out);
  const done = path.join(shared, 'current-bundle.json');
  // Several test files ask at once: one builds, the others wait for it.
  return onceUnderLock(
    shared,
    'current-bundle',
    async () => {
      const text = await readFile(done, 'utf8').catch(() => undefined);
      return text ? (JSON.parse(text) as SignedBundle) : undefined;
    },
    async () => {
      const built = await buildSigned(path.join(shared, 'current'));
      await writeFile(done, JSON.stringify(built));
      return built;
    },
  );
}

async function buildSigned(out: string): Promise<SignedBundle> {
  const keys = path.join(out, 'signing-keys');
  const k = await buildInstall(['keygen', '--out', keys, '--json']);
  if (k.exitCode !== 0) throw new Error(`keygen: ${k.all}`);
  const b = await buildInstall(['bundle', '--out', out, '--sign-key', path.join(keys, 'bundle-signing.key'), '--json']);
  if (b.exitCode !== 0) throw new Error(`bundle: ${b.all}`);
  const made = JSON.parse(b.stdout) as { file: string; release: string; fingerprint: string };
  return {
    file: made.file,
    release: made.release,
    fingerprint: made.fingerprint,
    keyFingerprint: (JSON.parse(k.stdout) as { fingerprint: string }).fingerprint,
    publicKey: path.join(keys, 'bundle-signing.pub.pem'),
  };
}

/** What an operator does once per host: the release team's public key in PREFIX/etc/trusted-keys/. */
export async function trustIn(prefix: string, publicKey: string): Promise<void> {
  await mkdir(path.join(prefix, 'etc', 'trusted-keys'), { recursive: true });
  await copyFile(publicKey, path.join(prefix, 'etc', 'trusted-keys', path.basename(publicKey)));
}
