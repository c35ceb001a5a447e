import { execa } from 'execa';
import type { Ids } from '../apply/apply.js';
import { InstallerError } from '../errors.js';

/*
 * The service account. As root the installer creates a system group and user
 * (no login shell, no home of its own) when they do not exist yet; an
 * existing account is used as it is.
 */

export async function lookupIds(user: string, group: string): Promise<(Ids & { name: string; group: string }) | undefined> {
  const u = await execa('id', ['-u', user], { reject: false });
  const g = await execa('getent', ['group', group], { reject: false });
  if (u.exitCode !== 0 || g.exitCode !== 0) return undefined;
  return { name: user, group, uid: Number(u.stdout.trim()), gid: Number(g.stdout.split(':')[2]) };
}

export async function ensureServiceAccount(
  user: string,
  group: string,
  home: string,
): Promise<{ ids: Ids & { name: string; group: string }; created: string[] }> {
  const created: string[] = [];
  if ((await execa('getent', ['group', group], { reject: false })).exitCode !== 0) {
    const r = await execa('groupadd', ['--system', group], { reject: false, all: true });
    if (r.exitCode !== 0) throw new InstallerError(`cannot create group ${group}: ${r.all}`);
    created.push(`group ${group}`);
  }
  if ((await execa('id', ['-u', user], { reject: false })).exitCode !== 0) {
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
