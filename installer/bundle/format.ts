import { z } from 'zod';
import { VERSION } from '../apply/release-id.js';

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

/** The directory a bundle is extracted into, under the caller's work directory (a leftover is swept by name). */
export const BUNDLE_WORK_PREFIX = '.bundle-';

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
