import { z } from 'zod';
import { RELEASE_ID, VERSION } from '../apply/release-id.js';
import { MIGRATION_ID } from '../migrations/index.js';

/*
 * A backup: canopsis-backup-<version>-<UTC stamp>.tar.gz holding one top
 * directory with MANIFEST.json (format, version and release of the prefix,
 * when it was made, the store's backend, the migration record, sha256, size
 * and mode of every file) and the files it names: etc/ (secrets included),
 * pkgmgr/manifest.json (what the installer wrote last time, so that a
 * restore tells the files of that version from the operator's edits) and
 * store/ (the SQLite copy or mongodump's archive).
 */

export const BACKUP_MANIFEST = 'MANIFEST.json';
export const BACKUP_NAME = 'canopsis-backup';

// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const UNSAFE_CHARS = /[\u0000-\u001f\u007f\\]/;

/** A path inside the backup: relative, normalised, one of the parts a backup holds. */
export const isBackupPath = (p: string) =>
  /^(etc|pkgmgr|store)\/[^/]/.test(p) && !p.split('/').some((s) => s === '' || s === '.' || s === '..') && !UNSAFE_CHARS.test(p);

const fileEntry = z.object({
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  size: z.number().int().nonnegative(),
  mode: z.number().int().min(0).max(0o777),
  /** etc/ files readable by the service group (secrets) get that group back; every other file is root's. */
  group: z.enum(['root', 'service']),
});

export const backupManifest = z.object({
  format: z.literal(1),
  name: z.literal(BACKUP_NAME),
  version: z.string().regex(VERSION, 'a semantic version such as 0.4.0'),
  release: z.string().regex(RELEASE_ID, 'a release id <version>+<8 hex digits>'),
  created: z.iso.datetime(),
  /** Where it was made (shown on restore; every path in etc/ is rendered again for the prefix restored into). */
  prefix: z.string(),
  store: z.object({
    backend: z.enum(['embedded', 'mongodb', 'postgresql']),
    /** The copy in the backup; absent when the embedded store had no file yet (nothing ever stored). */
    file: z
      .string()
      .refine((p) => p.startsWith('store/') && isBackupPath(p))
      .optional(),
    /** What the copy held, as counted by the process that made it (informational). */
    entities: z.number().int().nonnegative().optional(),
    alarms: z.number().int().nonnegative().optional(),
  }),
  migrations: z.object({ applied: z.record(z.string().regex(MIGRATION_ID), z.string()) }),
  files: z.record(z.string().refine(isBackupPath, { error: 'expected a path under etc/, pkgmgr/ or store/' }), fileEntry),
});

export type BackupManifest = z.infer<typeof backupManifest>;
export type BackupFileEntry = z.infer<typeof fileEntry>;

/** 2026-11-30T16:51:02.123Z -> 20261130T165102Z: sorts as the time does, and is a valid file name everywhere. */
export const stamp = (d: Date) =>
  d
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/[-:]/g, '');

export const archiveName = (version: string, created: Date) => `${BACKUP_NAME}-${version}-${stamp(created)}.tar.gz`;

/** The archives this installer writes (what retention counts and status shows): version and stamp. */
export const ARCHIVE_NAME = /^canopsis-backup-(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)-(\d{8}T\d{6}Z)\.tar\.gz$/;

/** The time of a stamp, back as a Date. */
export function stampTime(s: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) throw new Error(`not a backup stamp: ${s}`);
  return new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`);
}
