import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import type { z } from 'zod';
import { ApplyError } from '../errors.js';

/*
 * The installer's own state (manifest, migration record, update journal) is
 * read back by root, who acts on it: each file is parsed against its schema,
 * and one that is not ours stops the run with its name, instead of being
 * taken for absent or trusted as it is.
 */

/**
 * The file's data, undefined when it does not exist; `hint` ends the message
 * of a refusal (what the operator can do). As root, a file root did not
 * write (another owner, writable by others, a link) is refused too.
 */
export async function readStateFile<T>(file: string, schema: z.ZodType<T>, what: string, hint = ''): Promise<T | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw new ApplyError(`${file} is a symbolic link, not ${what}${hint}`);
    throw e;
  }
  let text: string;
  try {
    const st = await fh.stat();
    if (process.getuid?.() === 0 && (st.uid !== 0 || st.mode & 0o022)) {
      throw new ApplyError(
        `${file} ${st.uid !== 0 ? `belongs to uid ${st.uid}` : `is writable by others (mode ${(st.mode & 0o7777).toString(8)})`}: the installer's state must be root's alone${hint}`,
      );
    }
    text = await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new ApplyError(`${file}: not valid JSON (${(e as Error).message})${hint}`);
  }
  const parsed = schema.safeParse(data);
  if (!parsed.success)
    throw new ApplyError(`${file}: not ${what} (${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message})${hint}`);
  return parsed.data;
}
