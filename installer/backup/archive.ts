import { createHash } from 'node:crypto';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import { type FileHandle, mkdtemp, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { extractAdmitted, feed } from '../apply/tar-stream.js';
import { BackupRefused } from '../errors.js';
import { BACKUP_MANIFEST, type BackupManifest, backupManifest } from './format.js';

/*
 * The archive of a backup, written and read back. Reading treats it as
 * untrusted (it may come from another host, or have been damaged):
 * 1. a listing pass that writes nothing: one top directory, plain relative
 *    names, no `..`, regular files and directories only (no link of any
 *    kind), entry count and declared sizes under a cap, the manifest read
 *    into memory and checked against its schema; every file entry must be
 *    one the manifest names, of the size it names;
 * 2. extraction into a fresh private directory, the same rules applied
 *    again (the file could change between the passes), owners never taken
 *    from the archive;
 * 3. every file read back and checked against its sha256.
 * A refusal (exit 8) names the problem and the entry.
 */

export interface BackupLimits {
  /** Sum of the entries' declared sizes. */
  bytes: number;
  entries: number;
}

/** A store can be large; a backup past these is refused before anything is written. */
export const MAX_BACKUP_BYTES = 256 * 1024 ** 3;
export const MAX_BACKUP_ENTRIES = 100_000;
const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

export const sha256File = async (file: string): Promise<string> => {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h);
  return h.digest('hex');
};

/** Writes `top` of `stage` as a 0600 tar.gz at `file`, whole or not at all (a partial file renamed once complete). */
export async function writeArchive(stage: string, top: string, files: string[], file: string): Promise<number> {
  const partial = path.join(path.dirname(file), `.${path.basename(file)}.partial`);
  await rm(partial, { force: true });
  const fh = await open(partial, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    // The manifest first: a reader finds it before the files it vouches for.
    const entries = [BACKUP_MANIFEST, ...files].map((f) => path.posix.join(top, f));
    const stream = tar.c({ gzip: true, cwd: stage, portable: true, noDirRecurse: true }, entries) as unknown as NodeJS.ReadableStream;
    await pipeline(stream, createWriteStream('', { fd: fh.fd, autoClose: false }));
    await fh.chmod(0o600);
    await fh.sync();
    const { size } = await fh.stat();
    await fh.close();
    await rename(partial, file);
    return size;
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(partial, { force: true });
    throw e;
  }
}

const FILE_TYPES = ['File', 'OldFile', 'ContiguousFile'];

/** The rules every entry meets, kept over one pass of the archive. */
class EntryRules {
  private readonly seen = new Set<string>();
  private bytes = 0;
  top: string | undefined;
  /** The last entry read: where a truncated archive ended. */
  last: string | undefined;

  constructor(
    private readonly file: string,
    private readonly limits: BackupLimits,
    private readonly manifest?: BackupManifest,
  ) {}

  /** The entry's name inside the top directory ('' for the top itself). */
  admit(p: string, type: string, size: number): string {
    const name = p.replace(/\/$/, '');
    this.last = name;
    const refuse = (why: string) => new BackupRefused(`${this.file}: entry ${p} ${why}; refused, nothing was changed`);
    if (path.posix.isAbsolute(p) || /^[A-Za-z]:/.test(p)) throw refuse('has an absolute path');
    const parts = name.split('/');
    if (parts.includes('..')) throw refuse('climbs out with ..');
    if (parts.some((s) => s === '' || s === '.')) throw refuse('is not a plain relative path (empty or . parts)');
    if (type === 'SymbolicLink' || type === 'Link')
      throw refuse(`is a ${type === 'Link' ? 'hard' : 'symbolic'} link (a backup holds files and directories only)`);
    if (![...FILE_TYPES, 'Directory'].includes(type)) throw refuse(`is a ${type} (a backup holds files and directories only)`);
    this.top ??= parts[0];
    if (parts[0] !== this.top) throw refuse(`is outside the top directory ${this.top}`);
    if (this.seen.has(name)) throw refuse('appears twice');
    this.seen.add(name);
    if (this.seen.size > this.limits.entries)
      throw new BackupRefused(`${this.file}: more than ${this.limits.entries} entries, over the cap; refused before extracting anything`);
    this.bytes += size;
    if (this.bytes > this.limits.bytes)
      throw new BackupRefused(
        `${this.file}: its entries declare more than ${this.limits.bytes} bytes, over the cap; refused before extracting anything`,
      );
    const rel = parts.slice(1).join('/');
    if (this.manifest && FILE_TYPES.includes(type) && rel !== BACKUP_MANIFEST) {
      const want = this.manifest.files[rel];
      if (!want) throw refuse('is not named in its manifest');
      if (want.size !== size) throw refuse(`is ${size} bytes, its manifest says ${want.size}`);
    }
    return rel;
  }

