import { createHash, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
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

/** scrypt$N$r$p$salt$hash, base64 parts. */
export function hashPassword(password: string, salt = randomBytes(16)): string {
  const N = 16384;
  const r = 8;
  const p = 1;
  const hash = scryptSync(password, salt, 32, { N, r, p });
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export function verifyPassword(password: string, stored: string): boolean {
  const [algo, N, r, p, salt, hash] = stored.split('$');
  if (algo !== 'scrypt' || !salt || !hash) return false;
  const got = scryptSync(password, Buffer.from(salt, 'base64'), 32, { N: Number(N), r: Number(r), p: Number(p) });
  const want = Buffer.from(hash, 'base64');
  return got.length === want.length && timingSafeEqual(got, want);
}

export const keyHash = sha256;

export async function readCredentials(secretsFile: string, usersFile: string): Promise<Credentials> {
  const secrets = ini.parse(await readFile(secretsFile, 'utf8')) as { api?: { authkey?: string } };
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
  return { authkey, keys, users };
}

/** The principal of a request, or undefined. */
export function authenticate(c: Credentials, key: string | undefined, authorization: string | undefined): Principal | undefined {
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
  return user && verifyPassword(decoded.slice(i + 1), user.hash) ? { name, role: user.role } : undefined;
}
