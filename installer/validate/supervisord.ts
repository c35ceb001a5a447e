import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from '../host/exec.js';
import { matching, perFile, type Validator } from './types.js';

/*
 * supervisord's own parser (ServerOptions.realize + process_config) run by the
 * Python that supervisord itself uses (its shebang), so the check sees exactly
 * what `supervisord -c` would: includes, numprocs expansion, groups.
 */
const CHECK = `
import sys
from supervisor.options import ServerOptions
o = ServerOptions()
o.realize(args=['-c', sys.argv[1]])
o.process_config(do_usage=False)
names = []
for g in o.process_group_configs:
    for p in g.process_configs:
        names.append(g.name + ':' + p.name)
print('\\n'.join(sorted(names)))
`;

export async function supervisordPython(supervisord: string): Promise<string> {
  const head = (await readFile(supervisord, 'utf8')).split('\n', 1)[0] ?? '';
  const m = /^#!\s*(\S+)(?:\s+(\S+))?/.exec(head);
  if (!m) return 'python3';
  // "#!/usr/bin/env python3" names the interpreter in its argument.
  return path.basename(m[1]!) === 'env' && m[2] ? m[2] : m[1]!;
}

/** The processes supervisord would run for a config, as group:name, or its error. */
export async function supervisordPrograms(
  supervisord: string,
  configFile: string,
): Promise<{ ok: true; programs: string[] } | { ok: false; message: string }> {
  const python = await supervisordPython(supervisord);
  // -I: as root, import nothing from the working directory or the environment (a planted supervisor/ package would run as root).
  const r = await execa(python, ['-I', '-c', CHECK, configFile], { reject: false, all: true, cwd: path.dirname(configFile) });
  if (r.exitCode !== 0) {
    const lines = (r.all ?? '')
      .trim()
      .split('\n')
      .filter((l) => l && !l.startsWith('Traceback') && !l.startsWith('  '));
    return { ok: false, message: lines.slice(-3).join(' ') || `exit code ${r.exitCode}` };
  }
  return { ok: true, programs: r.stdout.trim().split('\n').filter(Boolean) };
}

export function supervisordValidator(supervisord: string | undefined): Validator {
  return perFile(
    'supervisord',
    /^etc\/supervisord\.conf$/,
    async (file) => {
      const r = await supervisordPrograms(supervisord!, file);
      return r.ok ? '' : r.message;
    },
    supervisord ? undefined : 'supervisord is not installed',
    // Its includes (supervisord.d/, engines/) and the programs they run.
    { reads: matching(/^(etc\/(supervisord\.conf|supervisord\.d\/|engines\/)|bin\/)/), tools: supervisord ? [supervisord] : [] },
  );
}
