import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { ApplyError } from '../errors.js';
import type { Layout } from '../layout.js';

/*
 * Release ids name directories root writes, runs code from and deletes
 * (releases/<id>), and are read back from the manifest, the update journal
 * and bundles: each is checked against the one shape describeRelease() gives
 * them before it becomes a path, and the path it becomes must stay in
 * releases/.
 */

/** Semantic versioning 2.0.0 without build metadata (the `+` introduces the release hash). */
const SEMVER = '(?:0|[1-9]\\d*)\\.(?:0|[1-9]\\d*)\\.(?:0|[1-9]\\d*)(?:-[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*)?';
export const VERSION = new RegExp(`^${SEMVER}$`);
/** `<version>+<first 8 hex digits of the content hash>`, as describeRelease (installer/apply/release.ts) makes it. */
export const RELEASE_ID = new RegExp(`^(${SEMVER})\\+([0-9a-f]{8})$`);

/** A release id that is not one. */
export class ReleaseIdError extends ApplyError {}

/**
 * Returns `id` when it is a release id (of `version`, when given); throws
 * ReleaseIdError naming `where` (a file, a field) otherwise.
 */
export function checkReleaseId(id: unknown, where: string, version?: string): string {
  const shown = typeof id === 'string' ? JSON.stringify(id.length > 80 ? `${id.slice(0, 80)}...` : id) : String(id);
  const m = typeof id === 'string' ? RELEASE_ID.exec(id) : null;
  if (!m) throw new ReleaseIdError(`${where}: release id ${shown} is not <version>+<8 hex digits> (such as 0.3.0+3594e9d5); refused`);
  if (version !== undefined && m[1] !== version)
    throw new ReleaseIdError(`${where}: release id ${shown} is not of version ${version}; refused`);
  return id as string;
}

/** releases/<id>, checked: a valid id, and (when it exists) a real directory inside releases/ once links are resolved. */
export async function releaseDir(layout: Layout, id: unknown, where: string): Promise<string> {
  const dir = path.join(layout.releases, checkReleaseId(id, where));
  const real = await realpath(dir).catch(() => undefined);
  if (real === undefined) return dir;
  const base = await realpath(layout.releases);
  if (path.dirname(real) !== base)
    throw new ApplyError(`${where}: release ${String(id)} resolves to ${real}, outside ${layout.releases}; refused`);
  return dir;
}
