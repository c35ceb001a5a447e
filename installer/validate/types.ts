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
}

export const matching = (re: RegExp) => (targets: string[]) => targets.filter((t) => re.test(t));
