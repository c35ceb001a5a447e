import { createHash, type KeyObject } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, lstat, mkdir, mkdtemp, open, readFile, readlink, realpath, rm } from 'node:fs/promises';
import path from 'node:path';
import * as tar from 'tar';
import { filesUnder } from '../apply/fs.js';
import { settleTree } from '../apply/release.js';
import { checkReleaseId, ReleaseIdError } from '../apply/release-id.js';
import { extractAdmitted, feed } from '../apply/tar-stream.js';
import { BundleError, KeyFileError } from '../errors.js';
import { BUNDLE_MANIFEST, BUNDLE_SIGNATURE, BUNDLE_WORK_PREFIX, type BundleManifest, bundleManifest } from './format.js';
import { checkSignature, readPublicKeyFile, type SignatureStatus, skippedBecause } from './signature.js';

export { BundleError } from '../errors.js';

/*
 * Opening a bundle, which root then runs code from. In order, and nothing
 * of the bundle runs before the end:
 * 1. a listing pass, writing nothing: every entry is a plain relative path
 *    (no absolute path, no `..`, nothing under a link), a file, directory or
 *    link, listed once; the count and the declared sizes stay under the cap;
 *    MANIFEST.json and its signature are read into memory;
 * 2. the signature of those manifest bytes against the trusted keys, then
 *    the manifest (schema, release id);
 * 3. extraction into a fresh 0700 directory, the same rules applied again
 *    (the file could have changed since the listing), owners never taken
 *    from the archive;
 * 4. modes and owners set by us (settleTree), every link resolved with
 *    realpath inside release/, every file checked against the manifest's
 *    sha256 and every link against its target there.
 * A refusal names the entry and leaves nothing behind.
 */

export { BUNDLE_WORK_PREFIX } from './format.js';

/** Caps on what a bundle may declare, checked before anything is written (our bundles: ~80 MB, ~6,500 entries). */
export const MAX_BUNDLE_BYTES = 2 * 1024 ** 3;
export const MAX_BUNDLE_ENTRIES = 200_000;
/** The manifest is held in memory to be verified before extraction. */
const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

export interface BundleLimits {
  /** Sum of the entries' declared sizes. */
  bytes: number;
  entries: number;
}

export interface OpenOptions {
  /** Public Ed25519 keys, or PEM files holding one (readTrustedKeys reads PREFIX/etc/trusted-keys). */
  trustedKeys: ReadonlyArray<KeyObject | string>;
  /** Accept a bundle that is unsigned or signed by a key not trusted; the result says so. A signature that fails is refused anyway. */
  allowUnsigned: boolean;
  /** Defaults MAX_BUNDLE_BYTES and MAX_BUNDLE_ENTRIES; tests lower them. */
  limits?: Partial<BundleLimits>;
}

export interface OpenedBundle {
  manifest: BundleManifest;
  /** sha256 of the manifest's bytes. */
  digest: string;
  /** The extracted top directory (holds release/, MANIFEST.json). */
  dir: string;
  /** Removes the extraction. */
  cleanup: () => Promise<void>;
  /** verified: signed by a trusted key; untrusted and unsigned only get here with allowUnsigned. */
  signature: SignatureStatus;
  /** The key the bundle names as its signer. */
  fingerprint?: string;
  /** When not verified, why: for "the bundle's signature was not checked: <skipped>". */
  skipped?: string;
}

const FILE_TYPES = ['File', 'OldFile', 'ContiguousFile'];

/** The normalised name of an acceptable entry. */
function checkEntry(file: string, p: string, type: string, linkpath: string | undefined): string {
  const name = p.replace(/\/$/, '');
  if (path.posix.isAbsolute(p) || /^[A-Za-z]:/.test(p)) throw new BundleError(`${file}: entry ${p} has an absolute path; refused`);
  const parts = name.split('/');
  if (parts.includes('..')) throw new BundleError(`${file}: entry ${p} climbs out with ..; refused`);
  if (parts.some((s) => s === '' || s === '.'))
    throw new BundleError(`${file}: entry ${p} is not a plain relative path (empty or . parts); refused`);
  if (![...FILE_TYPES, 'Directory', 'SymbolicLink'].includes(type))
    throw new BundleError(`${file}: entry ${p} is a ${type}; only files, directories and symbolic links are allowed`);
  if (type === 'SymbolicLink') {
    const target = linkpath ?? '';
    const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(name), target));
    if (path.posix.isAbsolute(target) || resolved.startsWith('..') || resolved.split('/')[0] !== parts[0]) {
      throw new BundleError(`${file}: entry ${p} links to ${target}, outside the bundle; refused`);
    }
  }
  return name;
}

