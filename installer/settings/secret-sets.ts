import { UsageError } from '../errors.js';
import { SECRET_KEYS } from './schema.js';

/*
 * An updater passes the operator's --set options to the new release's
 * installer. Those that hold credentials (the MongoDB URL) are passed in the
 * child's environment, which only root can read, rather than in its command
 * line, which every user sees in ps.
 */

export const SECRET_SETS_ENV = 'CPS_SECRET_SETS';
/** The first release whose installer reads them there. */
export const SECRET_SETS_SINCE = '0.4.0';

const isSecret = (option: string) => SECRET_KEYS.some((k) => option.trim().startsWith(`${k.section}.${k.key}=`));

/** The arguments without the secret --set pairs, and those pairs' values (section.key=value). */
export function splitSecretSets(args: string[]): [string[], string[]] {
  const rest: string[] = [];
  const secret: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--set' && i + 1 < args.length && isSecret(args[i + 1]!)) secret.push(args[++i]!);
    else rest.push(args[i]!);
  }
  return [rest, secret];
}

export function secretSetsFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  const raw = env[SECRET_SETS_ENV];
  if (!raw) return [];
  let list: unknown;
  try {
    list = JSON.parse(raw);
  } catch {
    list = undefined;
  }
  if (!Array.isArray(list) || !list.every((x) => typeof x === 'string' && isSecret(x)))
    throw new UsageError(
      `${SECRET_SETS_ENV}: expected a JSON list of section.key=value for ${SECRET_KEYS.map((k) => `${k.section}.${k.key}`).join(', ')}`,
    );
  return list as string[];
}
