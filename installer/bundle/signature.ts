import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readdir } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { BundleError, KeyFileError } from '../errors.js';
import { BUNDLE_MANIFEST, BUNDLE_SIGNATURE } from './format.js';

/*
 * Who made a bundle. `bundle --sign-key FILE` signs the exact bytes of
 * MANIFEST.json with an Ed25519 key; the manifest holds the sha256 of every
 * file, so the signature covers the whole release. An installer running as
 * root trusts the public keys in PREFIX/etc/trusted-keys/*.pem (and those
 * named with --trusted-key), which is why a key file anyone but root could
 * write is refused rather than read.
 */

/** MANIFEST.json.sig */
const signatureFile = z.object({
  format: z.literal(1),
  algorithm: z.literal('ed25519'),
  /** fingerprint() of the signing key. */
  key: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  /** base64 of the 64-byte Ed25519 signature of MANIFEST.json. */
  signature: z.string().regex(/^[A-Za-z0-9+/]{86}==$/),
});
export type SignatureFile = z.infer<typeof signatureFile>;

/** `sha256:<hex>` of the public key's SubjectPublicKeyInfo DER (`openssl pkey -pubin -outform DER | sha256sum`). */
export function fingerprint(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return `sha256:${createHash('sha256')
    .update(pub.export({ type: 'spki', format: 'der' }))
    .digest('hex')}`;
}

/** The signature file's text for these manifest bytes. */
export function signManifest(manifest: Buffer, privateKey: KeyObject): string {
  const file: SignatureFile = {
    format: 1,
    algorithm: 'ed25519',
    key: fingerprint(privateKey),
    signature: sign(null, manifest, privateKey).toString('base64'),
  };
  return `${JSON.stringify(file, null, 1)}\n`;
}

export type SignatureStatus = 'verified' | 'untrusted' | 'unsigned';

export interface SignatureCheck {
  signature: SignatureStatus;
  /** The key the bundle says signed it (absent when unsigned). */
  fingerprint?: string;
}

/**
 * What the signature of a bundle's manifest says. A signature that names a
 * trusted key and does not verify is tampering, never "unsigned": it throws
 * whatever the caller accepts. `bundle` names the bundle in messages.
 */
export function checkSignature(bundle: string, manifest: Buffer, signatureText: Buffer | undefined, trusted: KeyObject[]): SignatureCheck {
  if (signatureText === undefined) return { signature: 'unsigned' };
  let sig: SignatureFile;
  try {
    sig = signatureFile.parse(JSON.parse(signatureText.toString('utf8')));
  } catch (e) {
    throw new BundleError(`${bundle}: ${BUNDLE_SIGNATURE} is not a signature file (${(e as Error).message.split('\n')[0]}); refused`);
  }
  const key = trusted.find((k) => fingerprint(k) === sig.key);
  if (!key) return { signature: 'untrusted', fingerprint: sig.key };
  if (!verify(null, manifest, key, Buffer.from(sig.signature, 'base64'))) {
    throw new BundleError(
      `${bundle}: the signature by ${sig.key} does not match ${BUNDLE_MANIFEST}: the manifest or its signature was changed after signing; refused`,
    );
  }
  return { signature: 'verified', fingerprint: sig.key };
}

/** Why a bundle accepted with allowUnsigned was not verified, for "the bundle's signature was not checked: ...". */
export function skippedBecause(check: SignatureCheck, trustedCount: number): string | undefined {
  if (check.signature === 'unsigned') return 'the bundle is not signed';
  if (check.signature === 'untrusted') {
    return `the bundle is signed by ${check.fingerprint}, ${trustedCount ? `which is not among the ${trustedCount} trusted key${trustedCount === 1 ? '' : 's'}` : 'and no key is trusted here'}`;
  }
  return undefined;
}

const isRoot = (): boolean => process.getuid?.() === 0;

/** Root trusts the file: nobody else may be able to change it. */
function checkWriters(what: string, st: { uid: number; mode: number }, strictOwner: boolean): void {
  if (st.mode & 0o022)
    throw new KeyFileError(
      `${what} is writable by its ${st.mode & 0o020 ? 'group' : 'others'} (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}); keys are trusted by root: chmod go-w it`,
    );
  if (strictOwner && isRoot() && st.uid !== 0)
    throw new KeyFileError(`${what} is owned by uid ${st.uid}, not root; keys are trusted by root: chown root it`);
}

