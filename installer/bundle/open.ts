import { createHash } from 'node:crypto';
import { lstat, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import * as tar from 'tar';
import { InstallerError } from '../errors.js';
import { BUNDLE_MANIFEST, bundleManifest, type BundleManifest } from './format.js';

/*
 * Opening a bundle: every entry is inspected before anything is extracted
 * (no absolute path, no `..`, no link leaving the tree, only files,
 * directories and links), then every extracted file is checked against the
 * manifest's sha256. A refusal names the entry and leaves nothing behind.
 */

export class BundleError extends InstallerError {
  override readonly exitCode = 8;
}

function checkEntry(file: string, p: string, type: string, linkpath: string | undefined): string {
  const name = p.replace(/\/$/, '');
  if (path.posix.isAbsolute(p) || /^[A-Za-z]:/.test(p)) throw new BundleError(`${file}: entry ${p} has an absolute path; refused`);
  if (name.split('/').includes('..')) throw new BundleError(`${file}: entry ${p} climbs out with ..; refused`);
  if (!['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink'].includes(type)) throw new BundleError(`${file}: entry ${p} is a ${type}; only files, directories and symbolic links are allowed`);
  if (type === 'SymbolicLink') {
    const target = linkpath ?? '';
    const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(name), target));
    if (path.posix.isAbsolute(target) || resolved.startsWith('..') || resolved.split('/')[0] !== name.split('/')[0]) {
      throw new BundleError(`${file}: entry ${p} links to ${target}, outside the bundle; refused`);
    }
  }
  return name.split('/')[0]!;
}

async function walk(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(path.join(root, rel))) {
    const r = rel ? `${rel}/${e}` : e;
    const st = await lstat(path.join(root, r));
    if (st.isDirectory()) out.push(...(await walk(root, r)));
    else out.push(r);
  }
  return out;
}

export interface OpenedBundle {
  manifest: BundleManifest;
  /** The extracted top directory (holds release/, hooks/, MANIFEST.json). */
  dir: string;
  /** Removes the extraction. */
  cleanup: () => Promise<void>;
}

export async function openBundle(file: string, workDir: string): Promise<OpenedBundle> {
  const tops = new Set<string>();
  // A throw inside tar's entry callback escapes as an uncaught stream error: keep the first refusal and raise it after.
  let refusal: BundleError | undefined;
  try {
    await tar.t({
      file,
      strict: true,
      onReadEntry: (e) => {
        if (refusal) return;
        try {
          tops.add(checkEntry(file, e.path, e.type, e.linkpath));
        } catch (err) {
          refusal = err as BundleError;
        }
      },
    });
  } catch (e) {
    throw refusal ?? new BundleError(`${file}: not a readable bundle, corrupt or truncated (${(e as Error).message})`);
  }
  if (refusal) throw refusal;
  if (tops.size !== 1) throw new BundleError(`${file}: expected one top directory, found ${[...tops].join(', ') || 'none'}`);
  const tmp = await mkdtemp(path.join(workDir, '.bundle-'));
  const cleanup = () => rm(tmp, { recursive: true, force: true });
  try {
    await tar.x({ file, cwd: tmp, strict: true, preservePaths: false });
    const dir = path.join(tmp, [...tops][0]!);
    let manifest: BundleManifest;
    try {
      manifest = bundleManifest.parse(JSON.parse(await readFile(path.join(dir, BUNDLE_MANIFEST), 'utf8')));
    } catch (e) {
      throw new BundleError(`${file}: ${BUNDLE_MANIFEST} missing or invalid (${(e as Error).message.split('\n')[0]})`);
    }
    const present = new Set((await walk(dir)).filter((f) => f !== BUNDLE_MANIFEST));
    for (const [rel, want] of Object.entries(manifest.files)) {
      if (!present.delete(rel)) throw new BundleError(`${file}: entry ${rel} listed in the manifest is missing`);
      const got = createHash('sha256').update(await readFile(path.join(dir, rel))).digest('hex');
      if (got !== want.sha256) throw new BundleError(`${file}: entry ${rel} does not match its checksum (sha256 ${got.slice(0, 12)}..., manifest ${want.sha256.slice(0, 12)}...)`);
    }
    for (const rel of Object.keys(manifest.links)) present.delete(rel);
    if (present.size) throw new BundleError(`${file}: entry ${[...present][0]} is not in the manifest`);
    return { manifest, dir, cleanup };
  } catch (e) {
    await cleanup();
    if (e instanceof BundleError) throw e;
    throw new BundleError(`${file}: cannot extract (${(e as Error).message})`);
  }
}
