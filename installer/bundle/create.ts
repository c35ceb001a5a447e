import { createHash } from 'node:crypto';
import { cp, lstat, mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { filesUnder } from '../apply/fs.js';
import { describeRelease, installRelease, settleTree } from '../apply/release.js';
import { checkReleaseId } from '../apply/release-id.js';
import { SOURCE_ROOT } from '../source-root.js';
import { BUNDLE_MANIFEST, BUNDLE_SIGNATURE, type BundleManifest } from './format.js';
import { fingerprint, readSigningKey, signManifest } from './signature.js';

/* ./build-install bundle: everything an offline host needs, in one tarball. */

export interface CreateOptions {
  /** An Ed25519 private key (PEM): the manifest is signed with it (MANIFEST.json.sig). */
  signKey?: string;
}

export async function createBundle(
  outDir: string,
  root = SOURCE_ROOT,
  options: CreateOptions = {},
): Promise<{ file: string; manifest: BundleManifest; fingerprint?: string }> {
  // A key that cannot sign refuses before the long part.
  const key = options.signKey === undefined ? undefined : await readSigningKey(options.signKey);
  const src = await describeRelease(root);
  checkReleaseId(src.id, path.join(root, 'package.json'), src.version);
  const stage = await mkdtemp(path.join(os.tmpdir(), 'canopsis-bundle-'));
  try {
    const top = `canopsis-${src.version}`;
    const base = path.join(stage, top);
    await mkdir(base, { recursive: true });
    // The release exactly as an install lays it out, then renamed to release/.
    await installRelease(src, base);
    await cp(path.join(base, src.id), path.join(base, 'release'), { recursive: true, verbatimSymlinks: true });
    await rm(path.join(base, src.id), { recursive: true, force: true });
    const files: BundleManifest['files'] = {};
    const links: BundleManifest['links'] = {};
    for (const rel of await filesUnder(base)) {
      const abs = path.join(base, rel);
      const st = await lstat(abs);
      if (st.isSymbolicLink()) links[rel] = await readlink(abs);
      else
        files[rel] = {
          sha256: createHash('sha256')
            .update(await readFile(abs))
            .digest('hex'),
          size: st.size,
          mode: st.mode & 0o777,
        };
    }
    const manifest: BundleManifest = {
      format: 1,
      name: 'canopsis-appliance',
      version: src.version,
      release: src.id,
      created: new Date().toISOString(),
      files,
      links,
    };
    const text = Buffer.from(`${JSON.stringify(manifest, null, 1)}\n`);
    await writeFile(path.join(base, BUNDLE_MANIFEST), text);
    if (key) await writeFile(path.join(base, BUNDLE_SIGNATURE), signManifest(text, key));
    await settleTree(base);
    await mkdir(outDir, { recursive: true });
    const file = path.join(path.resolve(outDir), `${top}.tar.gz`);
    // The manifest and its signature first: a host that has this release already reads them and stops (open.ts readBundleHead).
    const head = [BUNDLE_MANIFEST, ...(key ? [BUNDLE_SIGNATURE] : [])].map((f) => `${top}/${f}`);
    await tar.c({ gzip: true, file, cwd: stage, portable: true }, [...head, `${top}/release`]);
    return key ? { file, manifest, fingerprint: fingerprint(key) } : { file, manifest };
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}
