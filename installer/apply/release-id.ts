import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { ApplyError } from '../errors.js';
import type { Layout } from '../layout.js';

/*
 * Release ids name directories root runs code from (releases/<id>), and are
 * read back from the manifest, the update journal and bundles: each is
 * checked against the one shape describeRelease() gives them before it
 * becomes a path, and the path it becomes must stay in releases/.
 */

/** `<version>+<8 hex of the content hash>`, the version dotted numbers with an optional pre-release. */
export const RELEASE_ID = /^\d{1,9}\.\d{1,9}\.\d{1,9}(?:-[0-9A-Za-z.-]{1,40})?\+[0-9a-f]{8}$/;

export function checkReleaseId(id: unknown, where: string): string {
  if (typeof id !== 'string' || !RELEASE_ID.test(id)) {
    throw new ApplyError(`${where}: release id ${JSON.stringify(id)?.slice(0, 80)} is not of the form <version>+<8 hex digits>; refused`);
  }
  return id;
}

/** releases/<id>, checked: a valid id, and (when it exists) a real directory inside releases/ once links are resolved. */
export async function releaseDir(layout: Layout, id: unknown, where: string): Promise<string> {
  const dir = path.join(layout.releases, checkReleaseId(id, where));
  const real = await realpath(dir).catch(() => undefined);
  if (real === undefined) return dir;
  const base = await realpath(layout.releases);
  if (path.dirname(real) !== base) throw new ApplyError(`${where}: release ${String(id)} resolves to ${real}, outside ${layout.releases}; refused`);
  return dir;
}