async function readKeyFile(file: string, strictOwner: boolean): Promise<string> {
  let fh: FileHandle;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new KeyFileError(`cannot read the key file ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    // The checks and the read are on the one open file: what was checked is what is read.
    const st = await fh.stat();
    if (!st.isFile()) throw new KeyFileError(`${file} is not a regular file`);
    checkWriters(file, st, strictOwner);
    if (st.size > 64 * 1024) throw new KeyFileError(`${file} is ${st.size} bytes, too large for a key`);
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

/** An Ed25519 public key from PEM text; refuses anything else, naming `file`. */
export function parsePublicKey(text: string, file: string): KeyObject {
  if (/PRIVATE KEY-----/.test(text))
    throw new KeyFileError(`${file} holds a private key: a trusted key is the public half (openssl pkey -in KEY -pubout)`);
  if (!/^-----BEGIN PUBLIC KEY-----$/m.test(text)) throw new KeyFileError(`${file} is not a PEM public key (no BEGIN PUBLIC KEY block)`);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: text, format: 'pem' });
  } catch (e) {
    throw new KeyFileError(`${file} is not a readable public key (${(e as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new KeyFileError(`${file} is an ${key.asymmetricKeyType} key; bundles are signed with Ed25519 keys`);
  return key;
}

/** A public key named on the command line (--trusted-key FILE). */
export async function readPublicKeyFile(file: string): Promise<KeyObject> {
  return parsePublicKey(await readKeyFile(file, false), file);
}

/**
 * The public keys in `dir` (*.pem): PREFIX/etc/trusted-keys. None when the
 * directory is absent. The directory and every key must be writable by
 * root alone (and owned by root, when running as root).
 */
export async function readTrustedKeys(dir: string): Promise<KeyObject[]> {
  let fh: FileHandle;
  try {
    fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return [];
    throw new KeyFileError(`cannot read the trusted keys directory ${dir} (${code ?? (e as Error).message})`);
  }
  try {
    checkWriters(`the trusted keys directory ${dir}`, await fh.stat(), true);
  } finally {
    await fh.close();
  }
  const keys: KeyObject[] = [];
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.pem')).sort()) {
    const file = path.join(dir, name);
    keys.push(parsePublicKey(await readKeyFile(file, true), file));
  }
  return keys;
}

/** The Ed25519 private key a bundle is signed with (bundle --sign-key FILE). */
export async function readSigningKey(file: string): Promise<KeyObject> {
  const text = await readKeyFile(file, false);
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: text, format: 'pem' });
  } catch (e) {
    throw new KeyFileError(`${file} is not a readable unencrypted PEM private key (${(e as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new KeyFileError(
      `${file} is an ${key.asymmetricKeyType} key; bundles are signed with Ed25519 keys (./build-install keygen makes one)`,
    );
  return key;
}

export const SIGNING_KEY = 'bundle-signing.key';
export const SIGNING_PUBLIC_KEY = 'bundle-signing.pub.pem';

/**
 * Writes a new Ed25519 key pair into `dir`: the private key (0600) that
 * `bundle --sign-key` takes and the public key (0644) to copy into
 * PREFIX/etc/trusted-keys/ on the hosts. Never overwrites a key.
 */
export async function generateSigningKey(dir: string): Promise<{ privateKey: string; publicKey: string; fingerprint: string }> {
  const pair = generateKeyPairSync('ed25519');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const privateKey = path.join(dir, SIGNING_KEY);
  const publicKey = path.join(dir, SIGNING_PUBLIC_KEY);
  for (const file of [privateKey, publicKey]) {
    // Both checked first: a half-written pair (a private key without its public half) helps nobody.
    if (
      await lstat(file).then(
        () => true,
        () => false,
      )
    )
      throw new KeyFileError(`${file} already exists; a key is never overwritten (choose another directory or move it away)`);
  }
  const write = async (file: string, text: string, mode: number) => {
    let fh: FileHandle;
    try {
      fh = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST')
        throw new KeyFileError(`${file} already exists; a key is never overwritten (choose another directory or move it away)`);
      throw e;
    }
    try {
      await fh.chmod(mode); // the umask may have taken bits the public key needs
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
  };
  await write(privateKey, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
  await write(publicKey, pair.publicKey.export({ type: 'spki', format: 'pem' }) as string, 0o644);
  return { privateKey, publicKey, fingerprint: fingerprint(pair.publicKey) };
}
