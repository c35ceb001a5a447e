import { readFile } from 'node:fs/promises';
import { execa } from 'execa';
import ini from 'ini';
import { parse as parseYaml } from 'yaml';
import { perFile, type Validator } from './types.js';

/*
 * Files read by our own runtime or by programs not installed here: checked
 * with the parser the reader uses (ini for the runtime, YAML for mongod,
 * JSON for RabbITMQ's definitions, sh -n for the wrappers).
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

const byText = (program: string, re: RegExp, check: (text: string, file: string) => string): Validator =>
  perFile(program, re, async (file) => check(await readFile(file, 'utf8'), file));

export const mongodValidator = byText('YAML parser (mongod --config)', /^etc\/mongodb\.conf$/, mongodConfigProblems);
export const definitionsValidator = byText('JSON parser (RabbitMQ definitions)', /^etc\/rabbitmq\/definitions\.json$/, definitionsProblems);
export const runtimeIniValidator = byText('ini parser (engine runtime)', /^etc\/(amqp2engines|amqp|webserver|runtime)\.conf$/, (t, f) =>
  iniProblems(t, f.endsWith('amqp2engines.conf') ? /^engine:/ : /./),
);

export const shellValidator: Validator = perFile('sh -n', /^bin\//, async (file) => {
  const r = await execa('sh', ['-n', file], { reject: false, all: true });
  return r.exitCode === 0 ? '' : r.all || `exit ${r.exitCode}`;
});
