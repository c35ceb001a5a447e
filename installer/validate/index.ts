import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { writeAtomic } from '../apply/apply.js';
import { type RejectedFile, ValidationError } from '../errors.js';
import { lookupIds } from '../host/users.js';
import { layoutOf } from '../layout.js';
import { type Prepared, renderFor } from '../prepare.js';
import { collectdValidator } from './collectd.js';
import { definitionsValidator, mongodValidator, runtimeIniValidator, shellValidator } from './formats.js';
import { rabbitmqValidator } from './rabbitmq.js';
import { supervisordValidator } from './supervisord.js';
import { systemdValidator } from './systemd.js';
import type { Validator } from './types.js';

export function validators(p: Prepared): Validator[] {
  const b = p.facts.binaries;
  const instances = p.ctx.engines.flatMap((e) => e.instances.map((i) => i.instance));
  return [
    supervisordValidator(b.supervisord),
    systemdValidator(b.systemdAnalyze, instances),
    collectdValidator(b.collectd),
    rabbitmqValidator(b.erl, p.facts.rabbitmqHome),
    mongodValidator,
    definitionsValidator,
    runtimeIniValidator,
    shellValidator,
  ];
}

export interface ValidationReport {
  checked: Array<{ program: string; files: string[] }>;
  skipped: Array<{ program: string; reason: string }>;
}

/**
 * Renders the tree into a staging prefix (with the directories the readers
 * expect) and runs every available validator on it. Throws ValidationError
 * listing every rejected file; the live tree is never involved.
 */
export async function validateTree(p: Prepared): Promise<ValidationReport> {
  const staging = await mkdtemp(path.join(os.tmpdir(), 'canopsis-validate-'));
  try {
    // The service account is created after validation (it is not part of the
    // tree); until it exists the copy names the invoking user, so supervisord's
    // user check still runs on a real account.
    const account = (await lookupIds(p.settings.canopsis.user, p.settings.canopsis.group))
      ? undefined
      : { user: p.facts.user, group: p.facts.group };
    const files = await renderFor(staging, p, account);
    const l = layoutOf(staging);
    for (const dir of [l.log, l.engineLog, l.run, l.varLib, path.join(l.log, 'rabbitmq')]) await mkdir(dir, { recursive: true });
    for (const f of files) await writeAtomic(path.join(staging, f.target), f.content, f.mode);
    const targets = files.map((f) => f.target);
    const report: ValidationReport = { checked: [], skipped: [] };
    const rejected: RejectedFile[] = [];
    await Promise.all(
      validators(p).map(async (v) => {
        const mine = v.applies(targets);
        if (mine.length === 0) return;
        if (v.unavailable) {
          report.skipped.push({ program: v.program, reason: v.unavailable });
          return;
        }
        rejected.push(...(await v.run(staging, mine)));
        report.checked.push({ program: v.program, files: mine });
      }),
    );
    if (rejected.length) throw new ValidationError(rejected);
    return report;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
