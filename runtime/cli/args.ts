import type { Command } from 'commander';
import { EXIT } from '../contract/exit-codes.js';

/*
 * Every command of bin/ parses its arguments with commander and
 * exitOverride(): asking for help exits 0, a usage error (commander has
 * already printed it) exits 2.
 */

/** The exit code for what commander threw while parsing, or undefined when it was not commander's. */
export function commanderExit(e: unknown): number | undefined {
  const code = (e as { code?: string }).code;
  if (code === 'commander.helpDisplayed' || code === 'commander.help' || code === 'commander.version') return EXIT.ok;
  return code?.startsWith('commander.') ? EXIT.usage : undefined;
}

/** Parses argv (without node and the script) or exits as commanderExit says. */
export function parseOrExit(cmd: Command, argv = process.argv.slice(2)): void {
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (e) {
    process.exit(commanderExit(e) ?? EXIT.usage);
  }
}
