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
}

export const matching = (re: RegExp) => (targets: string[]) => targets.filter((t) => re.test(t));

/**
 * A validator that checks each of its files alone: `check` gets the file's
 * path in the staging copy and returns the program's complaint, or '' when
 * the file is accepted.
 */
export function perFile(program: string, re: RegExp, check: (file: string) => Promise<string>, unavailable?: string): Validator {
  return {
    program,
    applies: matching(re),
    unavailable,
    run: async (prefix, files) => {
      const out = [];
      for (const f of files) {
        const message = await check(path.join(prefix, f));
        if (message) out.push({ file: f, program, message });
      }
      return out;
    },
  };
}
