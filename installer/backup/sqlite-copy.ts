import { constants, createReadStream, createWriteStream } from 'node:fs';
import { open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import Database from 'better-sqlite3';
import { readRuntimeConfig } from '../../runtime/config/runtime.js';
import { ALARMS } from '../../runtime/engines/axe.js';
import { ENTITIES } from '../../runtime/engines/che.js';
import { DEFAULT_BUSY_TIMEOUT_MS } from '../../runtime/store/sqlite.js';

/*
 * Copying the embedded store out and back, done by the service user (a
 * child of the installed release, or the installer itself when it is not
 * root): root never opens a path inside the store's directory. Data goes
 * through file descriptors root opened in its own private directory.
 */

export interface CopyReport {
  /** Whether the store had a file (an install that never stored anything has none). */
  present: boolean;
  bytes: number;
  entities: number;
  alarms: number;
}

/** SQLite's own check of a copy, and what it holds; closing it folds and removes its -wal. */
function inspect(file: string): { entities: number; alarms: number } {
  const db = new Database(file, { fileMustExist: true });
  try {
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new Error(`${path.basename(file)}: SQLite's quick_check found a damaged database (${String(check)})`);
    const count = (name: string) => {
      const table = `c_${name}`;
      const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table);
      return has ? (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n : 0;
    };
    return { entities: count(ENTITIES), alarms: count(ALARMS) };
  } finally {
    db.close();
  }
}

const removeCopy = async (file: string) => {
  for (const s of ['', '-wal', '-shm', '-journal']) await rm(`${file}${s}`, { force: true });
};

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * An online, consistent copy of the store written to `outFd`: SQLite's
 * backup API into a temp file beside the store, then streamed out.
 */
export async function backupSqlite(storeFile: string, outFd: number, busyTimeoutMs: number): Promise<CopyReport> {
  if (!(await stat(storeFile).catch(() => undefined))?.isFile()) return { present: false, bytes: 0, entities: 0, alarms: 0 };
  const tmp = path.join(path.dirname(storeFile), `.backup-${process.pid}-${Date.now()}.db`);
  try {
    const src = new Database(storeFile, { fileMustExist: true });
    try {
      src.pragma(`busy_timeout = ${Math.round(busyTimeoutMs)}`);
      // Every page in one step, under one read transaction: a consistent snapshot. In WAL mode the
      // engines keep writing meanwhile; in steps of 100 pages each of their writes would restart the copy.
      await src.backup(tmp, { progress: () => 0x7fffffff });
    } finally {
      src.close();
    }
    const counts = inspect(tmp);
    await pipeline(createReadStream(tmp), createWriteStream('', { fd: outFd, autoClose: false }));
    return { present: true, bytes: (await stat(tmp)).size, ...counts };
  } finally {
    await removeCopy(tmp);
  }
}

/**
 * Puts a copy read from `inFd` in place of the store (none: the store is
 * emptied): written and checked beside it, the stale -wal and -shm of the
 * old file removed (replayed on the new one they would corrupt it), then
 * renamed over it. Nothing may have the store open meanwhile.
 */
export async function restoreSqlite(storeFile: string, inFd: number | undefined): Promise<CopyReport> {
  const dir = path.dirname(storeFile);
  const tmp = path.join(dir, `.restore-${process.pid}-${Date.now()}.db`);
  try {
    let report: CopyReport = { present: false, bytes: 0, entities: 0, alarms: 0 };
    if (inFd !== undefined) {
      await pipeline(createReadStream('', { fd: inFd, autoClose: false }), createWriteStream(tmp, { flags: 'wx', mode: 0o640 }));
      const bytes = (await stat(tmp)).size;
      report = { present: true, bytes, ...inspect(tmp) };
      const fh = await open(tmp, 'r');
      await fh.sync().finally(() => fh.close());
    }
    for (const s of ['-wal', '-shm']) await rm(`${storeFile}${s}`, { force: true });
    if (inFd !== undefined) await rename(tmp, storeFile);
    else await rm(storeFile, { force: true });
    await syncDir(dir);
    return report;
  } finally {
    await removeCopy(tmp);
  }
}

/** Temp copies a killed run left beside the store (one copy runs at a time: the installer holds the prefix lock). */
async function removeLeftovers(dir: string): Promise<void> {
  for (const n of await readdir(dir).catch(() => [] as string[]))
    if (/^\.(backup|restore)-\d+-\d+\.db(-wal|-shm|-journal)?$/.test(n)) await rm(path.join(dir, n), { force: true });
}

export type CopyOp = 'backup' | 'restore' | 'clear';
export const COPY_OPS: readonly string[] = ['backup', 'restore', 'clear'];

/** One operation on the embedded store of `prefix`; `fd` is where the copy goes (backup) or comes from (restore). */
export async function runCopyOp(prefix: string, op: string, fd: number | undefined): Promise<CopyReport> {
  const cfg = await readRuntimeConfig(prefix);
  if (cfg.store.backend !== 'embedded') throw new Error(`the store of ${prefix} is ${cfg.store.backend}, not the embedded one`);
  const busy = (cfg.store.busyTimeout ?? DEFAULT_BUSY_TIMEOUT_MS / 1000) * 1000;
  await removeLeftovers(path.dirname(cfg.store.file));
  if ((op === 'backup' || op === 'restore') && fd === undefined) throw new Error(`${op} needs a file descriptor`);
  if (op === 'backup') return backupSqlite(cfg.store.file, fd!, busy);
  if (op === 'restore') return restoreSqlite(cfg.store.file, fd);
  if (op === 'clear') return restoreSqlite(cfg.store.file, undefined);
  throw new Error(`unknown operation ${JSON.stringify(op)} (backup, restore or clear)`);
}
