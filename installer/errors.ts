/*
 * Typed failures of the installer. Modules throw these; only the CLI turns
 * them into exit codes and one-line reasons.
 */

export class InstallerError extends Error {
  /** Process exit code the CLI uses for this kind of failure. */
  readonly exitCode: number = 1;
  /** Lines of detail printed under the one-line reason. */
  details(): string[] {
    return [];
  }
}

export interface SettingProblem {
  file: string;
  section: string;
  key?: string;
  found?: string;
  expected: string;
  fromSet?: boolean;
}

export function formatProblem(p: SettingProblem): string {
  const where = `${p.file}:${p.section}${p.key ? `.${p.key}` : ''}`;
  const found = p.found === undefined ? '' : ` found ${JSON.stringify(p.found)}${p.fromSet ? ' (from --set)' : ''},`;
  return `${where}:${found} ${p.expected}`;
}

export class SettingsError extends InstallerError {
  override readonly exitCode = 2;
  constructor(readonly problems: SettingProblem[]) {
    super(
      problems.length === 1
        ? `invalid setting: ${formatProblem(problems[0]!)}`
        : `${problems.length} invalid settings (nothing was changed): ${formatProblem(problems[0]!)} ...`,
    );
  }
  override details(): string[] {
    return this.problems.map(formatProblem);
  }
}

export class UsageError extends InstallerError {
  override readonly exitCode = 2;
}

export interface CheckFailure {
  check: string;
  found: string;
  needed: string;
  fix: string;
}

export class PreflightError extends InstallerError {
  override readonly exitCode = 3;
  constructor(readonly failures: CheckFailure[]) {
    super(
      `preflight failed (${failures.map((f) => f.check).join(', ')}); nothing was written`,
    );
  }
  override details(): string[] {
    return this.failures.map((f) => `${f.check}: found ${f.found}; needs ${f.needed}; fix: ${f.fix}`);
  }
}

export interface RejectedFile {
  file: string;
  program: string;
  message: string;
}

export class ValidationError extends InstallerError {
  override readonly exitCode = 4;
  constructor(readonly rejected: RejectedFile[]) {
    super(
      `${rejected.map((r) => `${r.file} rejected by ${r.program}`).join('; ')}; the installed tree was not changed`,
    );
  }
  override details(): string[] {
    return this.rejected.flatMap((r) => [`${r.file} (${r.program}):`, ...r.message.split('\n').map((l) => `  ${l}`)]);
  }
}

export class LockedError extends InstallerError {
  override readonly exitCode = 5;
}

export class ApplyError extends InstallerError {
  override readonly exitCode = 6;
}
