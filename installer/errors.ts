import { EXIT } from '../runtime/contract/exit-codes.js';

/*
 * Typed failures of the installer. Modules throw these; only the CLI turns
 * them into exit codes and one-line reasons.
 */

export class InstallerError extends Error {
  /** Process exit code the CLI uses for this kind of failure. */
  readonly exitCode: number = EXIT.failed;
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

/** The last lines of a program's output, on one line: what an error message quotes of it. */
export function lastLines(output: unknown, n = 3): string {
  return String(output ?? '')
    .trim()
    .split('\n')
    .slice(-n)
    .join(' | ');
}

export function formatProblem(p: SettingProblem): string {
  const where = `${p.file}:${p.section}${p.key ? `.${p.key}` : ''}`;
  const found = p.found === undefined ? '' : ` found ${JSON.stringify(p.found)}${p.fromSet ? ' (from --set)' : ''},`;
  return `${where}:${found} ${p.expected}`;
}

export class SettingsError extends InstallerError {
  override readonly exitCode = EXIT.usage;
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
  override readonly exitCode = EXIT.usage;
}

export interface CheckFailure {
  check: string;
  found: string;
  needed: string;
  fix: string;
}

export class PreflightError extends InstallerError {
  override readonly exitCode = EXIT.preflight;
  constructor(readonly failures: CheckFailure[]) {
    super(`preflight failed (${failures.map((f) => f.check).join(', ')}); nothing was written`);
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
  override readonly exitCode = EXIT.validation;
  constructor(readonly rejected: RejectedFile[]) {
    super(`${rejected.map((r) => `${r.file} rejected by ${r.program}`).join('; ')}; the installed tree was not changed`);
  }
  override details(): string[] {
    return this.rejected.flatMap((r) => [`${r.file} (${r.program}):`, ...r.message.split('\n').map((l) => `  ${l}`)]);
  }
}

export class LockedError extends InstallerError {
  override readonly exitCode = EXIT.locked;
}

export class ApplyError extends InstallerError {
  override readonly exitCode = EXIT.apply;
}

/** The bundle cannot be used: corrupt, unsigned, not this product's. */
export class BundleError extends InstallerError {
  override readonly exitCode = EXIT.bundle;
}

/** The stack did not come up, or the probe event did not become an alarm. */
export class StartError extends InstallerError {
  override readonly exitCode = EXIT.start;
}

/** An update failed; the message says whether the old release runs again. */
export class UpdateFailed extends InstallerError {
  override readonly exitCode = EXIT.update;
}

/** A key file that cannot be used as it is: the operator fixes it. */
export class KeyFileError extends InstallerError {
  override readonly exitCode = EXIT.usage;
}

/** A Debian package the appliance needs could not be installed: like a failed preflight. */
export class DependencyError extends InstallerError {
  override readonly exitCode = EXIT.preflight;
}

/** A backup refused on restore (untrusted, damaged, newer than what is installed). */
export class BackupRefused extends InstallerError {
  override readonly exitCode = EXIT.bundle;
}

/** A program the store's backend needs to be copied is missing (mongodump, mongorestore): like a failed preflight. */
export class MissingTool extends InstallerError {
  override readonly exitCode = EXIT.preflight;
}
