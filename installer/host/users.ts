import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { Ids } from '../apply/apply.js';
import { InstallerError } from '../errors.js';
import { execa } from './exec.js';

/*
 * The service account. As root the installer creates a system group and user
 * (no login shell, no home of its own) when they do not exist yet; an
 * existing account is used as it is.
 */

/** A short query of the host's account database: its exit code and output, never a throw. */
function query(file: string, args: string[]): Promise<{ exitCode: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8' }, (err, stdout) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ exitCode: code, stdout });
    });
  });
}

type Account = Ids & { name: string; group: string };

/** An entry of a colon-separated account file (/etc/passwd, /etc/group) by name. */
async function localEntry(file: string, name: string): Promise<string[] | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .map((l) => l.split(':'))
    .find((f) => f[0] === name && f.length >= 3);
}

/**
 * The account from the local files (where useradd puts a system account),
 * else from NSS through id and getent (a directory service): one run asks
 * about the same account a dozen times, and two processes each took longer
 * than reading two small files.
 */
async function lookup(user: string, group: string): Promise<Account | undefined> {
  const [pw, gr] = await Promise.all([localEntry('/etc/passwd', user), localEntry('/etc/group', group)]);
  if (pw && gr) return { name: user, group, uid: Number(pw[2]), gid: Number(gr[2]) };
  const [u, g] = await Promise.all([query('id', ['-u', user]), query('getent', ['group', group])]);
  if (u.exitCode !== 0 || g.exitCode !== 0) return undefined;
  return { name: user, group, uid: Number(u.stdout.trim()), gid: Number(g.stdout.split(':')[2]) };
}

/** Accounts found in this process (an account that exists stays; one that does not may be created, so is asked again). */
const found = new Map<string, Promise<Account | undefined>>();

export async function lookupIds(user: string, group: string): Promise<Account | undefined> {
  const key = `${user}:${group}`;
  const asked = found.get(key) ?? lookup(user, group);
  found.set(key, asked);
  const ids = await asked;
  if (!ids) found.delete(key);
  return ids;
}

export async function ensureServiceAccount(
  user: string,
  group: string,
  home: string,
): Promise<{ ids: Ids & { name: string; group: string }; created: string[] }> {
  const created: string[] = [];
  const known = await lookupIds(user, group);
  if (known) return { ids: known, created };
  if ((await query('getent', ['group', group])).exitCode !== 0) {
    const r = await execa('groupadd', ['--system', group], { reject: false, all: true });
    if (r.exitCode !== 0) throw new InstallerError(`cannot create group ${group}: ${r.all}`);
    created.push(`group ${group}`);
  }
  if ((await query('id', ['-u', user])).exitCode !== 0) {
    const r = await execa(
      'useradd',
      [
        '--system',
        '--gid',
        group,
        '--home-dir',
        home,
        '--no-create-home',
        '--shell',
        '/usr/sbin/nologin',
        '--comment',
        'Canopsis services',
        user,
      ],
      {
        reject: false,
        all: true,
      },
    );
    if (r.exitCode !== 0) throw new InstallerError(`cannot create user ${user}: ${r.all}`);
    created.push(`user ${user}`);
  }
  const ids = await lookupIds(user, group);
  if (!ids) throw new InstallerError(`user ${user} or group ${group} not found after creating them`);
  return { ids, created };
}
