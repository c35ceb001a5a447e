import { z } from 'zod';

/*
 * Field parsers for canopsis.ini. Every value arrives as a string (that is
 * what an ini file holds); each parser turns it into a typed value or fails
 * with a message of the form "expected ..." that the loader completes with
 * the file, section, key and the value found.
 */

const expected = (what: string) => ({ error: `expected ${what}` });

export const text = (what = 'a non-empty value') => z.string().trim().min(1, expected(what));

export const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z
    .string()
    .trim()
    .pipe(z.enum(values, expected(`one of ${values.join(', ')}`)));

export const integer = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^-?\d+$/, expected(`an integer between ${min} and ${max}`))
    .transform(Number)
    .pipe(
      z
        .number()
        .int()
        .min(min, expected(`an integer between ${min} and ${max}`))
        .max(max, expected(`an integer between ${min} and ${max}`)),
    );

export const port = () => integer(1, 65535);

const TRUE = new Set(['true', 'yes', 'on', '1']);
const FALSE = new Set(['false', 'no', 'off', '0']);
export const bool = () =>
  z
    .string()
    .trim()
    .toLowerCase()
    .refine((v) => TRUE.has(v) || FALSE.has(v), expected('true or false'))
    .transform((v) => TRUE.has(v));

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
  p: 1e15,
  pb: 1e15,
  pib: 2 ** 50,
};

/** "20GiB", "512 MB", "1048576" -> bytes; undefined when the text is not a size. */
export function parseSize(value: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  if (!m) return undefined;
  const unit = UNITS[m[2]!.toLowerCase()];
  return unit === undefined ? undefined : Math.round(Number(m[1]) * unit);
}

export const size = () =>
  z.string().transform((v, ctx) => {
    const bytes = parseSize(v);
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: 'expected a size such as 20GiB, 512MiB or 1073741824 (bytes)' });
      return z.NEVER;
    }
    return bytes;
  });

/** A comma separated list; empty text is the empty list. */
export const list = (item: z.ZodType<string>, what: string) =>
  z.string().transform((v, ctx) => {
    const items = v
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
    for (const i of items) {
      if (!item.safeParse(i).success) {
        ctx.addIssue({ code: 'custom', message: `expected ${what}, separated by commas` });
        return z.NEVER;
      }
    }
    return items;
  });

export const ENGINE_NAME = /^[a-z][a-z0-9_]{0,39}$/;
export const engineName = z.string().regex(ENGINE_NAME);

/** A dotted task name as amqp2engines.conf writes it: canopsis.cleaner.process.event_processing */
export const TASK_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$/;
export const taskName = () =>
  z
    .string()
    .trim()
    .refine(
      (v) => v === '' || TASK_NAME.test(v),
      expected('a dotted task name such as canopsis.cleaner.process.event_processing, or nothing'),
    )
    .transform((v) => (v === '' ? undefined : v));

/**
 * A path rendered into supervisord, systemd, YAML, ini and shell files: only
 * characters every one of them carries verbatim (no space, quote, %, $ or
 * newline), so nothing rendered from it can become another directive.
 */
export const SAFE_PATH = /^[A-Za-z0-9_./+@:-]+$/;

export const filePath = (what: string) =>
  z
    .string()
    .trim()
    .min(1, expected(what))
    .regex(SAFE_PATH, expected(`${what}, of letters, digits and _ . / + @ : - only`));

export const optionalPath = (what: string) =>
  z
    .string()
    .trim()
    .refine((v) => v === '' || SAFE_PATH.test(v), expected(`${what}, of letters, digits and _ . / + @ : - only`));

export const hostname = () =>
  z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9._:-]+$/, expected('a host name or IP address'));

/** Unix user and group names (the portable subset useradd accepts). */
export const unixName = () =>
  z
    .string()
    .trim()
    .regex(/^[a-z_][a-z0-9_-]{0,31}$/, expected('a user or group name (lowercase letters, digits, _ and -)'));
