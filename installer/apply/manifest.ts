import { createHash } from 'node:crypto';
import path from 'node:path';
import { z } from 'zod';
import { RELEASE_ID } from './release-id.js';
import { readStateFile } from './state-file.js';

/*
 * What the installer wrote last time, kept in var/lib/pkgmgr/manifest.json:
 * the basis of the three-way decision on conffiles (ours then, the file now,
 * ours now).
 */

const entrySchema = z.object({
  sha256: z.string(),
  mode: z.number(),
  owner: z.string(),
  kind: z.enum(['conffile', 'program', 'settings']),
});

/** A file we write: under etc/ or bin/, relative, normalised (a target read back becomes a path root writes or removes). */
export const isTarget = (t: string) => /^(etc|bin)\//.test(t) && path.posix.normalize(t) === t && !t.split('/').includes('..');

export const manifestSchema = z.object({
  format: z.literal(1),
  version: z.string().regex(/^\d+\.\d+\.\d+/),
  release: z.string().regex(RELEASE_ID, { error: 'expected a release id <version>+<8 hex digits>' }),
  files: z.record(z.string().refine(isTarget, { error: 'expected a path under etc/ or bin/' }), entrySchema),
});

export type ManifestEntry = z.infer<typeof entrySchema>;
export type Manifest = z.infer<typeof manifestSchema>;

export const sha256 = (content: string | Buffer) => createHash('sha256').update(content).digest('hex');

export function readManifest(file: string): Promise<Manifest | undefined> {
  return readStateFile(file, manifestSchema, 'an installer manifest', "; move it away to treat every file as the operator's");
}
