import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import path from 'node:path';
import { ApplyError } from '../errors.js';
import { RELEASE_ID } from './release-id.js';

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

export async function readManifest(file: string): Promise<Manifest | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new ApplyError(`${file}: not valid JSON (${(e as Error).message}); move it away to treat every file as the operator's`);
  }
  const parsed = manifestSchema.safeParse(data);
  if (!parsed.success) {
    throw new ApplyError(`${file}: not an installer manifest (${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message})`);
  }
  return parsed.data;
}
