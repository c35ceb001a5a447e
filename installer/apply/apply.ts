import { chmod, chown, mkdir, open, readlink, rename, rm, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { ApplyError } from '../errors.js';
import { failpoint } from '../failpoint.js';
import type { RenderedFile } from '../render/render.js';
import { type Manifest, sha256 } from './manifest.js';
import { distOf, operatorCopyOf, type PlannedFile } from './plan.js';

/*
 * The only module that writes the tree. Every file goes through a temp file
 * in its own directory and a rename, so a reader (or a crash) sees the old
 * file or the new one, never half of one.
 */

export interface Ids {
  uid: number;
  gid: number;
}

export interface Owners {
  /** Owner of program files and conffiles (root). */
  files: Ids & { name: string };
  /** The service user: owner of its directories under var/; its group reads the secret files. */
  service: Ids & { name: string; group: string };
}

export async function writeAtomic(file: string, content: string | Buffer, mode: number, owner?: Ids): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    const fh = await open(tmp, 'w', mode);
    try {
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await chmod(tmp, mode);
    if (owner) await chown(tmp, owner.uid, owner.gid);
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new ApplyError(`cannot write ${file}: ${(e as Error).message}`);
  }
}

/** Points `link` at `target` atomically (a new link renamed over the old one). */
export async function switchSymlink(link: string, target: string): Promise<boolean> {
  try {
    if ((await readlink(link)) === target) return false;
  } catch {
    // absent or not a link
  }
  const tmp = `${link}.${process.pid}.new`;
  await unlink(tmp).catch(() => undefined);
  await symlink(target, tmp);
  await rename(tmp, link);
  return true;
}

/** Root writes every file; a secret one is readable by the service group only (0640 root:canopsis), never writable by it. */
export const ownerOf = (f: RenderedFile, o: Owners): Ids & { name: string } =>
  f.serviceOwned
    ? { uid: o.service.uid, gid: o.service.gid, name: `${o.service.name}:${o.service.group}` }
    : f.secret
      ? { uid: o.files.uid, gid: o.service.gid, name: `${o.files.name}:${o.service.group}` }
      : o.files;

export interface ApplyResult {
  written: string[];
  dist: string[];
  removed: string[];
}

export async function applyPlan(prefix: string, planned: PlannedFile[], owners: Owners | undefined): Promise<ApplyResult> {
  const result: ApplyResult = { written: [], dist: [], removed: [] };
  const half = Math.floor(planned.filter((p) => p.write).length / 2);
  for (const p of planned) {
    if (!p.write) continue;
    if (result.written.length + result.dist.length + result.removed.length === half) failpoint('files-half');
    const abs = path.join(prefix, p.target);
    const f = p.file;
    switch (p.action) {
      case 'create':
      case 'update':
      case 'chmod':
        await writeAtomic(abs, f!.content, f!.mode, owners && ownerOf(f!, owners));
        result.written.push(p.target);
        break;
      case 'dist':
        await writeAtomic(path.join(prefix, distOf(p.target)), f!.content, f!.mode, owners && ownerOf(f!, owners));
        result.dist.push(distOf(p.target));
        break;
      case 'replace':
        await writeAtomic(path.join(prefix, operatorCopyOf(p.target)), p.before ?? '', f!.mode, owners && ownerOf(f!, owners));
        await writeAtomic(abs, f!.content, f!.mode, owners && ownerOf(f!, owners));
        result.written.push(p.target, operatorCopyOf(p.target));
        break;
      case 'remove':
        await rm(abs, { force: true });
        result.removed.push(p.target);
        break;
      default:
        break;
    }
  }
  return result;
}

/** The manifest after apply: every file we own now, with the hash of OUR version. */
export function nextManifest(
  planned: PlannedFile[],
  version: string,
  release: string,
  owners: Owners | undefined,
  fallbackOwner: string,
): Manifest {
  const files: Manifest['files'] = {};
  for (const p of planned) {
    if (!p.file) continue;
    files[p.target] = {
      sha256: sha256(p.file.content),
      mode: p.file.mode,
      owner: owners ? ownerOf(p.file, owners).name : fallbackOwner,
      kind: p.file.kind,
    };
  }
  return { format: 1, version, release, files };
}
