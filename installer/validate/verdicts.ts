import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { writeAtomic } from '../apply/apply.js';
import { readStateFile } from '../apply/state-file.js';
import { ApplyError } from '../errors.js';
import type { Layout } from '../layout.js';
import type { RenderedFile } from '../render/render.js';
import type { Validator } from './types.js';

/*
 * What each validator last accepted, so that a run whose files did not
 * change does not start an Erlang VM, systemd-analyze, collectd and Python
 * again to be told the same thing. A verdict is the sha256 of everything the
 * check depends on: the release (its templates and the validator's own
 * code), the program that checks (path, inode, size, mtime: an upgraded
 * collectd or RabbitMQ checks again), what else the validator names, and
 * every rendered file it reads (target, mode, content). A validator whose
 * verdict matches the recorded one is not run; any byte of difference runs it.
 *
 * The record lives in var/lib/pkgmgr/ (root's: nothing the service user can
 * write decides what root skips), is written only under the prefix lock
 * after a run that validated, and only when it changed. One that is not
 * root's alone is not trusted: every validator runs, and the next write
 * replaces it.
 */

const verdictsSchema = z.object({
  format: z.literal(1),
  /** Program (as the report names it) -> the verdict it accepted last. */
  accepted: z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/)),
});

export type Verdicts = Record<string, string>;

export const verdictsFile = (layout: Layout) => path.join(layout.pkgmgr, 'validated.json');

/** The recorded verdicts; none when absent, or (with a warning) when the file is not one root can trust. */
export async function readVerdicts(layout: Layout, warn: (line: string) => void): Promise<Verdicts> {
  try {
    return (await readStateFile(verdictsFile(layout), verdictsSchema, 'a record of validated files'))?.accepted ?? {};
  } catch (e) {
    if (!(e instanceof ApplyError)) throw e;
    warn(`${e.message}: ignored, every file is validated again`);
    return {};
  }
}

/** Writes the record when it differs from what is there; returns whether it wrote. */
export async function writeVerdicts(layout: Layout, before: Verdicts, after: Verdicts): Promise<boolean> {
  const sorted = Object.fromEntries(Object.entries(after).sort(([a], [b]) => a.localeCompare(b)));
  if (JSON.stringify(sorted) === JSON.stringify(Object.fromEntries(Object.entries(before).sort(([a], [b]) => a.localeCompare(b)))))
    return false;
  await writeAtomic(verdictsFile(layout), `${JSON.stringify({ format: 1, accepted: sorted }, null, 2)}\n`, 0o644);
  return true;
}

/** A program as it is on this host now: replaced by a package upgrade, it is another program. */
async function identity(file: string): Promise<string> {
  const st = await stat(file).catch(() => undefined);
  return st ? `${file}:${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}` : `${file}:absent`;
}

/**
 * The verdict of validator `v` on `files` (rendered for the live prefix:
 * the staging copy it runs on differs only by the prefix, and by the
 * invoking user standing in for a service account not created yet).
 */
export async function verdictOf(v: Validator, files: RenderedFile[], release: string): Promise<string> {
  const reads = v.reads ?? v.applies;
  const mine = new Set(reads(files.map((f) => f.target)));
  const h = createHash('sha256');
  const field = (s: string) => h.update(s).update('\0');
  field('verdict/1');
  field(release);
  field(v.program);
  for (const t of v.tools ?? []) field(await identity(t));
  for (const c of v.context ?? []) field(c);
  for (const f of [...files].filter((x) => mine.has(x.target)).sort((a, b) => a.target.localeCompare(b.target))) {
    field(f.target);
    field(f.mode.toString(8));
    field(createHash('sha256').update(f.content).digest('hex'));
  }
  return h.digest('hex');
}
