import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import { ApplyError } from '../errors.js';

/*
 * The installer's own state (manifest, migration record, update journal) is
 * read back by root, who acts on it: each file is parsed against its schema,
 * and one that is not ours stops the run with its name, instead of being
 * taken for absent or trusted as it is.
 */

/** The file's data, undefined when it does not exist; `hint` ends the message of a refusal (what the operator can do). */
export async function readStateFile<T>(file: string, schema: z.ZodType<T>, what: string, hint = ''): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new ApplyError(`${file}: not valid JSON (${(e as Error).message})${hint}`);
  }
  const parsed = schema.safeParse(data);
  if (!parsed.success) throw new ApplyError(`${file}: not ${what} (${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message})${hint}`);
  return parsed.data;
}
