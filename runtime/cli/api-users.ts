#!/usr/bin/env node
import { randomBytes } from 'node:crypto';
import { chmod, chown, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import ini from 'ini';
import { prefixFrom } from '../config/files.js';
import { hashPassword, keyHash } from '../web/auth.js';
import { commanderExit } from './args.js';

/*
 * PREFIX/bin/api-users: REST API accounts in etc/api-users.ini. Passwords
 * are stored as scrypt hashes and keys as sha256; a generated secret is
 * printed once and never stored in clear. The file is 0640, root and the
 * group of etc/canopsis-secrets.ini when run as root. The webserver reads
 * it at start (restart it after a change).
 */

async function edit(prefix: string, fn: (data: Record<string, Record<string, string>>) => void | Promise<void>): Promise<void> {
  const file = path.join(prefix, 'etc', 'api-users.ini');
  const data = ini.parse(await readFile(file, 'utf8').catch(() => '')) as Record<string, Record<string, string>>;
  await fn(data);
  // Read by the webserver through the service group, like the secrets file; written by root only.
  let gid: number | undefined;
  if (process.getuid?.() === 0) {
    const secrets = path.join(prefix, 'etc', 'canopsis-secrets.ini');
    gid = (
      await stat(secrets).catch((e: NodeJS.ErrnoException) => {
        throw new Error(`cannot tell the webserver's group from ${secrets} (${e.code ?? e.message}): ${file} not written`);
      })
    ).gid;
  }
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `; REST API accounts (bin/api-users). Hashes only.\n${ini.stringify(data, { whitespace: true })}`, {
    mode: 0o640,
    flag: 'wx',
  });
  try {
    if (gid !== undefined) await chown(tmp, 0, gid);
    await chmod(tmp, 0o640); // whatever the umask took away
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

const readStdin = async () => {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
};

const role = (r: string) => {
  if (r !== 'admin' && r !== 'readonly') throw new Error(`--role ${r}: expected admin or readonly`);
  return r;
};

const cli = new Command('api-users')
  .description('Manage REST API users (HTTP basic) and read-only keys.')
  .option('--prefix <dir>', 'installed tree (default: $CPS_PREFIX)')
  .exitOverride();
cli
  .command('add <name>')
  .description('add or change a user; the password is read from stdin, or generated and printed once')
  .option('--role <role>', 'admin or readonly', 'readonly')
  .option('--password-stdin', 'read the password from stdin')
  .action(async (name: string, o: { role: string; passwordStdin?: boolean }) => {
    const password = o.passwordStdin ? await readStdin() : randomBytes(18).toString('base64url');
    if (password.length < 8) throw new Error('a password of at least 8 characters is required');
    await edit(prefixFrom(process.env, cli.opts().prefix), async (d) => {
      d[`user:${name}`] = { role: role(o.role), password_hash: await hashPassword(password) };
    });
    process.stdout.write(o.passwordStdin ? `user ${name} (${o.role}) saved\n` : `user ${name} (${o.role}) saved; password: ${password}\n`);
  });
cli
  .command('key <name>')
  .description('create an API key (x-canopsis-authkey), printed once')
  .option('--role <role>', 'admin or readonly', 'readonly')
  .action(async (name: string, o: { role: string }) => {
    const key = randomBytes(24).toString('base64url');
    await edit(prefixFrom(process.env, cli.opts().prefix), (d) => {
      d[`key:${name}`] = { role: role(o.role), key_sha256: keyHash(key) };
    });
    process.stdout.write(`key ${name} (${o.role}): ${key}\n`);
  });
cli
  .command('remove <name>')
  .description('remove a user or key')
  .action(async (name: string) => {
    await edit(prefixFrom(process.env, cli.opts().prefix), (d) => {
      delete d[`user:${name}`];
      delete d[`key:${name}`];
    });
    process.stdout.write(`${name} removed\n`);
  });

try {
  await cli.parseAsync(process.argv.slice(2), { from: 'user' });
} catch (e) {
  const exit = commanderExit(e);
  if (exit !== undefined) process.exitCode = exit;
  else {
    process.stderr.write(`api-users: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