const inUnits = (n: number): string => (n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(1)} GiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`);

/** The rules every entry meets, kept across one pass over the archive. */
class EntryRules {
  private readonly seen = new Set<string>();
  private readonly links = new Set<string>();
  private bytes = 0;

  constructor(
    private readonly file: string,
    private readonly limits: BundleLimits,
    /** The top directory the listing found: the extraction must find the same. */
    public top?: string,
  ) {}

  admit(p: string, type: string, linkpath: string | undefined, size: number): string {
    const name = checkEntry(this.file, p, type, linkpath);
    const parts = name.split('/');
    this.top ??= parts[0];
    if (parts[0] !== this.top) throw new BundleError(`${this.file}: expected one top directory, found ${this.top} and ${parts[0]}`);
    if (this.seen.has(name)) throw new BundleError(`${this.file}: entry ${p} appears twice; refused`);
    // Written through, a link would take the entry wherever it points.
    for (let i = 1; i < parts.length; i++) {
      const above = parts.slice(0, i).join('/');
      if (this.links.has(above)) throw new BundleError(`${this.file}: entry ${p} lies under the link ${above}; refused`);
    }
    this.seen.add(name);
    if (type === 'SymbolicLink') this.links.add(name);
    if (this.seen.size > this.limits.entries)
      throw new BundleError(`${this.file}: more than ${this.limits.entries} entries, over the cap; refused before extracting anything`);
    this.bytes += size;
    if (this.bytes > this.limits.bytes)
      throw new BundleError(
        `${this.file}: its entries declare more than ${this.limits.bytes} bytes (${inUnits(this.limits.bytes)}), over the cap; refused before extracting anything`,
      );
    return name;
  }
}

interface Listing {
  top: string;
  manifest: Buffer;
  signature?: Buffer;
}

/** Pass 1: every entry checked and counted, the manifest and its signature read; nothing written. */
async function listBundle(file: string, limits: BundleLimits): Promise<Listing> {
  const rules = new EntryRules(file, limits);
  const captured = new Map<string, Buffer[]>();
  // A throw inside tar's entry callback escapes as an uncaught stream error: keep the first refusal, abort, raise it after.
  let refusal: BundleError | undefined;
  const parser: tar.Parser = tar.t({
    strict: true,
    onReadEntry: (e) => {
      if (refusal) return;
      try {
        const name = rules.admit(e.path, e.type, e.linkpath, e.size ?? 0);
        const rest = name.slice(rules.top!.length + 1);
        if (rest !== BUNDLE_MANIFEST && rest !== BUNDLE_SIGNATURE) return;
        if (!FILE_TYPES.includes(e.type)) throw new BundleError(`${file}: entry ${e.path} is a ${e.type}, not a file; refused`);
        if ((e.size ?? 0) > MAX_MANIFEST_BYTES)
          throw new BundleError(`${file}: entry ${e.path} is ${e.size} bytes, over ${MAX_MANIFEST_BYTES}; refused`);
        const chunks: Buffer[] = [];
        captured.set(rest, chunks);
        e.on('data', (c: Buffer) => chunks.push(c));
      } catch (err) {
        refusal = err as BundleError;
        parser.abort(refusal);
      }
    },
  }) as tar.Parser;
  try {
    await feed(file, parser, 'end');
  } catch (e) {
    throw refusal ?? new BundleError(`${file}: not a readable bundle, corrupt or truncated (${(e as Error).message})`);
  }
  if (refusal) throw refusal;
  if (!rules.top) throw new BundleError(`${file}: expected one top directory, found none`);
  const manifest = captured.get(BUNDLE_MANIFEST);
  if (!manifest) throw new BundleError(`${file}: ${BUNDLE_MANIFEST} missing or invalid (no ${rules.top}/${BUNDLE_MANIFEST})`);
  const signature = captured.get(BUNDLE_SIGNATURE);
  return { top: rules.top, manifest: Buffer.concat(manifest), ...(signature ? { signature: Buffer.concat(signature) } : {}) };
}

function parseManifest(file: string, bytes: Buffer): BundleManifest {
  let manifest: BundleManifest;
  try {
    manifest = bundleManifest.parse(JSON.parse(bytes.toString('utf8')));
  } catch (e) {
    throw new BundleError(`${file}: ${BUNDLE_MANIFEST} missing or invalid (${(e as Error).message.split('\n')[0]})`);
  }
  try {
    checkReleaseId(manifest.release, `${file}: ${BUNDLE_MANIFEST}`, manifest.version);
  } catch (e) {
    if (e instanceof ReleaseIdError) throw new BundleError(e.message);
    throw e;
  }
  return manifest;
}

async function keyObjects(keys: ReadonlyArray<KeyObject | string>): Promise<KeyObject[]> {
  const out: KeyObject[] = [];
  for (const k of keys) {
    const key = typeof k === 'string' ? await readPublicKeyFile(k) : k;
    if (key.type !== 'public' || key.asymmetricKeyType !== 'ed25519')
      throw new KeyFileError(`a trusted key must be an Ed25519 public key, got a ${key.type} ${key.asymmetricKeyType} key`);
    out.push(key);
  }
  return out;
}

/** Pass 3: the same rules again while writing, owners never from the archive. */
async function extract(file: string, into: string, limits: BundleLimits, top: string): Promise<void> {
  const rules = new EntryRules(file, limits, top);
  await extractAdmitted(
    file,
    into,
    (p, e) => void rules.admit(p, e.type, e.linkpath, e.size ?? 0),
    (e) => new BundleError(`${file}: cannot extract (${(e as Error).message})`),
  );
}

/** Every link, followed to its end, stays inside release/ (lexically fine is not enough: a -> ., b -> a/a/../..). */
async function checkLinks(file: string, top: string, dir: string): Promise<void> {
  const release = path.join(dir, 'release');
  if (!(await lstat(release).catch(() => undefined))?.isDirectory()) throw new BundleError(`${file}: no ${top}/release directory; refused`);
  const inside = await realpath(release);
  const all = await filesUnder(dir);
  const isLink: boolean[] = [];
  for (let i = 0; i < all.length; i += CHECK_BATCH)
    isLink.push(
      ...(await Promise.all(all.slice(i, i + CHECK_BATCH).map(async (rel) => (await lstat(path.join(dir, rel))).isSymbolicLink()))),
    );
  for (const rel of all.filter((_, i) => isLink[i])) {
    const abs = path.join(dir, rel);
    const target = await readlink(abs);
    let real: string;
    try {
      real = await realpath(abs);
    } catch (e) {
      throw new BundleError(
        `${file}: entry ${top}/${rel} links to ${target}, which does not resolve (${(e as NodeJS.ErrnoException).code}); refused`,
      );
    }
    if (real !== inside && !real.startsWith(`${inside}${path.sep}`)) {
      throw new BundleError(`${file}: entry ${top}/${rel} links to ${target}, which resolves to ${real}, outside the release; refused`);
    }
  }
}

const CHECK_BATCH = 32;

/** One extracted file against its manifest entry: a plain file (never a link), its sha256, the mode the manifest gives it. */
async function checkFile(file: string, dir: string, rel: string, want: BundleManifest['files'][string]): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await open(path.join(dir, rel), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    throw new BundleError(
      `${file}: entry ${rel} is not the file the manifest lists (${(e as NodeJS.ErrnoException).code === 'ELOOP' ? 'a link' : (e as Error).message})`,
    );
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new BundleError(`${file}: entry ${rel} is not the file the manifest lists`);
    const got = createHash('sha256')
      .update(await fh.readFile())
      .digest('hex');
    if (got !== want.sha256)
      throw new BundleError(
        `${file}: entry ${rel} does not match its checksum (sha256 ${got.slice(0, 12)}..., manifest ${want.sha256.slice(0, 12)}...)`,
      );
    // Executable or not as the manifest (signed) says, not as the archive header (unsigned) or the umask left it.
    const mode = want.mode & 0o111 ? 0o755 : 0o644;
    if ((st.mode & 0o7777) !== mode) await fh.chmod(mode);
  } finally {
    await fh.close();
  }
}

/** Pass 4: what was written is what the (verified) manifest lists, no more, no less. */
async function checkContents(file: string, dir: string, manifest: BundleManifest): Promise<void> {
  const present = new Set((await filesUnder(dir)).filter((f) => f !== BUNDLE_MANIFEST && f !== BUNDLE_SIGNATURE));
  const files = Object.entries(manifest.files);
  for (const [rel] of files) if (!present.delete(rel)) throw new BundleError(`${file}: entry ${rel} listed in the manifest is missing`);
  // A batch of files at a time: 7,500 reads one after the other each waited for the disk in turn.
  for (let i = 0; i < files.length; i += CHECK_BATCH)
    await Promise.all(files.slice(i, i + CHECK_BATCH).map(([rel, want]) => checkFile(file, dir, rel, want)));
  for (const [rel, want] of Object.entries(manifest.links)) {
    if (!present.delete(rel)) throw new BundleError(`${file}: entry ${rel} listed in the manifest is missing`);
    const st = await lstat(path.join(dir, rel));
    const got = st.isSymbolicLink() ? await readlink(path.join(dir, rel)) : undefined;
    if (got !== want)
      throw new BundleError(
        `${file}: entry ${rel} ${got === undefined ? 'is not a link' : `links to ${got}`}, the manifest says a link to ${want}; refused`,
      );
  }
  if (present.size) throw new BundleError(`${file}: entry ${[...present][0]} is not in the manifest`);
}

export interface BundleHead {
  manifest: BundleManifest;
  /** sha256 of the manifest's bytes: the release placed from a bundle is recorded under it (placed.ts). */
  digest: string;
  signature: SignatureStatus;
  fingerprint?: string;
  skipped?: string;
}

/**
 * The manifest of a bundle and its signature, checked as openBundle checks
 * them (an unsigned or untrusted bundle refused unless allowUnsigned, a
 * signature that fails always), extracting nothing. `create` writes them
 * first, so the whole archive is not read, except for an unsigned bundle (a
 * signature could come later) or an older one. `wanted` is asked as soon as
 * the manifest is read: no, and the reading stops there (undefined).
 */
export async function readBundleHead(
  file: string,
  options: OpenOptions,
  wanted: (manifest: BundleManifest, digest: string) => boolean,
): Promise<BundleHead | undefined> {
  const trusted = await keyObjects(options.trustedKeys);
  const captured = new Map<string, Buffer[]>();
  let top: string | undefined;
  let refusal: BundleError | undefined;
  let stop: 'enough' | 'unwanted' | undefined;
  let manifest: { parsed: BundleManifest; bytes: Buffer } | undefined;
  const parser: tar.Parser = tar.t({
    strict: true,
    onReadEntry: (e) => {
      if (refusal || stop) return e.resume();
      const name = e.path.replace(/\/$/, '');
      top ??= name.split('/')[0];
      const rest = name.slice(top!.length + 1);
      if (rest !== BUNDLE_MANIFEST && rest !== BUNDLE_SIGNATURE) return e.resume();
      if (!FILE_TYPES.includes(e.type) || (e.size ?? 0) > MAX_MANIFEST_BYTES) {
        refusal = new BundleError(
          `${file}: entry ${e.path} is not a manifest or signature file of at most ${MAX_MANIFEST_BYTES} bytes; refused`,
        );
        return parser.abort(refusal);
      }
      const chunks: Buffer[] = [];
      captured.set(rest, chunks);
      e.on('data', (c: Buffer) => chunks.push(c));
      e.on('end', () => {
        try {
          if (rest === BUNDLE_MANIFEST) {
            const bytes = Buffer.concat(chunks);
            manifest = { parsed: parseManifest(file, bytes), bytes };
            if (!wanted(manifest.parsed, sha256(bytes))) stop = 'unwanted';
          }
          if (!stop && manifest && captured.has(BUNDLE_SIGNATURE)) stop = 'enough';
          if (stop) parser.abort(new Error(stop));
        } catch (err) {
          refusal = err as BundleError;
          parser.abort(refusal);
        }
      });
    },
  }) as tar.Parser;
  try {
    await feed(file, parser, 'end');
  } catch (e) {
    if (refusal) throw refusal;
    if (!stop) throw new BundleError(`${file}: not a readable bundle, corrupt or truncated (${(e as Error).message})`);
  }
  if (refusal) throw refusal;
  if (stop === 'unwanted') return undefined;
  if (!manifest) throw new BundleError(`${file}: ${BUNDLE_MANIFEST} missing or invalid (no ${top}/${BUNDLE_MANIFEST})`);
  const signature = captured.get(BUNDLE_SIGNATURE);
  const check = checkSignature(file, manifest.bytes, signature && Buffer.concat(signature), trusted);
  const skipped = skippedBecause(check, trusted.length);
  if (skipped && !options.allowUnsigned) throw refusalOf(file, skipped);
  return {
    manifest: manifest.parsed,
    digest: sha256(manifest.bytes),
    signature: check.signature,
    ...(check.fingerprint ? { fingerprint: check.fingerprint } : {}),
    ...(skipped ? { skipped } : {}),
  };
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function refusalOf(file: string, skipped: string): BundleError {
  return new BundleError(
    `${file}: ${skipped}; refused (trust its signer: its public key in etc/trusted-keys/ or --trusted-key FILE; or accept it unchecked with --allow-unsigned)`,
  );
}

/**
 * Checks, verifies and extracts a bundle under `workDir`. Without `options`
 * (callers not yet passing trust) the signature is looked at but not
 * required, as with allowUnsigned; every other check applies.
 */
export async function openBundle(file: string, workDir: string, options: OpenOptions): Promise<OpenedBundle> {
  const limits: BundleLimits = { bytes: options.limits?.bytes ?? MAX_BUNDLE_BYTES, entries: options.limits?.entries ?? MAX_BUNDLE_ENTRIES };
  const trusted = await keyObjects(options.trustedKeys);
  const listing = await listBundle(file, limits);
  const check = checkSignature(file, listing.manifest, listing.signature, trusted);
  const skipped = skippedBecause(check, trusted.length);
  if (skipped && !options.allowUnsigned) throw refusalOf(file, skipped);
  const manifest = parseManifest(file, listing.manifest);

  // Created only now, past the signature check; what this created goes again if the bundle is refused.
  const made = await mkdir(workDir, { recursive: true });
  const tmp = await mkdtemp(path.join(workDir, BUNDLE_WORK_PREFIX));
  const cleanup = () => rm(tmp, { recursive: true, force: true });
  try {
    await extract(file, tmp, limits, listing.top);
    const dir = path.join(tmp, listing.top);
    await settleTree(dir);
    await checkLinks(file, listing.top, dir);
    // The manifest written is the one verified (the archive could have changed between the passes).
    if (!(await readFile(path.join(dir, BUNDLE_MANIFEST))).equals(listing.manifest))
      throw new BundleError(`${file}: ${BUNDLE_MANIFEST} changed while the bundle was read; refused`);
    await checkContents(file, dir, manifest);
    return {
      manifest,
      digest: sha256(listing.manifest),
      dir,
      cleanup,
      signature: check.signature,
      ...(check.fingerprint ? { fingerprint: check.fingerprint } : {}),
      ...(skipped ? { skipped } : {}),
    };
  } catch (e) {
    await cleanup();
    if (made) await rm(made, { recursive: true, force: true });
    if (e instanceof BundleError) throw e;
    throw new BundleError(`${file}: cannot extract (${(e as Error).message})`);
  }
}
