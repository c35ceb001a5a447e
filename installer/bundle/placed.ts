import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { writeAtomic } from '../apply/apply.js';
import { exists } from '../apply/fs.js';
import { RELEASE_ID } from '../apply/release-id.js';
import { readStateFile } from '../apply/state-file.js';
import { ApplyError } from '../errors.js';
import type { Layout } from '../layout.js';

/*
 * Which bundle each release in releases/ came from: the sha256 of its signed
 * manifest and of the bundle file itself, recorded once the whole bundle had
 * been checked (signature, every entry, every file's checksum) and the
 * release placed from it. The same file again (a no-change update, a
 * repeated install) is then known by its hash and its manifest, whose
 * signature is checked again against the keys trusted now: extracting 7,500
 * files to check them once more, and to throw them away since the release is
 * already there, was most of a no-change update. A file that differs in one
 * byte (another build, a truncated copy) is checked whole.
 *
 * In var/lib/pkgmgr/ (root's): a record that is not root's alone is not
 * trusted, and the bundle is checked whole. A release installed otherwise
 * (from a checkout) has no record.
 */

const digest = z.string().regex(/^[0-9a-f]{64}$/);
const placedSchema = z.object({
  format: z.literal(1),
  releases: z.record(z.string().regex(RELEASE_ID), z.object({ manifest: digest, file: digest })),
});

export type Placed = z.infer<typeof placedSchema>['releases'];

const placedFile = (layout: Layout) => path.join(layout.pkgmgr, 'bundles.json');

/** Release id -> the bundle it was placed from (none when the record is absent or not root's alone). */
export async function placedReleases(layout: Layout): Promise<Placed> {
  try {
    return (await readStateFile(placedFile(layout), placedSchema, 'a record of placed bundles'))?.releases ?? {};
  } catch (e) {
    if (e instanceof ApplyError) return {};
    throw e;
  }
}

/** sha256 of a file, streamed. */
export async function fileDigest(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Whether `release` is in releases/, placed from this very bundle file (same bytes, same manifest). */
export async function placedFrom(layout: Layout, release: string, manifest: string, bundle: string): Promise<boolean> {
  const was = (await placedReleases(layout))[release];
  if (!was || was.manifest !== manifest || !(await exists(path.join(layout.releases, release, 'package.json')))) return false;
  return (await fileDigest(bundle)) === was.file;
}

/** Records that `release` was placed from this bundle file; forgets releases no longer there. */
export async function recordPlaced(layout: Layout, release: string, manifest: string, bundle: string): Promise<void> {
  const before = await placedReleases(layout);
  const after: Placed = {};
  for (const [id, d] of Object.entries({ ...before, [release]: { manifest, file: await fileDigest(bundle) } }))
    if (await exists(path.join(layout.releases, id, 'package.json'))) after[id] = d;
  if (JSON.stringify(after) === JSON.stringify(before)) return;
  await writeAtomic(placedFile(layout), `${JSON.stringify({ format: 1, releases: after }, null, 2)}\n`, 0o644);
}
