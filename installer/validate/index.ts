import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type RejectedFile, ValidationError } from '../errors.js';
import { lookupIds } from '../host/users.js';
import { layoutOf } from '../layout.js';
import { type Prepared, renderFor } from '../prepare.js';
import { type Timing, timed } from '../timing.js';
import { collectdValidator } from './collectd.js';
import { definitionsValidator, mongodValidator, runtimeIniValidator, shellValidator } from './formats.js';
import { rabbitmqValidator } from './rabbitmq.js';
import { supervisordValidator } from './supervisord.js';
import { systemdValidator } from './systemd.js';
import type { Validator } from './types.js';
import { type Verdicts, verdictOf } from './verdicts.js';

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
  /** Not run: what they read is byte for byte what they accepted before (var/lib/pkgmgr/validated.json). */
  unchanged: Array<{ program: string; files: string[] }>;
  /** The verdicts of this run's accepted validators (run or unchanged), to record once the run may write. */
  accepted: Verdicts;
  /** How long each validator took (they run together). */
  timings: Timing[];
}

export interface ValidateOptions {
  /** The release id: its templates and validators are part of every verdict. */
  release: string;
  /** What was accepted before; a validator whose verdict is there is not run. */
  verdicts?: Verdicts;
}

/**
 * Runs every available validator whose verdict is not among the accepted
 * ones, on a staging prefix the tree is rendered into (with the directories
 * the readers expect). Throws ValidationError listing every rejected file;
 * the live tree is never involved.
 */
export async function validateTree(p: Prepared, opts: ValidateOptions): Promise<ValidationReport> {
  const report: ValidationReport = { checked: [], skipped: [], unchanged: [], accepted: {}, timings: [] };
  // The operator's own files (settings, secrets, certificate) are read by no validator.
  const rendered = p.files.filter((f) => f.kind !== 'settings');
  const targets = rendered.map((f) => f.target);
  const todo: Array<{ v: Validator; mine: string[] }> = [];
  for (const v of validators(p)) {
    const mine = v.applies(targets);
    if (mine.length === 0) continue;
    if (v.unavailable) {
      report.skipped.push({ program: v.program, reason: v.unavailable });
      continue;
    }
    const verdict = await verdictOf(v, rendered, opts.release);
    report.accepted[v.program] = verdict;
    if (opts.verdicts?.[v.program] === verdict) report.unchanged.push({ program: v.program, files: mine });
    else todo.push({ v, mine });
  }
  if (todo.length === 0) return report;
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
    // No fsync: the copy is thrown away, and a crash loses nothing of it.
    await Promise.all(files.map((f) => writeStaged(path.join(staging, f.target), f.content, f.mode)));
    const rejected: RejectedFile[] = [];
    await Promise.all(
      todo.map(({ v, mine }) =>
        timed(report.timings, v.program, async () => {
          rejected.push(...(await v.run(staging, mine)));
          report.checked.push({ program: v.program, files: mine });
        }),
      ),
    );
    if (rejected.length) throw new ValidationError(rejected);
    return report;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function writeStaged(file: string, content: string, mode: number): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, content, { mode });
  await chmod(file, mode);
}
