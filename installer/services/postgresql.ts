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

/** The instance's superuser: no password, and no OS user of that name to log in as on the socket (peer). */
const ADMIN = 'canopsis_admin';

/** Marks a data directory whose first setup went through: one without it is made again. */
const READY = 'canopsis-initialized';

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

/**
 * A data directory made once, as the service user: initdb with a
 * superuser nobody can log in as, then, in single-user mode (no listener is
 * up yet), the URL's user as a plain login owning only its database. The
 * password goes in on standard input, never in a command line or a file. A
 * setup that failed half-way (no marker) is started again from an empty
 * directory. The data directory's own pg_hba.conf is never read (hba_file
 * names ours), so initdb's is only made to refuse TCP.
 */
async function initialize(ctx: RenderContext, as: { uid: number; gid: number } | undefined): Promise<string | undefined> {
  const pg = ctx.store.postgresql;
  if (await exists(path.join(pg.data, READY))) return undefined;
  const account = urlAccount(ctx.secrets.store.postgresql_url ?? '');
  const opts = { ...(as ? { uid: as.uid, gid: as.gid } : {}), cwd: pg.data, reject: false, all: true, env: { LC_ALL: 'C' } } as const;
  // Emptied as the service user, whose directory it is (root never walks what the service user can write).
  if (await exists(path.join(pg.data, 'PG_VERSION'))) {
    const wipe = await execa('find', [pg.data, '-mindepth', '1', '-delete'], opts);
    if (wipe.exitCode !== 0) throw new InstallerError(`cannot empty ${pg.data} after a setup that did not finish: ${lastLines(wipe.all)}`);
  }
  const initdb = await execa(
    path.join(pg.bin, 'initdb'),
    ['-D', pg.data, '-U', ADMIN, '--auth-local=peer', '--auth-host=reject', '-E', 'UTF8', '--locale=C'],
    opts,
  );
  if (initdb.exitCode !== 0) throw new InstallerError(`initdb of ${pg.data} failed (exit ${initdb.exitCode}): ${lastLines(initdb.all)}`);
  // One statement per line: single-user mode runs each line as it comes.
  const sql = [
    `CREATE ROLE ${ident(account.user)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '${account.password.replace(/'/g, "''")}';`,
    `CREATE DATABASE ${ident(account.database)} OWNER ${ident(account.user)};`,
    '',
  ].join('\n');
  const create = await execa(path.join(pg.bin, 'postgres'), ['--single', '-D', pg.data, '-c', `config_file=${pg.conf}`, 'postgres'], {
    ...opts,
    input: sql,
  });
  // Its own words, not the checkpoint lines that follow them, and never the statement (it holds the password).
  const errors = String(create.all)
    .split('\n')
    .filter((l) => /\b(ERROR|FATAL):/.test(l))
    .map((l) => l.split(account.password).join('***'));
  if (create.exitCode !== 0 || errors.length)
    throw new InstallerError(
      `setting up user ${account.user} and database ${account.database} failed: ${errors.join(' | ') || `exit ${create.exitCode}`}`,
    );
  const mark = await execa('touch', [path.join(pg.data, READY)], opts);
  if (mark.exitCode !== 0) throw new InstallerError(`cannot mark ${pg.data} as set up: ${lastLines(mark.all)}`);
  return `PostgreSQL data directory ${pg.data} made, with user ${account.user} owning database ${account.database}`;
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
  // The port on every listen address: one held on the loopback (Debian's own cluster) would send local clients there.
  ports: (s) =>
    s.store.postgresql_listen.map((host) => ({
      service: 'postgresql',
      host: host === '*' ? '0.0.0.0' : host,
      port: s.store.postgresql_port,
      setting: ['store', 'postgresql_port'] as [string, string],
      fix: "Debian's postgresql package starts a cluster of its own on 5432: stop it (pg_ctlcluster VERSION main stop, and 'manual' in /etc/postgresql/VERSION/main/start.conf), or set store.postgresql_port",
    })),
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
