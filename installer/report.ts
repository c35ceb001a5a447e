import type { InstallState } from './install.js';
import { type Secrets, secretValues } from './settings/secrets.js';
import type { Timing } from './timing.js';

/*
 * What the operator reads at the end of a run, as lines (terminal) or as one
 * object (--json). Secrets never appear: their values are masked in diffs
 * (plan-lines.ts, apart: only `plan` needs a diff).
 */

export function maskSecrets(text: string, secrets: Secrets | undefined, extra: string[] = []): string {
  if (!secrets) return text;
  let out = text;
  // Longest first: a URL is masked whole before the password inside it.
  for (const v of [...secretValues(secrets), ...extra].sort((a, b) => b.length - a.length)) if (v) out = out.split(v).join('********');
  return out;
}

export interface Summary {
  ok: true;
  prefix: string;
  release: string | undefined;
  written: number;
  writes: string[];
  dist: string[];
  replaced: string[];
  orphans: string[];
  packagesInstalled: string[];
  accountsCreated: string[];
  warnings: string[];
  notes: string[];
  validatedBy: string[];
  /** Validators not run: what they read is byte for byte what they accepted before. */
  unchangedSinceValidated: string[];
  runAs: string;
  /** Where the run spent its time, step by step (ms). */
  timings: Timing[];
}

export function summary(s: InstallState): Summary {
  const planned = s.planned ?? [];
  const p = s.prepared!;
  return {
    ok: true,
    prefix: p.layout.prefix,
    release: s.release?.id,
    written: s.writes.length,
    writes: s.writes,
    dist: planned.filter((f) => f.distPending).map((f) => `${f.target}.dist`),
    replaced: planned.filter((f) => f.action === 'replace').map((f) => f.target),
    orphans: planned.filter((f) => f.action === 'orphan').map((f) => f.target),
    packagesInstalled: s.depsInstalled,
    accountsCreated: s.accounts,
    warnings: s.warnings,
    notes: [...p.notes, ...s.notes],
    validatedBy: s.validation?.checked.map((c) => c.program) ?? [],
    unchangedSinceValidated: s.validation?.unchanged.map((c) => c.program) ?? [],
    runAs: p.settings.canopsis.user,
    timings: s.timings,
  };
}

export function summaryLines(s: InstallState): string[] {
  const m = summary(s);
  const p = s.prepared!;
  const lines = [
    m.written === 0
      ? `Canopsis ${m.release} in ${m.prefix}: already up to date, 0 files written.`
      : `Canopsis ${m.release} installed in ${m.prefix}: ${m.written} files written.`,
  ];
  if (m.dist.length) {
    lines.push('Your edits were kept; the new versions are beside them, to merge by hand:');
    lines.push(...m.dist.map((d) => `  ${d}`));
  }
  if (m.replaced.length)
    lines.push(`Replaced your edits (--conffile-policy replace), yours kept as <file>.operator: ${m.replaced.join(', ')}`);
  if (m.orphans.length) lines.push(`No longer generated but edited, left in place: ${m.orphans.join(', ')}`);
  if (!p.facts.root) lines.push(`Not root: the services will run as ${p.facts.user}.`);
  lines.push(`Settings: ${p.layout.settingsFile} (credentials in ${p.layout.secretsFile}).`);
  for (const n of m.notes) lines.push(`note: ${n}`);
  for (const w of m.warnings) lines.push(`warning: ${w}`);
  return lines;
}
