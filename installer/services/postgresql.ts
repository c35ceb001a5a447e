import { access } from 'node:fs/promises';
import path from 'node:path';
import { InstallerError, lastLines } from '../errors.js';
import { execa } from '../host/exec.js';
import type { RenderContext } from '../render/context.js';
import { conf, UNIT_DIR } from '../render/file-spec.js';
import { runsPostgresql } from '../settings/roles.js';
import type { ServiceModule } from './types.js';

/*
 * The store host's own PostgreSQL (the store role, store.backend =
 * postgresql, store.postgresql_mode = local): Debian's server programs, our
 * configuration under etc/postgresql/, its data under var/ as the service
 * user's. Its one user and database are those of [store] postgresql_url,
 * which every host of the site shares.
 */

const FILES = [
  conf('etc/supervisord.d/postgresql.conf', 'templates/supervisord.d/postgresql.conf.hbs'),
  conf('etc/postgresql/postgresql.conf', 'templates/postgresql/postgresql.conf.hbs'),
  conf('etc/postgresql/pg_hba.conf', 'templates/postgresql/pg_hba.conf.hbs'),
  conf(`${UNIT_DIR}/canopsis-postgresql.service`, 'systemd/canopsis-postgresql.service.hbs'),
];

/** The user, password and database of the store URL. */
export function urlAccount(url: string): { user: string; password: string; database: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new InstallerError('[store] postgresql_url is not a URL (postgresql://user:password@host:port/database)');
  }
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  const user = decodeURIComponent(u.username);
  if (!user || !u.password || !database)
    throw new InstallerError(
      '[store] postgresql_url needs a user, a password and a database (postgresql://user:password@host:port/database)',
    );
  return { user, password: decodeURIComponent(u.password), database };
}

const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;

/**
 * A data directory made once, as the service user: initdb with the URL's
 * user as the instance's owner, then its password and its database set by
 * the server in single-user mode (no listener is up yet). The password
 * goes in on standard input, never in a command line or a file. The data
 * directory's own pg_hba.conf is never read (hba_file names ours), so
 * initdb's is only made to refuse TCP.
 */
async function initialize(ctx: RenderContext, as: { uid: number; gid: number } | undefined): Promise<string | undefined> {
  const pg = ctx.store.postgresql;
  if (
    await access(path.join(pg.data, 'PG_VERSION')).then(
      () => true,
      () => false,
    )
  )
    return undefined;
  const account = urlAccount(ctx.secrets.store.postgresql_url ?? '');
  const opts = { ...(as ? { uid: as.uid, gid: as.gid } : {}), cwd: pg.data, reject: false, all: true, env: { LC_ALL: 'C' } } as const;
  const initdb = await execa(
    path.join(pg.bin, 'initdb'),
    ['-D', pg.data, '-U', account.user, '--auth-local=peer', '--auth-host=reject', '-E', 'UTF8', '--locale=C'],
    opts,
  );
  if (initdb.exitCode !== 0) throw new InstallerError(`initdb of ${pg.data} failed (exit ${initdb.exitCode}): ${lastLines(initdb.all)}`);
  // One statement per line: single-user mode runs each line as it comes.
  const sql = [
    `ALTER ROLE ${ident(account.user)} PASSWORD '${account.password.replace(/'/g, "''")}';`,
    `CREATE DATABASE ${ident(account.database)} OWNER ${ident(account.user)};`,
    '',
  ].join('\n');
  const create = await execa(path.join(pg.bin, 'postgres'), ['--single', '-D', pg.data, '-c', `config_file=${pg.conf}`, 'postgres'], {
    ...opts,
    input: sql,
  });
  if (create.exitCode !== 0 || /ERROR:/.test(String(create.all)))
    throw new InstallerError(`setting up user ${account.user} and database ${account.database} failed: ${lastLines(create.all)}`);
  return `PostgreSQL data directory ${pg.data} made, with user ${account.user} and database ${account.database}`;
}

export const postgresql: ServiceModule = {
  name: 'postgresql',
  tier: 'BACKEND',
  enabled: runsPostgresql,
  files: () => FILES,
  // PostgreSQL refuses a data directory others can read.
  directories: (ctx) => [
    { dir: ctx.store.postgresql.data, owner: 'service', mode: 0o700 },
    { dir: ctx.store.postgresql.socketDir, owner: 'service', mode: 0o750 },
  ],
  needs: () => [
    {
      key: 'postgres',
      binary: 'postgres',
      neededBy: 'store.backend=postgresql with store.postgresql_mode=local on a store role host',
      packages: ['postgresql'],
    },
  ],
  // One port on every listen address: the last one, the site's address when there are two.
  ports: (s) => {
    const host = s.store.postgresql_listen.at(-1) ?? '127.0.0.1';
    return [
      {
        service: 'postgresql',
        host: host === '*' ? '0.0.0.0' : host,
        port: s.store.postgresql_port,
        setting: ['store', 'postgresql_port'],
      },
    ];
  },
  units: () => ['canopsis-postgresql.service'],
  initialize,
  // The store answers over the network with the URL's credentials (root never opens a store file).
  ready: async (prefix) => {
    const { openStore, readRuntimeConfig } = await import('../../runtime/config/runtime.js');
    try {
      const s = await openStore(await readRuntimeConfig(prefix));
      try {
        await s.ping();
      } finally {
        await s.close();
      }
      return undefined;
    } catch (e) {
      return `store not answering: ${(e as Error).message}`;
    }
  },
  restarts: (written) => FILES.some((f) => written.includes(f.target)),
};
