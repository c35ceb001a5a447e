import { readFile } from 'node:fs/promises';
import { execa } from '../host/exec.js';
import { perFile, type Validator } from './types.js';

/*
 * Files read by our own runtime or by programs not installed here: checked
 * with the parser the reader uses (ini for the runtime, YAML for mongod,
 * JSON for RabbITMQ's definitions, sh -n for the wrappers).
 */

/** The parsers, loaded when a file is checked (most runs check nothing: every verdict unchanged). */
const checks = () => import('./format-checks.js');

type Check = (c: Awaited<ReturnType<typeof checks>>, text: string, file: string) => string;

const byText = (program: string, re: RegExp, check: Check): Validator =>
  perFile(program, re, async (file) => check(await checks(), await readFile(file, 'utf8'), file));

export const mongodValidator = byText('YAML parser (mongod --config)', /^etc\/mongodb\.conf$/, (c, t) => c.mongodConfigProblems(t));
export const definitionsValidator = byText('JSON parser (RabbitMQ definitions)', /^etc\/rabbitmq\/definitions\.json$/, (c, t) =>
  c.definitionsProblems(t),
);
export const runtimeIniValidator = byText('ini parser (engine runtime)', /^etc\/(amqp2engines|amqp|webserver|runtime)\.conf$/, (c, t, f) =>
  c.iniProblems(t, f.endsWith('amqp2engines.conf') ? /^engine:/ : /./),
);

export const shellValidator: Validator = perFile(
  'sh -n',
  /^bin\//,
  async (file) => {
    const r = await execa('sh', ['-n', file], { reject: false, all: true });
    return r.exitCode === 0 ? '' : r.all || `exit ${r.exitCode}`;
  },
  undefined,
  { tools: ['/bin/sh'] },
);
