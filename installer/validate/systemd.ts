import path from 'node:path';
import type { RejectedFile } from '../errors.js';
import { execa } from '../host/exec.js';
import { UNIT_DIR } from '../render/catalog.js';
import { matching, type Validator } from './types.js';

/*
 * `systemd-analyze verify` on the staged unit directory. It exits 0 on
 * warnings (unknown keys, bad values), so any output about our units counts
 * as a rejection.
 */
export async function verifyUnits(systemdAnalyze: string, unitDir: string, units: string[]): Promise<string> {
  const r = await execa(systemdAnalyze, ['verify', '--man=no', ...units.map((u) => path.join(unitDir, u))], {
    reject: false,
    all: true,
    env: { SYSTEMD_UNIT_PATH: `${unitDir}:`, SYSTEMD_LOG_COLOR: '0' },
  });
  const lines = (r.all ?? '').split('\n').filter((l) => l.trim() !== '');
  if (r.exitCode !== 0 && lines.length === 0) lines.push(`exit code ${r.exitCode}`);
  return lines.join('\n');
}

/** Units as verify must name them: a template needs an instance to be loaded. */
export function unitsToVerify(files: string[], instances: string[]): string[] {
  const units = files.filter((f) => !f.includes('.d/')).map((f) => path.basename(f));
  return units.flatMap((u) => (u.endsWith('@.service') ? instances.map((i) => u.replace('@.', `@${i}.`)) : [u]));
}

export function systemdValidator(systemdAnalyze: string | undefined, instances: string[]): Validator {
  return {
    program: 'systemd-analyze verify',
    applies: matching(new RegExp(`^${UNIT_DIR}/`)),
    unavailable: systemdAnalyze ? undefined : 'systemd-analyze is not installed',
    // The units, the programs they start and the environment file they name.
    reads: matching(new RegExp(`^(${UNIT_DIR}/|bin/|etc/go-engines-vars\\.conf$)`)),
    tools: systemdAnalyze ? [systemdAnalyze] : [],
    context: instances,
    run: async (prefix, files): Promise<RejectedFile[]> => {
      const unitDir = path.join(prefix, UNIT_DIR);
      const units = unitsToVerify(files, instances);
      // An instance path (…@engine-che.service) loads the template and its drop-ins from the unit path.
      const message = await verifyUnits(systemdAnalyze!, unitDir, units);
      return message ? [{ file: UNIT_DIR, program: 'systemd-analyze verify', message }] : [];
    },
  };
}
