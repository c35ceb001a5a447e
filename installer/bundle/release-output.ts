import { z } from 'zod';
import { InstallerError } from '../errors.js';
import { timingSchema } from '../timing.js';

/*
 * What a release's installer prints with --json, checked before the
 * updater acts on it: the files it wrote (which decide what restarts), the
 * migrations it would run, the ones it undid. Each command prints its JSON
 * object as its last line, after any log lines.
 */

const ids = z.array(z.string());

export const INSTALL_SUMMARY = z.looseObject({
  writes: ids.default([]),
  dist: ids.default([]),
  /** Its steps' times, shown under the update's own: diagnostics only, so an odd one is dropped, never a failed install. */
  timings: z.array(timingSchema).optional().catch(undefined),
});

export const MIGRATIONS_PENDING = z.looseObject({
  pending: z.array(
    z.looseObject({
      id: z.string(),
      description: z.string(),
      settings: z.boolean().optional(),
      store: z.boolean(),
      reversible: z.boolean(),
    }),
  ),
});

/** `migrate --down-to V` answers `undone`, `migrate --redo-after V` answers `redone`. */
export const MIGRATIONS_DONE = z.looseObject({ undone: ids.optional(), redone: ids.optional() });

export function releaseOutput<S extends z.ZodType>(schema: S, stdout: string, what: string): z.infer<S> {
  const line = stdout.trim().split('\n').at(-1) ?? '';
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new InstallerError(`${what} printed no JSON answer (last line: ${JSON.stringify(line.slice(0, 200))})`);
  }
  const r = schema.safeParse(value);
  if (!r.success)
    throw new InstallerError(
      `${what} answered in an unexpected shape: ${r.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`,
    );
  return r.data;
}
