import { createHash, randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import ini from 'ini';

/*
 * Who is calling: the API key of etc/canopsis-secrets.ini (full rights),
 * read-only keys and users with scrypt-hashed passwords from
 * etc/api-users.ini. Secrets are compared in constant time and never kept
 * in clear beyond the admin key the installer generated.
 */

export type Role = 'admin' | 'readonly';

export interface Principal {
  name: string;
  role: Role;
  /** A login token's expiry (unix seconds); absent for keys and HTTP basic. */
  expires?: number;
}

export interface Credentials {
  authkey: string;
  keys: Array<{ name: string; sha256: string; role: Role }>;
  users: Map<string, { hash: string; role: Role }>;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const same = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

// On the libuv thread pool: a login never blocks the event loop for the ~50 ms scrypt takes.
const scryptAsync = (password: string, salt: Buffer, options: ScryptOptions) =>
  new Promise<Buffer>((resolve, reject) => scrypt(password, salt, 32, options, (err, key) => (err ? reject(err) : resolve(key))));

/** scrypt$N$r$p$salt$hash, base64 parts. */
export async function hashPassword(password: string, salt = randomBytes(16)): Promise<string> {
  const N = 16384;
  const r = 8;
  const p = 1;
  const hash = await scryptAsync(password, salt, { N, r, p });
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [algo, N, r, p, salt, hash] = stored.split('$');
  if (algo !== 'scrypt' || !salt || !hash) return false;
  let got: Buffer;
  try {
    got = await scryptAsync(password, Buffer.from(salt, 'base64'), { N: Number(N), r: Number(r), p: Number(p) });
  } catch {
    return false; // parameters scrypt refuses (a hand-edited file): no login, not a crash
  }
  const want = Buffer.from(hash, 'base64');
  return got.length === want.length && timingSafeEqual(got, want);
}

export const keyHash = sha256;

export async function readCredentials(secretsFile: string, usersFile: string): Promise<Credentials> {
  const secrets = ini.parse(await readFile(secretsFile, 'utf8')) as { api?: { authkey?: string }; console?: { admin_password?: string } };
  const authkey = secrets.api?.authkey;
  if (!authkey) throw new Error(`${secretsFile}: [api] authkey is missing`);
  const users = new Map<string, { hash: string; role: Role }>();
  const keys: Credentials['keys'] = [];
  let text = '';
  try {
    text = await readFile(usersFile, 'utf8');
  } catch {
    // no users file: the admin key only
  }
  for (const [section, v] of Object.entries(ini.parse(text) as Record<string, Record<string, string>>)) {
    const role: Role = v.role === 'admin' ? 'admin' : 'readonly';
    const u = /^user:(.+)$/.exec(section);
    const k = /^key:(.+)$/.exec(section);
    if (u && v.password_hash) users.set(u[1]!, { hash: v.password_hash, role });
    if (k && v.key_sha256) keys.push({ name: k[1]!, sha256: v.key_sha256, role });
  }
  // The console's first admin, generated on first install; an `admin` of api-users.ini replaces it.
  const first = secrets.console?.admin_password;
  if (first && !users.has('admin')) users.set('admin', { hash: await hashPassword(first), role: 'admin' });
  return { authkey, keys, users };
}

/** What a request presents: an API key, an HTTP basic login, or nothing usable. */
export function presented(key: string | undefined, authorization: string | undefined): 'key' | 'basic' | undefined {
  if (key) return 'key';
  return /^Basic [A-Za-z0-9+/=]+$/.test(authorization ?? '') ? 'basic' : undefined;
}

// An unknown user costs the same scrypt as a known one: the time taken does not tell which names exist.
let decoy: Promise<string> | undefined;

/** The principal of a request, or undefined. */
export async function authenticate(
  c: Credentials,
  key: string | undefined,
  authorization: string | undefined,
): Promise<Principal | undefined> {
  if (key) {
    if (same(key, c.authkey)) return { name: 'authkey', role: 'admin' };
    const h = sha256(key);
    const k = c.keys.find((x) => same(x.sha256, h));
    return k ? { name: `key:${k.name}`, role: k.role } : undefined;
  }
  const m = /^Basic ([A-Za-z0-9+/=]+)$/.exec(authorization ?? '');
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return undefined;
  const name = decoded.slice(0, i);
  const user = c.users.get(name);
  // An unknown name costs the same scrypt as a known one (against a decoy hash made once).
  decoy ??= hashPassword(randomBytes(16).toString('hex'));
  const ok = await verifyPassword(decoded.slice(i + 1), user?.hash ?? (await decoy));
  return user && ok ? { name, role: user.role } : undefined;
}
