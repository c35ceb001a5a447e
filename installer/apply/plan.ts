import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { RenderedFile } from '../render/render.js';
import { type Manifest, sha256 } from './manifest.js';

/*
 * The plan: what apply would do to each file, decided from three versions of
 * it (what we shipped last time per the manifest, what is on disk, what we
 * render now). Pure: the disk state is read beforehand by readDisk().
 */

export type Action =
  /** Not there yet: written. */
  | 'create'
  /** Ours, untouched by the operator, and we ship a new version: replaced. */
  | 'update'
  /** Same content; only the mode differs. */
  | 'chmod'
  /** Same content and mode: nothing to do. */
  | 'unchanged'
  /** Edited by the operator and our version did not change: kept silently. */
  | 'keep'
  /** Edited by the operator and ours changed too: kept, ours written as <file>.dist. */
  | 'dist'
  /** Shipped before, not any more, untouched: removed. */
  | 'remove'
  /** Shipped before, not any more, but edited: left in place. */
  | 'orphan'
  /** Edited by the operator, ours changed, and the policy says ours: written, the operator's kept as <file>.operator. */
  | 'replace';

export interface DiskFile {
  sha256: string;
  mode: number;
  uid: number;
  gid: number;
  content: string;
}

/** Who must own a file, when the run can give owners (root). */
export type WantOwner = (file: RenderedFile) => { uid: number; gid: number } | undefined;

export interface PlannedFile {
  target: string;
  action: Action;
  /** The new file, absent for remove/orphan. */
  file?: RenderedFile;
  /** Content on disk before, for diffs. */
  before?: string;
  /** Whether apply writes anything for it (a .dist already up to date is not rewritten). */
  write: boolean;
  /** A .dist of our current version waits beside the operator's file to be merged. */
  distPending: boolean;
}

export type DiskState = Map<string, DiskFile | undefined>;

export async function readDisk(prefix: string, targets: Iterable<string>): Promise<DiskState> {
  const out: DiskState = new Map();
  await Promise.all(
    [...targets].map(async (t) => {
      const file = path.join(prefix, t);
      try {
        const [content, st] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
        out.set(t, { sha256: sha256(content), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, content });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        out.set(t, undefined);
      }
    }),
  );
  return out;
}

export function decide(
  file: RenderedFile,
  disk: DiskFile | undefined,
  shipped: string | undefined,
  owner?: { uid: number; gid: number },
): Action {
  const ours = sha256(file.content);
  if (!disk) return 'create';
  // A file of ours with another owner (a secret the service user could rewrite, from an older release) is taken back.
  const sameOwner = !owner || (disk.uid === owner.uid && disk.gid === owner.gid);
  if (disk.sha256 === ours) return disk.mode === file.mode && sameOwner ? 'unchanged' : 'chmod';
  // canopsis.ini and the secrets are the operator's: on disk they win, except
  // that a --set edit (a new text) is what the operator asked for.
  if (file.kind === 'settings') return 'update';
  // Programs are not for editing: always ours. Nor is a file the service user owns (the Erlang cookie):
  // what is on disk there is only the service user's word, never kept as an operator's edit.
  if (file.kind === 'program' || file.serviceOwned) return 'update';
  const edited = shipped === undefined || shipped !== disk.sha256;
  if (!edited) return 'update';
  return shipped === ours ? 'keep' : 'dist';
}

export function plan(
  files: RenderedFile[],
  disk: DiskState,
  manifest: Manifest | undefined,
  owner: WantOwner = () => undefined,
): PlannedFile[] {
  const out: PlannedFile[] = [];
  const now = new Set(files.map((f) => f.target));
  for (const file of files) {
    const d = disk.get(file.target);
    const action = decide(file, d, manifest?.files[file.target]?.sha256, owner(file));
    const distCurrent = disk.get(distOf(file.target))?.sha256 === sha256(file.content);
    const write = action === 'dist' ? !distCurrent : WRITES.has(action);
    const distPending = action === 'dist' || (action === 'keep' && distCurrent);
    out.push({ target: file.target, action, file, write, distPending, ...(d ? { before: d.content } : {}) });
  }
  for (const [target, entry] of Object.entries(manifest?.files ?? {})) {
    if (now.has(target)) continue;
    const d = disk.get(target);
    if (!d) continue;
    const action = d.sha256 === entry.sha256 ? 'remove' : 'orphan';
    out.push({ target, action, before: d.content, write: action === 'remove', distPending: false });
  }
  return out.sort((a, b) => a.target.localeCompare(b.target));
}

const WRITES: ReadonlySet<Action> = new Set(['create', 'update', 'chmod', 'dist', 'remove', 'replace']);

export const distOf = (target: string) => `${target}.dist`;
export const operatorCopyOf = (target: string) => `${target}.operator`;

export type ConffilePolicy = 'keep' | 'replace' | 'ask';

/**
 * What to do with conffiles both sides changed: keep the operator's (ours
 * as .dist, the default), replace them (theirs saved as .operator), or ask
 * per file.
 */
export async function applyPolicy(
  planned: PlannedFile[],
  policy: ConffilePolicy,
  ask?: (target: string) => Promise<'keep' | 'replace'>,
): Promise<PlannedFile[]> {
  const out: PlannedFile[] = [];
  for (const p of planned) {
    if (p.action !== 'dist' || policy === 'keep') {
      out.push(p);
      continue;
    }
    const choice = policy === 'replace' ? 'replace' : await ask!(p.target);
    out.push(choice === 'replace' ? { ...p, action: 'replace', write: true, distPending: false } : p);
  }
  return out;
}

/** Every path whose disk state plan() needs: the new files, their .dist, what the manifest lists. */
export function targetsToRead(files: RenderedFile[], manifest: Manifest | undefined): string[] {
  return [...new Set([...files.flatMap((f) => [f.target, distOf(f.target)]), ...Object.keys(manifest?.files ?? {})])];
}
