import ini from 'ini';
import { parse as parseYaml } from 'yaml';

/*
 * The parsers of the files our runtime reads, or that programs not
 * installed here read (mongod): what formats.ts runs, apart so that only a
 * run that validates loads them.
 */

const MONGOD_KEYS = ['storage.dbPath', 'systemLog.path', 'systemLog.destination', 'net.port', 'net.bindIp'];

const get = (o: unknown, dotted: string) =>
  dotted.split('.').reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), o);

export function mongodConfigProblems(text: string): string {
  let doc: unknown;
  try {
    doc = parseYaml(text, { strict: true, uniqueKeys: true });
  } catch (e) {
    return `not valid YAML: ${(e as Error).message}`;
  }
  const missing = MONGOD_KEYS.filter((k) => get(doc, k) === undefined || get(doc, k) === null);
  return missing.length ? `missing keys mongod needs: ${missing.join(', ')}` : '';
}

export function definitionsProblems(text: string): string {
  let d: Record<string, unknown>;
  try {
    d = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    return `not valid JSON: ${(e as Error).message}`;
  }
  const lists = ['users', 'vhosts', 'permissions', 'exchanges', 'queues', 'bindings'];
  const bad = lists.filter((k) => !Array.isArray(d[k]));
  return bad.length ? `expected arrays for ${bad.join(', ')}` : '';
}

export function iniProblems(text: string, required: RegExp): string {
  try {
    const parsed = ini.parse(text);
    return Object.keys(parsed).some((k) => required.test(k)) ? '' : `no section matching ${required}`;
  } catch (e) {
    return (e as Error).message;
  }
}
