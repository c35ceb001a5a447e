import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { InstallerError, lastLines, MissingTool } from '../errors.js';
import { firstExisting, which } from '../host/which.js';

/*
 * A PostgreSQL store goes through PostgreSQL's own tools: pg_dump in its
 * custom format out, pg_restore --clean back, in one transaction. The
 * password never reaches a command line: the URL is passed without it, and
 * the password in the tool's environment (PGPASSWORD), which only root
 * reads. Debian's pg_dump of the newest installed version is used: it
 * dumps servers of its own version and older.
 */

async function pgTool(name: 'pg_dump' | 'pg_restore', why: string): Promise<string> {
  const versions = (await readdir('/usr/lib/postgresql').catch(() => [] as string[])).filter((d) => /^\d+$/.test(d));
  const own = await firstExisting(versions.sort((a, b) => Number(b) - Number(a)).map((v) => `/usr/lib/postgresql/${v}/bin/${name}`));
  const found = own ?? (await which(name));
  if (!found) throw new MissingTool(`${why}: the store is PostgreSQL and ${name} is not installed: apt-get install postgresql-client`);
  return found;
}

/** The URL without its password, and the password apart. */
function split(url: string): { url: string; password: string | undefined } {
  const u = new URL(url);
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  u.password = '';
  return { url: u.toString(), password };
}

async function run(tool: string, args: string[], url: string): Promise<void> {
  const { url: bare, password } = split(url);
  const r = await execa(tool, [...args, `--dbname=${bare}`], {
    reject: false,
    all: true,
    env: { ...(password !== undefined ? { PGPASSWORD: password } : {}), PGCONNECT_TIMEOUT: '10' },
  });
  if (r.exitCode !== 0) throw new InstallerError(`${path.basename(tool)} failed (exit ${r.exitCode}): ${lastLines(r.all)}`);
}

/** The database of `url` into `file` (pg_dump's custom format, compressed). */
export async function dumpPostgresql(url: string, file: string): Promise<void> {
  await run(
    await pgTool('pg_dump', 'cannot back up the store'),
    ['--format=custom', '--no-owner', '--no-privileges', `--file=${file}`],
    url,
  );
}

/** `file` back into the database of `url`: what it holds dropped and made again, all or nothing. */
export async function restorePostgresql(url: string, file: string): Promise<void> {
  await run(
    await pgTool('pg_restore', 'cannot restore the store'),
    ['--clean', '--if-exists', '--no-owner', '--no-privileges', '--single-transaction', file],
    url,
  );
}

export const checkPgRestore = () => pgTool('pg_restore', 'cannot restore the store');
