import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { SettingsError } from '../errors.js';
import type { Layout } from '../layout.js';
import { parseIni } from '../settings/ini-text.js';
import { sectionDefaults, sectionSchemas } from '../settings/schema.js';
import { ARCHIVE_NAME } from './format.js';

/*
 * Retention: the last `[backup] keep` archives of a directory stay, older
 * ones go once a new backup is safely written. Only names this installer
 * writes are counted or deleted: an operator's other files in the
 * directory are left alone.
 */

/** The archives to delete so that `keep` remain: the oldest by the UTC stamp in their names. */
export function toDelete(names: string[], keep: number): string[] {
  const ours = names.filter((n) => ARCHIVE_NAME.test(n));
  const byAge = ours.sort((a, b) => ARCHIVE_NAME.exec(a)![2]!.localeCompare(ARCHIVE_NAME.exec(b)![2]!) || a.localeCompare(b));
  return byAge.slice(0, Math.max(0, byAge.length - keep));
}

/** `[backup] keep` of canopsis.ini (root's file), its default when absent; a bad value names file:backup.keep. */
export async function readKeep(layout: Layout): Promise<number> {
  const text = await readFile(layout.settingsFile, 'utf8').catch(() => '');
  const found = parseIni(text).get('backup')?.keep;
  const value = found ?? sectionDefaults({ root: true, user: 'root', group: 'root' }).backup.keep!;
  const parsed = sectionSchemas.backup.shape.keep.safeParse(value);
  if (!parsed.success) {
    throw new SettingsError([
      {
        file: layout.settingsFile,
        section: 'backup',
        key: 'keep',
        found: value,
        expected: parsed.error.issues[0]?.message ?? 'a number of backups to keep',
      },
    ]);
  }
  return parsed.data;
}

/** Deletes the archives of `dir` beyond the last `keep`; returns their paths. */
export async function pruneBackups(dir: string, keep: number): Promise<string[]> {
  const gone = toDelete(await readdir(dir), keep).map((n) => path.join(dir, n));
  for (const f of gone) await rm(f, { force: true });
  return gone;
}
