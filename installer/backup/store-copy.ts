import { access } from 'node:fs/promises';
import path from 'node:path';
import { execa, type Options } from 'execa';
import { z } from 'zod';
import { COLLECTION_NAME } from '../../runtime/store/types.js';
import { checkReleaseId } from '../apply/release-id.js';
import { nodeFor } from '../apply/runtime.js';
import { InstallerError, lastLines } from '../errors.js';
import { lookupIds } from '../host/users.js';
import type { Layout } from '../layout.js';
import { serviceAccount } from '../migrations/store-jobs.js';
import { SOURCE_ROOT } from '../source-root.js';
import { type CopyOp, type CopyReport, runCopyOp } from './sqlite-copy.js';
import { type TransferReport, transferToPostgresql } from './store-transfer.js';

/*
 * The embedded store copied out or back (or the whole store into
 * PostgreSQL: store-transfer.ts) as the service user. As root, the
 * work runs in a child process of an installed release with the service
 * user's uid and gid: root opens the archive side (a file in its own 0700
 * directory) and hands the descriptor over as the child's stdout or stdin,
 * so it never opens a path the service user could swap for a link. Not as
 * root (or with a root service account), the installer does it itself.
 */

const SCRIPT = path.join('dist', 'installer', 'backup', 'store-copy-task.js');

const reportSchema = z.object({
  present: z.boolean(),
  bytes: z.number().int().nonnegative(),
  entities: z.number().int().nonnegative(),
  alarms: z.number().int().nonnegative(),
});

/**
 * The store-copy script, from a release installed in the prefix (the
 * service user reads lib/, not a checkout under /root): the running code
 * when it is one, else the first of `releases` (the installed one, then an
 * update's new one when the installed release predates backups) that has it.
 */
export async function copyScript(layout: Layout, releases: string[]): Promise<string> {
  const here = path.relative(layout.releases, SOURCE_ROOT);
  if (!here.startsWith('..') && !path.isAbsolute(here)) return path.join(SOURCE_ROOT, SCRIPT);
  const ids = [...new Set(releases)];
  for (const id of ids) {
    const script = path.join(layout.releases, checkReleaseId(id, 'release'), SCRIPT);
    if (
      await access(script).then(
        () => true,
        () => false,
      )
    )
      return script;
  }
  throw new InstallerError(
    `the store is copied by an installed release running as the service user, and none of ${ids.join(', ')} in ${layout.releases} can: install this version first (./build-install install)`,
  );
}

/** The service account a copy runs as; undefined when this process does it itself (not root, or a root service account). */
async function copyAccount(layout: Layout): Promise<{ user: string; uid: number; gid: number } | undefined> {
  const account = process.getuid?.() === 0 ? await serviceAccount(layout) : undefined;
  if (!account || account.user === 'root') return undefined;
  const ids = await lookupIds(account.user, account.group);
  if (!ids) throw new InstallerError(`service account ${account.user}:${account.group} missing: run ./build-install install to create it`);
  return { user: account.user, ...ids };
}

/**
 * Runs store-copy-task.js `op` of an installed release as `account`, its standard input and output
 * the descriptors given (or `input`, written to it); returns the report it wrote on descriptor 3,
 * checked against `schema` (the child runs as a user other processes of that user can reach).
 */
async function runTask<T>(
  layout: Layout,
  account: { user: string; uid: number; gid: number },
  op: string,
  io: { stdin?: number; stdout?: number; input?: string },
  releases: string[],
  schema: z.ZodType<T>,
): Promise<T> {
  const script = await copyScript(layout, releases);
  // The release's own Node (script is <release>/dist/installer/backup/store-copy-task.js).
  const r = await execa(await nodeFor(path.resolve(script, '..', '..', '..', '..')), [script, op], {
    env: { CPS_PREFIX: layout.prefix, HOME: layout.prefix },
    extendEnv: false,
    uid: account.uid,
    gid: account.gid,
    cwd: layout.prefix,
    stdio: [io.stdin ?? (io.input === undefined ? 'ignore' : 'pipe'), io.stdout ?? 'ignore', 'pipe', 'pipe'],
    ...(io.input === undefined ? {} : { input: io.input }),
    reject: false,
  } as Options);
  const fd3 = String((r.stdio as unknown[])[3] ?? '');
  if (r.exitCode !== 0)
    throw new InstallerError(`copying the store (${op}) as ${account.user} failed (exit ${r.exitCode}): ${lastLines(r.stderr)}`);
  let answer: unknown;
  try {
    answer = JSON.parse(fd3.trim());
  } catch {
    answer = undefined;
  }
  const parsed = schema.safeParse(answer);
  if (!parsed.success)
    throw new InstallerError(`copying the store (${op}) as ${account.user} answered something unexpected: ${fd3.slice(0, 200)}`);
  return parsed.data;
}

/**
 * Runs one copy operation on the embedded store of `layout`: `fd` is the
 * archive side (written by backup, read by restore), opened by the caller.
 */
export async function copyStore(layout: Layout, op: CopyOp, fd: number | undefined, releases: string[] = []): Promise<CopyReport> {
  const account = await copyAccount(layout);
  if (!account) return runCopyOp(layout.prefix, op, fd);
  const io = { stdin: op === 'restore' ? fd : undefined, stdout: op === 'backup' ? fd : undefined };
  return runTask(layout, account, op, io, releases, reportSchema);
}

const transferSchema = z.discriminatedUnion('ok', [
  z.object({
    ok: z.literal(true),
    collections: z.array(
      z.object({ name: z.string().regex(COLLECTION_NAME), source: z.number().int().nonnegative(), target: z.number().int().nonnegative() }),
    ),
  }),
  z.object({
    ok: z.literal(false),
    occupied: z.array(z.object({ name: z.string().regex(COLLECTION_NAME), count: z.number().int().nonnegative() })),
  }),
]);

/**
 * Copies the whole store of `layout` into the empty PostgreSQL store at `url`, as the service user
 * (the URL goes on the child's standard input: never in a command line that ps shows). `sourceFile`,
 * the embedded store file, names the source when runtime.conf names the target already.
 */
export async function transferStore(layout: Layout, url: string, releases: string[] = [], sourceFile?: string): Promise<TransferReport> {
  const account = await copyAccount(layout);
  if (!account) return transferToPostgresql(layout.prefix, url, sourceFile);
  const input = JSON.stringify(sourceFile === undefined ? { url } : { url, source: sourceFile });
  return runTask(layout, account, 'migrate', { input }, releases, transferSchema);
}
