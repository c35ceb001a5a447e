import path from 'node:path';
import type { RejectedFile } from '../errors.js';

/**
 * A check of rendered files by the program that will read them. It runs on a
 * staging copy of the tree rendered with the staging directory as prefix, so
 * every path inside the files resolves within the copy.
 */
export interface Validator {
  /** The program doing the check, shown to the operator. */
  program: string;
  /** Relative paths (under the staging prefix) this validator looks at. */
  applies: (targets: string[]) => string[];
  /** Returns one entry per rejected file; an empty list means accepted. */
  run: (stagingPrefix: string, files: string[]) => Promise<RejectedFile[]>;
  /** Why it was skipped (the program is not installed), or undefined when it runs. */
  unavailable?: string;
  /**
   * Every rendered file the check depends on (includes, files it names, the
   * programs units start), when more than `applies`: its verdict is keyed on them.
   */
  reads?: (targets: string[]) => string[];
  /** Host files the answer depends on beyond the rendered ones (the program, its schemas): a change re-runs it. */
  tools?: string[];
  /** Anything else the answer depends on (the engine instances systemd is asked about). */
  context?: string[];
}

export const matching = (re: RegExp) => (targets: string[]) => targets.filter((t) => re.test(t));

/**
 * A validator that checks each of its files alone: `check` gets the file's
 * path in the staging copy and returns the program's complaint, or '' when
 * the file is accepted.
 */
export function perFile(
  program: string,
  re: RegExp,
  check: (file: string) => Promise<string>,
  unavailable?: string,
  more: Pick<Validator, 'reads' | 'tools' | 'context'> = {},
): Validator {
  return {
    program,
    applies: matching(re),
    unavailable,
    ...more,
    // Files checked together (twenty wrappers through `sh -n` one after the other added up); reported in their order.
    run: async (prefix, files) => {
      const messages = await Promise.all(files.map((f) => check(path.join(prefix, f))));
      return files.flatMap((file, i) => (messages[i] ? [{ file, program, message: messages[i] }] : []));
    },
  };
}
