import { z } from 'zod';
import { InstallerError } from '../errors.js';

/*
 * A bundle: canopsis-<version>.tar.gz holding MANIFEST.json (version,
 * release id, sha256 and mode of every file), MANIFEST.json.sig (an Ed25519
 * signature of the manifest's bytes, when the bundle was signed) and
 * release/ (the runtime build with its production dependencies, templates,
 * systemd sources, the installer and its control hooks).
 */

export const BUNDLE_MANIFEST = 'MANIFEST.json';
/** Beside the manifest and not listed in it: it signs the manifest's exact bytes. */
export const BUNDLE_SIGNATURE = 'MANIFEST.json.sig';

/** A refused bundle: the CLI exits 8. */
export class BundleError extends InstallerError {
  override readonly exitCode = 8;
}

/** Semantic versioning 2.0.0 without build metadata (the `+` introduces the release hash). */
const SEMVER = '(?:0|[1-9]\\d*)\\.(?:0|[1-9]\\d*)\\.(?:0|[1-9]\\d*)(?:-[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*)?';
export const VERSION = new RegExp(`^${SEMVER}$`);
/** `<version>+<first 8 hex digits of the content hash>`, as describeRelease (installer/apply/release.ts) makes it. */
export const RELEASE_ID = new RegExp(`^(${SEMVER})\\+([0-9a-f]{8})$`);

/** A release id that is not one: it names a directory root writes, runs and deletes. */
export class ReleaseIdError extends InstallerError {}

/**
 * Returns `id` when it is a release id (of `version`, when given); throws
 * ReleaseIdError naming `where` (a file, a field) otherwise. Ids read back
 * from anything root did not just compute go through here before they
 * become a path.
 */
export function checkReleaseId(id: unknown, where: string, version?: string): string {
  const shown = typeof id === 'string' ? JSON.stringify(id.length > 80 ? `${id.slice(0, 80)}...` : id) : String(id);
  const m = typeof id === 'string' ? RELEASE_ID.exec(id) : null;
  if (!m) throw new ReleaseIdError(`${where}: release id ${shown} is not <version>+<8 hex digits> (such as 0.3.0+3594e9d5); refused`);
  if (version !== undefined && m[1] !== version) throw new ReleaseIdError(`${where}: release id ${shown} is not of version ${version}; refused`);
  return id as string;
}

export const bundleManifest = z.object({
  format: z.literal(1),
  name: z.literal('canopsis-appliance'),
  version: z.string().regex(VERSION, 'a semantic version such as 0.3.0'),
  release: z.string(),
  created: z.string(),
  files: z.record(z.string(), z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), size: z.number(), mode: z.number() })),
  links: z.record(z.string(), z.string()).default({}),
});

export type BundleManifest = z.infer<typeof bundleManifest>;

/** Compares dotted versions numerically: -1, 0, 1. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.+-]/).slice(0, 3).map(Number);
  const pb = b.split(/[.+-]/).slice(0, 3).map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d) return Math.sign(d);
  }
  return 0;
}