  /** Every file of the manifest was in the archive. */
  complete(): void {
    for (const rel of Object.keys(this.manifest?.files ?? {})) {
      if (!this.seen.has(`${this.top}/${rel}`))
        throw new BackupRefused(
          `${this.file}: entry ${this.top}/${rel} named in its manifest is missing (a truncated archive?); refused, nothing was changed`,
        );
    }
  }
}

const damaged = (file: string, rules: EntryRules, e: unknown) =>
  new BackupRefused(
    `${file}: truncated or corrupt (${(e as Error).message})${rules.last ? ` at or after entry ${rules.last}` : ''}; refused, nothing was changed`,
  );

/** Pass 1: names, types and sizes checked, the manifest read; nothing written. */
async function listBackup(file: string, limits: BackupLimits): Promise<{ top: string; manifest: BackupManifest; bytes: Buffer }> {
  const rules = new EntryRules(file, limits);
  let manifest: BackupManifest | undefined;
  let raw: Buffer | undefined;
  let refusal: BackupRefused | undefined;
  const files: Array<{ rel: string; size: number; name: string }> = [];
  const parser: tar.Parser = tar.t({
    strict: true,
    onReadEntry: (e) => {
      if (refusal) return;
      try {
        const rel = rules.admit(e.path, e.type, e.size ?? 0);
        if (!FILE_TYPES.includes(e.type)) return;
        if (rel !== BACKUP_MANIFEST) {
          files.push({ rel, size: e.size ?? 0, name: e.path });
          return;
        }
        if ((e.size ?? 0) > MAX_MANIFEST_BYTES)
          throw new BackupRefused(`${file}: entry ${e.path} is ${e.size} bytes, over ${MAX_MANIFEST_BYTES}; refused`);
        const chunks: Buffer[] = [];
        e.on('data', (c: Buffer) => chunks.push(c));
        e.on('end', () => {
          raw = Buffer.concat(chunks);
        });
      } catch (err) {
        refusal = err as BackupRefused;
        parser.abort(refusal);
      }
    },
  }) as tar.Parser;
  try {
    await feed(file, parser, 'end');
  } catch (e) {
    throw refusal ?? damaged(file, rules, e);
  }
  if (refusal) throw refusal;
  if (!rules.top) throw new BackupRefused(`${file}: an empty archive, not a backup; refused`);
  if (!raw) throw new BackupRefused(`${file}: no ${rules.top}/${BACKUP_MANIFEST}: not a backup of build-install; refused`);
  try {
    manifest = backupManifest.parse(JSON.parse(raw.toString('utf8')));
  } catch (e) {
    const issue = (e as { issues?: Array<{ path: PropertyKey[]; message: string }> }).issues?.[0];
    throw new BackupRefused(
      `${file}: ${rules.top}/${BACKUP_MANIFEST} is not a backup manifest (${issue ? `${issue.path.join('.')}: ${issue.message}` : (e as Error).message}); refused`,
    );
  }
  // The same names and sizes, now against the manifest (read after some of them).
  const check = new EntryRules(file, limits, manifest);
  check.admit(`${rules.top}/${BACKUP_MANIFEST}`, 'File', raw.length);
  for (const f of files) check.admit(f.name, 'File', f.size);
  check.complete();
  return { top: rules.top, manifest, bytes: raw };
}

/** Pass 2: the same rules while writing into `into`, owners never from the archive. */
async function extract(file: string, into: string, limits: BackupLimits, manifest: BackupManifest): Promise<void> {
  const rules = new EntryRules(file, limits, manifest);
  // Files root reads next: private to it whatever the archive's modes.
  await extractAdmitted(
    file,
    into,
    (p, e) => rules.admit(p, e.type, e.size ?? 0),
    (e) => damaged(file, rules, e),
    { dmode: 0o700, fmode: 0o600 },
  );
  rules.complete();
}

/** Pass 3: each file is a regular file with the sha256 its manifest names. */
async function verify(file: string, dir: string, top: string, manifest: BackupManifest, raw: Buffer): Promise<void> {
  for (const [rel, want] of Object.entries(manifest.files)) {
    const abs = path.join(dir, rel);
    let fh: FileHandle;
    try {
      fh = await open(abs, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (e) {
      throw new BackupRefused(
        `${file}: entry ${top}/${rel} could not be read back (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); refused`,
      );
    }
    try {
      if (!(await fh.stat()).isFile()) throw new BackupRefused(`${file}: entry ${top}/${rel} is not a regular file; refused`);
      const h = createHash('sha256');
      await pipeline(fh.createReadStream({ autoClose: false }), h);
      const got = h.digest('hex');
      if (got !== want.sha256)
        throw new BackupRefused(
          `${file}: entry ${top}/${rel} does not match its checksum (sha256 ${got.slice(0, 12)}..., manifest ${want.sha256.slice(0, 12)}...): the archive was changed or damaged; refused, nothing was changed`,
        );
    } finally {
      await fh.close();
    }
  }
  const written = await open(path.join(dir, BACKUP_MANIFEST), constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    if (!(await written.readFile()).equals(raw))
      throw new BackupRefused(`${file}: ${top}/${BACKUP_MANIFEST} changed while the archive was read; refused`);
  } finally {
    await written.close();
  }
}

export interface OpenedBackup {
  manifest: BackupManifest;
  /** The extracted top directory: MANIFEST.json, etc/, pkgmgr/, store/. */
  dir: string;
  cleanup: () => Promise<void>;
}

/**
 * Checks a backup and extracts it into a new private directory under
 * `workDir` (root's, 0700). `accept` runs on the manifest before anything
 * is extracted (the version check).
 */
export async function openBackup(
  file: string,
  workDir: string,
  accept: (m: BackupManifest) => void = () => undefined,
  limits: Partial<BackupLimits> = {},
): Promise<OpenedBackup> {
  const caps = { bytes: limits.bytes ?? MAX_BACKUP_BYTES, entries: limits.entries ?? MAX_BACKUP_ENTRIES };
  const st = await open(file, constants.O_RDONLY).then(
    async (fh) => {
      const s = await fh.stat();
      await fh.close();
      return s;
    },
    (e: NodeJS.ErrnoException) => {
      throw new BackupRefused(`${file}: cannot read it (${e.code ?? e.message})`);
    },
  );
  if (!st.isFile()) throw new BackupRefused(`${file}: not a regular file; refused`);
  const listing = await listBackup(file, caps);
  accept(listing.manifest);
  const tmp = await mkdtemp(path.join(workDir, '.restore-'));
  const cleanup = () => rm(tmp, { recursive: true, force: true });
  try {
    await extract(file, tmp, caps, listing.manifest);
    const dir = path.join(tmp, listing.top);
    await verify(file, dir, listing.top, listing.manifest, listing.bytes);
    return { manifest: listing.manifest, dir, cleanup };
  } catch (e) {
    await cleanup();
    if (e instanceof BackupRefused) throw e;
    throw new BackupRefused(`${file}: cannot extract (${(e as Error).message}); refused`);
  }
}
